// Package httpapi is tollgate's HTTP edge: the REST API of docs/api.md
// (register, login, refresh, logout, me, ws-ticket, anon), GET /healthz and
// GET /readyz, and GET /ws up to the moment of the upgrade.
//
// For GET /ws it checks that the request is a WebSocket upgrade, computes the
// client IP (X-Forwarded-For only from trusted proxies) and hands the request
// to auth.Service.AuthenticateHandshake, which alone decides which credential
// opens the socket. A refusal is plain HTTP with the JSON error body; only an
// authenticated upgrade reaches the [SocketAcceptor] (package ws).
//
// It owns: routing on a private ServeMux, strict bounded JSON bodies, the one
// function that renders errors ({"success":false,"error":{"code","message"}}
// with the status of tollgate's code table), cookies and their flags, the
// Origin rule on /api/, security headers, and an access log that records
// r.URL.Path but never the query string, so ticket and token values never
// reach a log. It leaves to others: credentials and tokens (auth), rate limits
// and blocks (limit), sockets (ws), /metrics and the http.Server with its
// timeouts (cmd/tollgate).
package httpapi
