package auth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// creds are one user's live credentials for handshake tests.
type creds struct {
	access tollgate.Secret
	anon   tollgate.Secret
	e      *env
	p      tollgate.Principal
}

func (c creds) ticket(t *testing.T, mint tollgate.ClientInfo) tollgate.Secret {
	t.Helper()
	tk, _, err := c.e.svc.IssueTicket(context.Background(), c.p, mint)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func newCreds(t *testing.T, e *env) creds {
	t.Helper()
	tok := e.login(t, "alice")
	c := creds{access: tok.Access, e: e, p: e.principal(t, tok)}
	if e.svc.cfg.Anonymous {
		_, anon, err := e.svc.IssueAnonymous(context.Background(), tollgate.ClientInfo{})
		if err != nil {
			t.Fatal(err)
		}
		c.anon = anon
	}
	return c
}

func cookie(name string, v tollgate.Secret) string { return name + "=" + v.Reveal() }

// TestHandshakeCredentialOrder: the first credential present decides; an
// invalid one fails the handshake and never falls through to a weaker one
// (docs/api.md, "Opening a socket").
func TestHandshakeCredentialOrder(t *testing.T) {
	t.Parallel()
	legacyAnon := func(c *Config) {
		c.Anonymous = true
		c.LegacyQueryToken = true
		c.LegacyQueryTokenUntil = newClock().Now().Add(24 * time.Hour)
	}
	type req struct {
		target string
		header http.Header
		client tollgate.ClientInfo
	}
	tests := []struct {
		name      string
		config    func(*Config)
		build     func(t *testing.T, c creds) req
		want      tollgate.Code
		wantKind  tollgate.CredentialKind
		unspentOK bool // the ticket in the request must still be redeemable
	}{
		{name: "nothing", build: func(t *testing.T, c creds) req { return req{target: "/ws"} }, want: tollgate.CodeUnauthenticated},
		{name: "bearer", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Authorization": {"Bearer " + c.access.Reveal()}}}
		}, wantKind: tollgate.CredentialBearer},
		{name: "bearer scheme is case-insensitive", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Authorization": {"bearer " + c.access.Reveal()}}}
		}, wantKind: tollgate.CredentialBearer},
		{name: "bearer and ticket: bearer wins, ticket untouched", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=" + c.ticket(t, tollgate.ClientInfo{}).Reveal(), header: http.Header{"Authorization": {"Bearer " + c.access.Reveal()}}}
		}, wantKind: tollgate.CredentialBearer, unspentOK: true},
		{name: "invalid bearer never falls through to a valid ticket", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=" + c.ticket(t, tollgate.ClientInfo{}).Reveal(), header: http.Header{"Authorization": {"Bearer " + c.access.Reveal() + "x"}}}
		}, want: tollgate.CodeUnauthenticated, unspentOK: true},
		{name: "Basic authorization is present and invalid", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=" + c.ticket(t, tollgate.ClientInfo{}).Reveal(), header: http.Header{"Authorization": {"Basic YWxpY2U6cHc="}}}
		}, want: tollgate.CodeUnauthenticated, unspentOK: true},
		{name: "empty Authorization is present and invalid", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Authorization": {""}, "Cookie": {cookie("auth_token", c.access)}}, client: browser(testOrigin)}
		}, want: tollgate.CodeUnauthenticated},
		{name: "two Authorization headers", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Authorization": {"Bearer " + c.access.Reveal(), "Bearer " + c.access.Reveal()}}}
		}, want: tollgate.CodeUnauthenticated},
		{name: "ticket", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=" + c.ticket(t, browser(testOrigin)).Reveal(), client: browser(testOrigin)}
		}, wantKind: tollgate.CredentialTicket},
		{name: "ticket and cookie: ticket wins", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=" + c.ticket(t, browser(testOrigin)).Reveal(), header: http.Header{"Cookie": {cookie("auth_token", c.access)}}, client: browser(testOrigin)}
		}, wantKind: tollgate.CredentialTicket},
		{name: "invalid ticket never falls through to a valid cookie", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=AAAA", header: http.Header{"Cookie": {cookie("auth_token", c.access)}}, client: browser(testOrigin)}
		}, want: tollgate.CodeInvalidTicket},
		{name: "empty ticket is present", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=", header: http.Header{"Cookie": {cookie("auth_token", c.access)}}, client: browser(testOrigin)}
		}, want: tollgate.CodeInvalidTicket},
		{name: "two tickets", build: func(t *testing.T, c creds) req {
			tk := c.ticket(t, tollgate.ClientInfo{}).Reveal()
			return req{target: "/ws?ticket=" + tk + "&ticket=" + tk}
		}, want: tollgate.CodeInvalidTicket, unspentOK: true},
		{name: "ticket bound to another origin", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=" + c.ticket(t, browser(testOrigin)).Reveal(), client: browser("http://127.0.0.1:8080")}
		}, want: tollgate.CodeOriginNotAllowed},
		{name: "cookie with allowed origin", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("auth_token", c.access)}}, client: browser(testOrigin)}
		}, wantKind: tollgate.CredentialCookie},
		{name: "cookie without origin", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("auth_token", c.access)}}}
		}, want: tollgate.CodeOriginNotAllowed},
		{name: "cookie from another site", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("auth_token", c.access)}}, client: browser(otherOrigin)}
		}, want: tollgate.CodeOriginNotAllowed},
		{name: "cookie with Origin null", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("auth_token", c.access)}}, client: browser("null")}
		}, want: tollgate.CodeOriginNotAllowed},
		{name: "two access cookies (cookie tossing)", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("auth_token", c.access) + "; auth_token=forged"}}, client: browser(testOrigin)}
		}, want: tollgate.CodeUnauthenticated},
		{name: "secure-mode cookie name ignored in plain mode", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("__Host-auth_token", c.access)}}, client: browser(testOrigin)}
		}, want: tollgate.CodeUnauthenticated},
		{name: "plain cookie name ignored in secure mode", config: func(c *Config) { c.SecureCookies = true }, build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("auth_token", c.access)}}, client: browser(testOrigin)}
		}, want: tollgate.CodeUnauthenticated},
		{name: "secure cookie name in secure mode", config: func(c *Config) { c.SecureCookies = true }, build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("__Host-auth_token", c.access)}}, client: browser(testOrigin)}
		}, wantKind: tollgate.CredentialCookie},
		{name: "bearer from a disallowed origin", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Authorization": {"Bearer " + c.access.Reveal()}}, client: browser(otherOrigin)}
		}, want: tollgate.CodeOriginNotAllowed},
		{name: "ticket from Origin null", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=" + c.ticket(t, tollgate.ClientInfo{}).Reveal(), client: browser("null")}
		}, want: tollgate.CodeOriginNotAllowed, unspentOK: true},
		{name: "legacy token off: not a credential", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?token=" + c.access.Reveal()}
		}, want: tollgate.CodeUnauthenticated},
		{name: "legacy token on", config: legacyAnon, build: func(t *testing.T, c creds) req {
			return req{target: "/ws?token=" + c.access.Reveal()}
		}, wantKind: tollgate.CredentialLegacyToken},
		{name: "cookie beats legacy token", config: legacyAnon, build: func(t *testing.T, c creds) req {
			return req{target: "/ws?token=" + c.access.Reveal(), header: http.Header{"Cookie": {cookie("auth_token", c.access)}}, client: browser(testOrigin)}
		}, wantKind: tollgate.CredentialCookie},
		{name: "invalid cookie never falls through to a legacy token", config: legacyAnon, build: func(t *testing.T, c creds) req {
			return req{target: "/ws?token=" + c.access.Reveal(), header: http.Header{"Cookie": {"auth_token=forged"}}, client: browser(testOrigin)}
		}, want: tollgate.CodeUnauthenticated},
		{name: "invalid legacy token never falls through to anon", config: legacyAnon, build: func(t *testing.T, c creds) req {
			return req{target: "/ws?token=junk", header: http.Header{"Cookie": {cookie("anon_session", c.anon)}}}
		}, want: tollgate.CodeUnauthenticated},
		{name: "anonymous cookie", config: legacyAnon, build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("anon_session", c.anon)}}, client: browser(testOrigin)}
		}, wantKind: tollgate.CredentialAnonymous},
		{name: "anonymous off: anon cookie not a credential", build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {"anon_session=whatever"}}}
		}, want: tollgate.CodeUnauthenticated},
		{name: "access token in the anon cookie", config: legacyAnon, build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("anon_session", c.access)}}, client: browser(testOrigin)}
		}, want: tollgate.CodeUnauthenticated},
		{name: "anonymous cookie without Origin", config: legacyAnon, build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Cookie": {cookie("anon_session", c.anon)}}}
		}, want: tollgate.CodeOriginNotAllowed},
		{name: "anon token as bearer", config: legacyAnon, build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Authorization": {"Bearer " + c.anon.Reveal()}}}
		}, want: tollgate.CodeUnauthenticated},
		{name: "first-message auth: nothing is pending", config: func(c *Config) { c.FirstMessageAuth = true }, build: func(t *testing.T, c creds) req {
			return req{target: "/ws"}
		}, wantKind: tollgate.CredentialFirstMessage},
		{name: "first-message auth: invalid bearer is not pending", config: func(c *Config) { c.FirstMessageAuth = true }, build: func(t *testing.T, c creds) req {
			return req{target: "/ws", header: http.Header{"Authorization": {"Bearer nope"}}}
		}, want: tollgate.CodeUnauthenticated},
		{name: "first-message auth: disallowed origin", config: func(c *Config) { c.FirstMessageAuth = true }, build: func(t *testing.T, c creds) req {
			return req{target: "/ws", client: browser(otherOrigin)}
		}, want: tollgate.CodeOriginNotAllowed},
		{name: "malformed query", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?ticket=%zz"}
		}, want: tollgate.CodeInvalidRequest},
		{name: "semicolon query", build: func(t *testing.T, c creds) req {
			return req{target: "/ws?x=1;ticket=abc"}
		}, want: tollgate.CodeInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mut []func(*Config)
			if tc.config != nil {
				mut = append(mut, tc.config)
			}
			e := newEnv(t, mut...)
			c := newCreds(t, e)
			rq := tc.build(t, c)
			r := wsRequest(rq.target, rq.header)
			h, err := e.svc.AuthenticateHandshake(context.Background(), r, rq.client)
			wantCode(t, err, tc.want)
			if err != nil {
				if h.Principal != (tollgate.Principal{}) || h.Header != nil {
					t.Fatalf("a refused handshake returned %+v", h)
				}
				if ev, ok := e.audit.last(tollgate.AuditHandshakeRejected); !ok || ev.Reason != string(tc.want) {
					t.Errorf("handshake_rejected audit = %+v", ev)
				}
			} else {
				if h.Principal.Credential != tc.wantKind {
					t.Fatalf("credential = %q, want %q", h.Principal.Credential, tc.wantKind)
				}
				switch tc.wantKind {
				case tollgate.CredentialFirstMessage:
					if h.Principal.UserID != "" {
						t.Fatal("a pending principal has a user")
					}
				case tollgate.CredentialAnonymous:
					if !h.Principal.Anonymous || !strings.HasPrefix(h.Principal.UserID, "anon-") {
						t.Fatalf("anonymous principal = %+v", h.Principal)
					}
				default:
					if h.Principal.UserID != c.p.UserID || h.Principal.SessionID != c.p.SessionID || h.Principal.Anonymous {
						t.Fatalf("principal = %+v", h.Principal)
					}
				}
			}
			if tc.unspentOK {
				q, _ := url.ParseQuery(r.URL.RawQuery)
				if _, err := e.svc.RedeemTicket(context.Background(), tollgate.Secret(q.Get("ticket")), tollgate.ClientInfo{}); err != nil {
					t.Fatalf("the ticket was spent by a handshake it did not decide: %v", err)
				}
			}
		})
	}
}

func TestLegacyTokenHeadersAuditAndSunset(t *testing.T) {
	t.Parallel()
	until := newClock().Now().Add(48 * time.Hour)
	e := newEnv(t, func(c *Config) { c.LegacyQueryToken = true; c.LegacyQueryTokenUntil = until })
	c := newCreds(t, e)
	r := wsRequest("/ws?token="+c.access.Reveal(), nil)
	h, err := e.svc.AuthenticateHandshake(context.Background(), r, tollgate.ClientInfo{IP: "192.0.2.8"})
	if err != nil {
		t.Fatal(err)
	}
	if h.Header.Get("Deprecation") != "true" || h.Header.Get("Sunset") != until.UTC().Format(http.TimeFormat) {
		t.Fatalf("headers = %v", h.Header)
	}
	if ev, ok := e.audit.last(tollgate.AuditLegacyTokenUsed); !ok || ev.User != c.p.UserID || ev.IP != "192.0.2.8" {
		t.Fatalf("legacy_token_used audit = %+v", ev)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "deprecated") || strings.Contains(logs, c.access.Reveal()) || !strings.Contains(logs, c.access.Fingerprint()) {
		t.Fatalf("log must show the deprecation with the token redacted to its fingerprint: %s", logs)
	}
	e.clock.Advance(48 * time.Hour)
	_, err = e.svc.AuthenticateHandshake(context.Background(), wsRequest("/ws?token="+c.access.Reveal(), nil), tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeUnauthenticated)
	if _, err := New(Config{Keys: e.svc.cfg.Keys, LegacyQueryToken: true}, e.users, e.sessions, e.tickets); err == nil {
		t.Fatal("legacy tokens without a sunset date accepted")
	}
}

func TestAnonymousSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Anonymous = true; c.AnonymousTTL = time.Hour })
	p, tok, err := e.svc.IssueAnonymous(context.Background(), browser(testOrigin))
	if err != nil {
		t.Fatal(err)
	}
	if !p.Anonymous || !strings.HasPrefix(p.UserID, "anon-") || !strings.HasPrefix(p.Name, "guest-") || p.SessionID != "" {
		t.Fatalf("principal = %+v", p)
	}
	if headerOf(t, tok.Reveal())["typ"] != "anon+jwt" {
		t.Fatal("anonymous token typ")
	}
	got, err := e.svc.VerifyAnonymous(tok)
	gotExp, wantExp := got.ExpiresAt, p.ExpiresAt
	got.ExpiresAt, p.ExpiresAt = time.Time{}, time.Time{}
	if err != nil || got != p || !gotExp.Equal(wantExp) {
		t.Fatalf("VerifyAnonymous = %+v, %v; want %+v", got, err, p)
	}
	_, err = e.svc.VerifyAccess(context.Background(), tok)
	wantCode(t, err, tollgate.CodeUnauthenticated)
	e.clock.Advance(time.Hour + time.Minute)
	_, err = e.svc.VerifyAnonymous(tok)
	wantCode(t, err, tollgate.CodeTokenExpired)
	_, _, err = e.svc.IssueAnonymous(context.Background(), browser(otherOrigin))
	wantCode(t, err, tollgate.CodeOriginNotAllowed)

	off := newEnv(t)
	_, _, err = off.svc.IssueAnonymous(context.Background(), tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeForbidden)
	_, err = off.svc.VerifyAnonymous(tok)
	wantCode(t, err, tollgate.CodeForbidden)
}

// FuzzAuthenticateHandshake feeds arbitrary Authorization, query, Cookie and
// Origin values to the credential decision. It must never panic, and it may
// return a principal only when the request carries one of the real
// credentials: garbage never authenticates.
func FuzzAuthenticateHandshake(f *testing.F) {
	e := newEnv(f, func(c *Config) {
		c.Anonymous = true
		c.LegacyQueryToken = true
		c.LegacyQueryTokenUntil = newClock().Now().Add(time.Hour)
	})
	tok := e.login(f, "alice")
	_, anon, err := e.svc.IssueAnonymous(context.Background(), tollgate.ClientInfo{})
	if err != nil {
		f.Fatal(err)
	}
	real := []string{tok.Access.Reveal(), anon.Reveal()}
	a := tok.Access.Reveal()
	f.Add("Bearer "+a[:len(a)-2], "", "", "")
	f.Add("", "ticket="+strings.Repeat("A", 43), "", testOrigin)
	f.Add("", "token="+a[1:], "auth_token=x", testOrigin)
	f.Add("", "", "auth_token="+a[:40]+"; anon_session=y", "null")
	f.Add("bEaReR  x", "ticket=&ticket=", "anon_session="+anon.Reveal()[3:], "")
	f.Add("", "%zz;&=", "auth_token", "https://chat.example.com.evil.net")
	f.Fuzz(func(t *testing.T, authz, rawQuery, cookieHdr, origin string) {
		r := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/ws", RawQuery: rawQuery}, Header: http.Header{}}
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if cookieHdr != "" {
			r.Header.Set("Cookie", cookieHdr)
		}
		c := tollgate.ClientInfo{IP: "192.0.2.1", Origin: origin, HasOrigin: origin != ""}
		h, err := e.svc.AuthenticateHandshake(context.Background(), r, c)
		if err != nil {
			if _, ok := err.(*tollgate.Error); !ok {
				t.Fatalf("error %T is not a *tollgate.Error", err)
			}
			if h.Principal != (tollgate.Principal{}) {
				t.Fatal("a refused handshake returned a principal")
			}
			return
		}
		all := authz + rawQuery + cookieHdr
		ok := false
		for _, s := range real {
			ok = ok || strings.Contains(all, s)
		}
		if !ok {
			t.Fatalf("garbage authenticated as %+v", h.Principal)
		}
		if c.HasOrigin && !e.svc.origins.Allowed(origin) {
			t.Fatalf("a disallowed Origin %q opened a socket", origin)
		}
	})
}

func TestAuthenticateRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := newCreds(t, e)
	bearerH := http.Header{"Authorization": {"Bearer " + c.access.Reveal()}}
	cookieH := http.Header{"Cookie": {cookie("auth_token", c.access)}}
	tests := []struct {
		name        string
		header      http.Header
		client      tollgate.ClientInfo
		needsOrigin bool
		want        tollgate.Code
		kind        tollgate.CredentialKind
	}{
		{"bearer", bearerH, tollgate.ClientInfo{}, true, "", tollgate.CredentialBearer},
		{"bearer, disallowed origin", bearerH, browser(otherOrigin), false, tollgate.CodeOriginNotAllowed, ""},
		{"cookie, origin", cookieH, browser(testOrigin), true, "", tollgate.CredentialCookie},
		{"cookie, no origin, not needed", cookieH, tollgate.ClientInfo{}, false, "", tollgate.CredentialCookie},
		{"cookie, no origin, needed", cookieH, tollgate.ClientInfo{}, true, tollgate.CodeOriginNotAllowed, ""},
		{"cookie, other site", cookieH, browser(otherOrigin), false, tollgate.CodeOriginNotAllowed, ""},
		{"invalid bearer never falls through to the cookie", http.Header{"Authorization": {"Bearer x"}, "Cookie": cookieH["Cookie"]}, browser(testOrigin), false, tollgate.CodeUnauthenticated, ""},
		{"nothing", nil, tollgate.ClientInfo{}, false, tollgate.CodeUnauthenticated, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := e.svc.AuthenticateRequest(context.Background(), wsRequest("/api/me", tc.header), tc.client, tc.needsOrigin)
			wantCode(t, err, tc.want)
			if err == nil && (p.Credential != tc.kind || p.UserID != c.p.UserID) {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
}
