// Package auth is tollgate's authentication: accounts (argon2id passwords),
// login sessions, HS256 access tokens, rotated refresh tokens, one-time
// WebSocket tickets, anonymous sessions, external identity providers (OIDC)
// and, above all, the credential decision of the WebSocket handshake
// ([Service.AuthenticateHandshake]): which credential opens a socket, in
// which order, with which Origin, and never falling through to a weaker one
// (docs/api.md, "Opening a socket").
//
// [Service] is concrete and safe for concurrent use. It reads and writes
// state only through the root's store interfaces (UserStore, SessionStore,
// TicketStore), records audit events through a tollgate.Auditor, and closes
// live sockets by publishing control events; it holds no global state.
//
// What it leaves to others: HTTP routing, cookies and JSON bodies (httpapi),
// rate limits and blocks (limit), the socket itself and first-message auth
// frames (ws and the protocols), and where the signing key comes from beyond
// [LoadKey] (cmd/tollgate).
//
// Secrets stay tollgate.Secret until they must leave: a response body, a
// cookie, a hash. Errors are *tollgate.Error with contract codes; their
// log-only causes never hold a password, token, ticket or cookie.
package auth
