// Package web serves tollgate's browser side: the chat page at / and the
// JavaScript client SDK at /sdk/tollgate.js, both embedded in the binary.
//
// It owns the static files and the headers they are served with: a strict
// Content-Security-Policy (no inline script or style, sockets only to the
// page's own origin), no framing, no MIME sniffing, no Referer. It knows
// nothing of accounts, tickets or sockets: the page and the SDK talk to the
// REST API and GET /ws of package httpapi like any other client (docs/api.md),
// and httpapi hands this package only the GET and HEAD requests that no API
// route takes (httpapi.Deps.Pages).
//
// The tests of the SDK (node --test) and of the page (Playwright driving
// Debian's chromium) live in e2e/ and run from TestJavaScript against a real
// tollgate binary.
package web
