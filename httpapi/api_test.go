package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
)

func TestRegisterAndLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	r := h.do("POST", "/api/auth/register", map[string]string{"username": "alice", "password": testPass}, nil)
	if r.status != 201 || r.body["success"] != true {
		t.Fatalf("register: %d %s", r.status, r.raw)
	}
	u := r.body["user"].(map[string]any)
	if u["username"] != "alice" || len(u["id"].(string)) != 32 {
		t.Fatalf("user = %v", u)
	}
	wantError(t, h.do("POST", "/api/auth/register", map[string]string{"username": "ALICE", "password": testPass}, nil), 409, tollgate.CodeUsernameTaken)
	wantError(t, h.do("POST", "/api/auth/register", map[string]string{"username": "a", "password": testPass}, nil), 400, tollgate.CodeInvalidRequest)
	wantError(t, h.do("POST", "/api/auth/register", map[string]string{"username": "bobby", "password": "short"}, nil), 400, tollgate.CodeInvalidRequest)

	l := h.login("alice")
	if l.str("token_type") != "Bearer" || l.body["expires_in"] != float64(900) || l.str("access_token") == "" || l.str("refresh_token") == "" ||
		l.body["user"].(map[string]any)["id"] != u["id"] || l.body["success"] != true {
		t.Fatalf("login body = %s", l.raw)
	}
	if l.header.Get("Cache-Control") != "no-store" || l.header.Get("X-Content-Type-Options") != "nosniff" || l.header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("security headers missing: %v", l.header)
	}
	wantError(t, h.do("POST", "/api/auth/login", map[string]string{"username": "alice", "password": "wrong password"}, nil), 401, tollgate.CodeInvalidCredentials)
	wantError(t, h.do("POST", "/api/auth/login", map[string]string{"username": "nobody", "password": testPass}, nil), 401, tollgate.CodeInvalidCredentials)

	me := h.do("GET", "/api/me", nil, bearer(l.str("access_token")))
	if me.status != 200 || me.body["user"].(map[string]any)["username"] != "alice" {
		t.Fatalf("me: %d %s", me.status, me.raw)
	}
	me = h.do("GET", "/api/me", nil, withCookie(nil, "auth_token", l.str("access_token")))
	if me.status != 200 {
		t.Fatalf("me by cookie: %d %s", me.status, me.raw)
	}
	wantError(t, h.do("GET", "/api/me", nil, nil), 401, tollgate.CodeUnauthenticated)
	wantError(t, h.do("GET", "/api/me", nil, bearer("nope")), 401, tollgate.CodeUnauthenticated)
	h.clock.Advance(16 * time.Minute)
	wantError(t, h.do("GET", "/api/me", nil, bearer(l.str("access_token"))), 401, tollgate.CodeTokenExpired)
}

func TestRegistrationClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{auth: func(c *auth.Config) { c.RegistrationClosed = true }})
	wantError(t, h.do("POST", "/api/auth/register", map[string]string{"username": "alice", "password": testPass}, nil), 403, tollgate.CodeForbidden)
}

func TestCookieFlags(t *testing.T) {
	t.Parallel()
	for _, secure := range []bool{false, true} {
		h := newHarness(t, options{auth: func(c *auth.Config) { c.SecureCookies = secure }})
		h.register("alice")
		l := h.login("alice")
		access, refresh := "auth_token", "refresh_token"
		same := http.SameSiteLaxMode
		if secure {
			access, refresh, same = "__Host-auth_token", "__Secure-refresh_token", http.SameSiteStrictMode
		}
		if len(l.cookies) != 2 {
			t.Fatalf("secure=%v: cookies %v", secure, l.header["Set-Cookie"])
		}
		a, r := l.cookies[access], l.cookies[refresh]
		if a == nil || r == nil {
			t.Fatalf("secure=%v: cookie names %v", secure, l.header["Set-Cookie"])
		}
		if a.Value != l.str("access_token") || r.Value != l.str("refresh_token") {
			t.Fatal("cookie values differ from the body")
		}
		for _, c := range []*http.Cookie{a, r} {
			if !c.HttpOnly || c.Secure != secure || c.SameSite != same || c.Domain != "" {
				t.Errorf("secure=%v: cookie %s flags: %s", secure, c.Name, c.Raw)
			}
		}
		if a.Path != "/" || a.MaxAge != 900 || r.Path != "/api/auth" || r.MaxAge != 720*3600 {
			t.Errorf("secure=%v: paths/ages: %s | %s", secure, a.Raw, r.Raw)
		}
		// Only the names of the current mode are read.
		other := "auth_token"
		if !secure {
			other = "__Host-auth_token"
		}
		wantError(t, h.do("GET", "/api/me", nil, withCookie(nil, other, a.Value)), 401, tollgate.CodeUnauthenticated)
		if r := h.do("GET", "/api/me", nil, withCookie(nil, access, a.Value)); r.status != 200 {
			t.Errorf("secure=%v: own cookie refused: %s", secure, r.raw)
		}
	}
}

func TestStrictBodies(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{http: func(c *Config) { c.MaxBodyBytes = 1024 }})
	valid := `{"username":"alice","password":"` + testPass + `"}`
	tests := []struct {
		name, body, ctype string
		status            int
		code              tollgate.Code
	}{
		{"no content type", valid, "", 400, tollgate.CodeInvalidRequest},
		{"text/plain", valid, "text/plain", 400, tollgate.CodeInvalidRequest},
		{"form", "username=alice", "application/x-www-form-urlencoded", 400, tollgate.CodeInvalidRequest},
		{"unknown field", `{"username":"alice","password":"` + testPass + `","admin":true}`, "application/json", 400, tollgate.CodeInvalidRequest},
		{"two values", valid + valid, "application/json", 400, tollgate.CodeInvalidRequest},
		{"trailing garbage", valid + "x", "application/json", 400, tollgate.CodeInvalidRequest},
		{"not JSON", "{username:", "application/json", 400, tollgate.CodeInvalidRequest},
		{"empty", "", "application/json", 400, tollgate.CodeInvalidRequest},
		{"array", "[]", "application/json", 400, tollgate.CodeInvalidRequest},
		{"wrong type", `{"username":1,"password":"x"}`, "application/json", 400, tollgate.CodeInvalidRequest},
		{"too large", `{"username":"` + strings.Repeat("a", 2000) + `","password":"x"}`, "application/json", 413, tollgate.CodeTooLarge},
		{"ok with charset", valid, "application/json; charset=utf-8", 201, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// An empty value list removes the harness's default Content-Type.
			hdr := http.Header{"Content-Type": nil}
			if tc.ctype != "" {
				hdr.Set("Content-Type", tc.ctype)
			}
			r := h.do("POST", "/api/auth/register", tc.body, hdr)
			if tc.code == "" {
				if r.status != tc.status {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				return
			}
			wantError(t, r, tc.status, tc.code)
			if strings.Contains(r.raw, testPass) {
				t.Fatal("the error echoes the body")
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	h.register("alice")
	l := h.login("alice")
	r := h.do("POST", "/api/auth/refresh", map[string]string{"refresh_token": l.str("refresh_token")}, nil)
	if r.status != 200 || r.str("access_token") == "" || r.str("refresh_token") == l.str("refresh_token") || len(r.cookies) != 2 {
		t.Fatalf("refresh by body: %d %s", r.status, r.raw)
	}
	// By cookie, with no body.
	r2 := h.do("POST", "/api/auth/refresh", nil, withCookie(nil, "refresh_token", r.str("refresh_token")))
	if r2.status != 200 {
		t.Fatalf("refresh by cookie: %d %s", r2.status, r2.raw)
	}
	// Replaying a spent token revokes the session: every token of it dies.
	wantError(t, h.do("POST", "/api/auth/refresh", map[string]string{"refresh_token": l.str("refresh_token")}, nil), 401, tollgate.CodeUnauthenticated)
	wantError(t, h.do("GET", "/api/me", nil, bearer(r2.str("access_token"))), 401, tollgate.CodeUnauthenticated)
	wantError(t, h.do("POST", "/api/auth/refresh", map[string]string{"refresh_token": r2.str("refresh_token")}, nil), 401, tollgate.CodeUnauthenticated)
	wantError(t, h.do("POST", "/api/auth/refresh", nil, nil), 401, tollgate.CodeUnauthenticated)
	wantError(t, h.do("POST", "/api/auth/refresh", map[string]string{"refresh": "x"}, nil), 400, tollgate.CodeInvalidRequest)
	wantError(t, h.do("POST", "/api/auth/refresh", nil, withCookie(withCookie(nil, "refresh_token", "a"), "refresh_token", "b")), 401, tollgate.CodeUnauthenticated)
}

func TestLogout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	h.register("alice")
	for _, byCookie := range []bool{false, true} {
		l := h.login("alice")
		hdr := bearer(l.str("access_token"))
		if byCookie {
			hdr = withCookie(nil, "auth_token", l.str("access_token"))
		}
		r := h.do("POST", "/api/auth/logout", nil, hdr)
		if r.status != 200 || r.body["success"] != true {
			t.Fatalf("logout: %d %s", r.status, r.raw)
		}
		for _, name := range []string{"auth_token", "refresh_token"} {
			if c := r.cookies[name]; c == nil || c.MaxAge >= 0 || c.Value != "" {
				t.Fatalf("cookie %s not cleared: %v", name, r.header["Set-Cookie"])
			}
		}
		wantError(t, h.do("GET", "/api/me", nil, bearer(l.str("access_token"))), 401, tollgate.CodeUnauthenticated)
		wantError(t, h.do("POST", "/api/auth/refresh", map[string]string{"refresh_token": l.str("refresh_token")}, nil), 401, tollgate.CodeUnauthenticated)
	}
	r := h.do("POST", "/api/auth/logout", nil, nil)
	wantError(t, r, 401, tollgate.CodeUnauthenticated)
	if len(r.cookies) != 2 {
		t.Fatal("a refused logout must still clear the cookies")
	}
}

func TestTicketEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	h.register("alice")
	tok := h.login("alice").str("access_token")
	r := h.do("POST", "/api/auth/ws-ticket", nil, bearer(tok))
	if r.status != 200 || r.body["success"] != true || len(r.str("ticket")) != 43 || r.body["expires_in"] != float64(30) {
		t.Fatalf("ticket: %d %s", r.status, r.raw)
	}
	if exp, err := time.Parse(time.RFC3339, r.str("expires_at")); err != nil || !exp.Equal(h.clock.Now().Add(30*time.Second)) {
		t.Fatalf("expires_at = %q", r.str("expires_at"))
	}
	cookie := withCookie(nil, "auth_token", tok)
	if r := h.do("POST", "/api/auth/ws-ticket", nil, withOrigin(cookie, testOrigin)); r.status != 200 {
		t.Fatalf("cookie + allowed Origin: %d %s", r.status, r.raw)
	}
	// No cross-site ticket minting.
	wantError(t, h.do("POST", "/api/auth/ws-ticket", nil, cookie), 403, tollgate.CodeOriginNotAllowed)
	wantError(t, h.do("POST", "/api/auth/ws-ticket", nil, withOrigin(cookie, otherOrigin)), 403, tollgate.CodeOriginNotAllowed)
	wantError(t, h.do("POST", "/api/auth/ws-ticket", nil, withOrigin(cookie, "null")), 403, tollgate.CodeOriginNotAllowed)
	wantError(t, h.do("POST", "/api/auth/ws-ticket", nil, withOrigin(bearer(tok), otherOrigin)), 403, tollgate.CodeOriginNotAllowed)
	wantError(t, h.do("POST", "/api/auth/ws-ticket", nil, nil), 401, tollgate.CodeUnauthenticated)
	h.tickets.down.Store(true)
	wantError(t, h.do("POST", "/api/auth/ws-ticket", nil, bearer(tok)), 503, tollgate.CodeUnavailable)
}

func TestOriginRuleOnAPI(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	h.register("alice")
	body := map[string]string{"username": "alice", "password": testPass}
	wantError(t, h.do("POST", "/api/auth/login", body, withOrigin(nil, otherOrigin)), 403, tollgate.CodeOriginNotAllowed)
	wantError(t, h.do("POST", "/api/auth/register", map[string]string{"username": "bob", "password": testPass}, withOrigin(nil, "null")), 403, tollgate.CodeOriginNotAllowed)
	if r := h.do("POST", "/api/auth/login", body, withOrigin(nil, testOrigin)); r.status != 200 {
		t.Fatalf("same-site login: %d %s", r.status, r.raw)
	}
}

func TestWebSocketHandshake(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	h.register("alice")
	tok := h.login("alice").str("access_token")
	ticket := func(origin string) string {
		hdr := bearer(tok)
		if origin != "" {
			hdr = withOrigin(hdr, origin)
		}
		r := h.do("POST", "/api/auth/ws-ticket", nil, hdr)
		if r.status != 200 {
			t.Fatalf("ticket: %s", r.raw)
		}
		return r.str("ticket")
	}
	spent := ticket("")
	if r := h.do("GET", "/ws?ticket="+spent, nil, upgrade(nil)); r.status != 200 {
		t.Fatalf("first redeem: %d %s", r.status, r.raw)
	}
	failures := []struct {
		name   string
		method string
		target string
		header http.Header
		status int
		code   tollgate.Code
	}{
		{"not an upgrade", "GET", "/ws?ticket=" + ticket(""), nil, 400, tollgate.CodeInvalidRequest},
		{"no Sec-WebSocket-Key", "GET", "/ws", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"}}, 400, tollgate.CodeInvalidRequest},
		{"wrong version", "GET", "/ws", func() http.Header { x := upgrade(nil); x.Set("Sec-WebSocket-Version", "8"); return x }(), 400, tollgate.CodeInvalidRequest},
		{"POST", "POST", "/ws", upgrade(nil), 405, tollgate.CodeMethodNotAllowed},
		{"no credential", "GET", "/ws", upgrade(nil), 401, tollgate.CodeUnauthenticated},
		{"bad ticket", "GET", "/ws?ticket=" + strings.Repeat("A", 43), upgrade(nil), 401, tollgate.CodeInvalidTicket},
		{"spent ticket", "GET", "/ws?ticket=" + spent, upgrade(nil), 401, tollgate.CodeInvalidTicket},
		{"ticket bound to another origin", "GET", "/ws?ticket=" + ticket(testOrigin), upgrade(nil), 403, tollgate.CodeOriginNotAllowed},
		{"bad bearer", "GET", "/ws", upgrade(bearer(tok + "x")), 401, tollgate.CodeUnauthenticated},
		{"bad bearer, good ticket", "GET", "/ws?ticket=" + ticket(""), upgrade(bearer("x")), 401, tollgate.CodeUnauthenticated},
		{"cookie without Origin", "GET", "/ws", upgrade(withCookie(nil, "auth_token", tok)), 403, tollgate.CodeOriginNotAllowed},
		{"cookie from another site", "GET", "/ws", upgrade(withOrigin(withCookie(nil, "auth_token", tok), otherOrigin)), 403, tollgate.CodeOriginNotAllowed},
		{"Origin null", "GET", "/ws", upgrade(withOrigin(bearer(tok), "null")), 403, tollgate.CodeOriginNotAllowed},
		{"two Origin headers", "GET", "/ws", upgrade(func() http.Header {
			x := withOrigin(bearer(tok), testOrigin)
			x.Add("Origin", testOrigin)
			return x
		}()), 403, tollgate.CodeOriginNotAllowed},
		{"malformed query", "GET", "/ws?ticket=%zz", upgrade(nil), 400, tollgate.CodeInvalidRequest},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			before := h.acc.count()
			r := h.do(tc.method, tc.target, nil, tc.header)
			wantError(t, r, tc.status, tc.code)
			if h.acc.count() != before {
				t.Fatal("the SocketAcceptor was called for a refused handshake")
			}
			if r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatal("refusal without security headers")
			}
		})
	}
	// A non-upgrade request did not spend its ticket.
	tk := ticket("")
	h.do("GET", "/ws?ticket="+tk, nil, nil)
	if r := h.do("GET", "/ws?ticket="+tk, nil, upgrade(nil)); r.status != 200 {
		t.Fatalf("the ticket was spent by a request that was not an upgrade: %s", r.raw)
	}

	successes := []struct {
		name   string
		target string
		header http.Header
		kind   tollgate.CredentialKind
	}{
		{"bearer", "/ws", upgrade(bearer(tok)), tollgate.CredentialBearer},
		{"ticket", "/ws?ticket=" + ticket(testOrigin), upgrade(withOrigin(nil, testOrigin)), tollgate.CredentialTicket},
		{"cookie with Origin", "/ws", upgrade(withOrigin(withCookie(nil, "auth_token", tok), testOrigin)), tollgate.CredentialCookie},
		{"connection header list", "/ws", func() http.Header {
			x := upgrade(bearer(tok))
			x.Set("Connection", "keep-alive, Upgrade")
			x.Set("Upgrade", "WebSocket")
			return x
		}(), tollgate.CredentialBearer},
	}
	for _, tc := range successes {
		t.Run(tc.name, func(t *testing.T) {
			before := h.acc.count()
			r := h.do("GET", tc.target, nil, tc.header)
			if r.status != 200 || h.acc.count() != before+1 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			call := h.acc.last()
			if call.p.Credential != tc.kind || call.p.Name != "alice" || call.c.IP != "127.0.0.1" {
				t.Fatalf("accepted %+v from %+v", call.p, call.c)
			}
			if call.header.Get("Cache-Control") != "" {
				t.Fatal("API headers leak into the 101")
			}
		})
	}
	h.tickets.down.Store(true)
	r := h.do("GET", "/ws?ticket="+strings.Repeat("A", 43), nil, upgrade(nil))
	wantError(t, r, 503, tollgate.CodeUnavailable)
}

func TestWebSocketLegacyTokenHeaders(t *testing.T) {
	t.Parallel()
	until := time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC)
	h := newHarness(t, options{auth: func(c *auth.Config) { c.LegacyQueryToken = true; c.LegacyQueryTokenUntil = until }})
	h.register("alice")
	tok := h.login("alice").str("access_token")
	r := h.do("GET", "/ws?token="+tok, nil, upgrade(nil))
	if r.status != 200 || h.acc.count() != 1 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	call := h.acc.last()
	if call.p.Credential != tollgate.CredentialLegacyToken || call.header.Get("Deprecation") != "true" ||
		call.header.Get("Sunset") != "Thu, 31 Dec 2026 23:59:59 GMT" {
		t.Fatalf("principal %+v, 101 headers %v", call.p, call.header)
	}
	if strings.Contains(h.logs.String(), tok) {
		t.Fatal("the legacy token reached the log")
	}
	h.clock.Advance(60 * 24 * time.Hour)
	wantError(t, h.do("GET", "/ws?token="+tok, nil, upgrade(nil)), 401, tollgate.CodeUnauthenticated)
}

func TestAnonymousEndpoint(t *testing.T) {
	t.Parallel()
	off := newHarness(t, options{})
	wantError(t, off.do("GET", "/api/auth/anon", nil, nil), 403, tollgate.CodeForbidden)

	h := newHarness(t, options{auth: func(c *auth.Config) { c.Anonymous = true }})
	r := h.do("GET", "/api/auth/anon", nil, withOrigin(nil, testOrigin))
	c := r.cookies["anon_session"]
	if r.status != 200 || c == nil || !c.HttpOnly || c.Path != "/" || c.MaxAge != 24*3600 || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("anon: %d %s %v", r.status, r.raw, r.header["Set-Cookie"])
	}
	if u := r.body["user"].(map[string]any); u["anonymous"] != true || !strings.HasPrefix(u["username"].(string), "guest-") {
		t.Fatalf("anon user = %v", u)
	}
	ws := h.do("GET", "/ws", nil, upgrade(withOrigin(withCookie(nil, "anon_session", c.Value), testOrigin)))
	if ws.status != 200 || !h.acc.last().p.Anonymous || h.acc.last().p.Credential != tollgate.CredentialAnonymous {
		t.Fatalf("anon socket: %d %s", ws.status, ws.raw)
	}
	// An anonymous session is not an account: no tickets, no /api/me by cookie.
	wantError(t, h.do("POST", "/api/auth/ws-ticket", nil, bearer(c.Value)), 401, tollgate.CodeUnauthenticated)
}

func TestFirstMessagePending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{auth: func(c *auth.Config) { c.FirstMessageAuth = true }})
	r := h.do("GET", "/ws", nil, upgrade(nil))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if p := h.acc.last().p; p.Credential != tollgate.CredentialFirstMessage || p.UserID != "" {
		t.Fatalf("pending principal = %+v", p)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, options{})
	wantError(t, h.do("GET", "/nope", nil, nil), 404, tollgate.CodeNotFound)
	r := h.do("GET", "/api/auth/login", nil, nil)
	wantError(t, r, 405, tollgate.CodeMethodNotAllowed)
	if r.header.Get("Allow") != "POST" {
		t.Fatalf("Allow = %q", r.header.Get("Allow"))
	}
	if r := h.do("GET", "/healthz", nil, nil); r.status != 200 || r.body["success"] != true {
		t.Fatalf("healthz: %d %s", r.status, r.raw)
	}
}

type pinger func(ctx context.Context) error

func (p pinger) Ping(ctx context.Context) error { return p(ctx) }

func TestReadyz(t *testing.T) {
	t.Parallel()
	ok := pinger(func(context.Context) error { return nil })
	down := pinger(func(context.Context) error { return errors.New("dial tcp: connection refused") })
	slow := pinger(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	h := newHarness(t, options{deps: func(d *Deps) { d.Ready = []Check{{"sqlite", ok}, {"redis", ok}} }})
	if r := h.do("GET", "/readyz", nil, nil); r.status != 200 || r.body["checks"].(map[string]any)["redis"] != "ok" {
		t.Fatalf("ready: %d %s", r.status, r.raw)
	}
	h = newHarness(t, options{
		http: func(c *Config) { c.ReadyTimeout = 50 * time.Millisecond },
		deps: func(d *Deps) { d.Ready = []Check{{"sqlite", ok}, {"redis", down}, {"postgres", slow}} },
	})
	start := time.Now()
	r := h.do("GET", "/readyz", nil, nil)
	wantError(t, r, 503, tollgate.CodeUnavailable)
	if msg := r.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "redis") || !strings.Contains(msg, "postgres") ||
		strings.Contains(msg, "sqlite") || strings.Contains(msg, "refused") {
		t.Fatalf("message = %q", msg)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("readiness checks not bounded")
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	h := newHarness(t, options{})
	h.api.log = slogTo(&logs)
	tests := []struct {
		name   string
		err    error
		status int
		code   tollgate.Code
		msg    string
		retry  string
	}{
		{"foreign", errors.New("db exploded with password hunter2hunter2"), 500, tollgate.CodeInternal, "Internal error.", ""},
		{"unavailable sentinel", tollgate.ErrUnavailable, 503, tollgate.CodeUnavailable, "Service temporarily unavailable.", ""},
		{"rate limited", &tollgate.Error{Code: tollgate.CodeRateLimited, RetryAfter: 1500 * time.Millisecond}, 429, tollgate.CodeRateLimited, "Too many requests.", "2"},
		{"rate limited, no hint", tollgate.NewError(tollgate.CodeRateLimited), 429, tollgate.CodeRateLimited, "Too many requests.", "1"},
		{"socket-only code", tollgate.NewError(tollgate.CodeNotJoined), 500, tollgate.CodeInternal, "Internal error.", ""},
		{"unknown code", tollgate.NewError("made_up"), 500, tollgate.CodeInternal, "Internal error.", ""},
		{"internal with a custom message", tollgate.Errorf(tollgate.CodeInternal, "secret detail"), 500, tollgate.CodeInternal, "Internal error.", ""},
		{"blocked", &tollgate.Error{Code: tollgate.CodeBlocked, RetryAfter: time.Hour}, 403, tollgate.CodeBlocked, "Temporarily blocked.", ""},
	}
	for _, tc := range tests {
		rec := newRecorder()
		h.api.writeError(rec, httptestRequest(), tc.err)
		r := rec.response()
		wantError(t, r, tc.status, tc.code)
		if got := r.body["error"].(map[string]any)["message"]; got != tc.msg || r.header.Get("Retry-After") != tc.retry {
			t.Errorf("%s: message %q Retry-After %q", tc.name, got, r.header.Get("Retry-After"))
		}
	}
	if !strings.Contains(logs.String(), "db exploded") {
		t.Fatal("the cause of a 500 is not logged")
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"no proxy", "203.0.113.5:1234", nil, "203.0.113.5"},
		{"untrusted peer's XFF ignored", "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer", "10.0.0.2:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted wins", "10.0.0.2:1234", []string{"1.1.1.1, 198.51.100.1, 10.0.0.9"}, "198.51.100.1"},
		{"spoofed left entries ignored", "10.0.0.2:1234", []string{"6.6.6.6", "198.51.100.1"}, "198.51.100.1"},
		{"all trusted: left-most", "10.0.0.2:1234", []string{"10.1.1.1, 10.2.2.2"}, "10.1.1.1"},
		{"garbage stops the walk", "10.0.0.2:1234", []string{"1.1.1.1, garbage, 10.0.0.9"}, "10.0.0.9"},
		{"garbage right-most", "10.0.0.2:1234", []string{"1.1.1.1, garbage"}, "10.0.0.2"},
		{"ipv6 peer", "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"ipv6 trusted", "[fd00::1]:443", []string{"2001:db8::7"}, "2001:db8::7"},
		{"mapped ipv4", "[::ffff:10.0.0.2]:80", []string{"198.51.100.1"}, "198.51.100.1"},
		{"xff with port", "10.0.0.2:1234", []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"empty xff", "10.0.0.2:1234", []string{""}, "10.0.0.2"},
		{"not an ip peer", "@", []string{"198.51.100.1"}, "@"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := clientIP(tc.remote, tc.xff, trusted); got != tc.want {
				t.Fatalf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
	h := newHarness(t, options{http: func(c *Config) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }})
	h.register("alice")
	tok := h.login("alice").str("access_token")
	x := upgrade(bearer(tok))
	x.Set("X-Forwarded-For", "6.6.6.6, 198.51.100.9")
	if r := h.do("GET", "/ws", nil, x); r.status != 200 || h.acc.last().c.IP != "198.51.100.9" {
		t.Fatalf("%d %+v", r.status, h.acc.last().c)
	}
}
