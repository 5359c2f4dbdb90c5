package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestHandshakeMatrix runs every credential kind, valid and invalid, with
// every kind of Origin against a real server, and checks the HTTP answer:
// 101 only where the contract allows it, and otherwise the refusal before
// any upgrade.
func TestHandshakeMatrix(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	until := time.Now().AddDate(0, 1, 0).Format("2006-01-02")
	s := startServer(t, t.TempDir(), logs, taken, "--anonymous", "--legacy-query-token", "--legacy-query-token-until", until,
		"--failed-auth-block", "100000", "--handshake-rate", "100000", "--max-sockets-per-user", "1000")
	uli := s.register("uli")
	allowed := strings.Replace(s.url, "127.0.0.1", "localhost", 1)
	anon := s.call("GET", "/api/auth/anon", nil, http.Header{"Origin": {allowed}})
	var anonCookie string
	for _, c := range strings.Split(anon.header.Get("Set-Cookie"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(c), "anon_session="); ok {
			anonCookie = v
		}
	}
	if anon.status != 200 || anonCookie == "" {
		t.Fatalf("anonymous session: %s", anon)
	}

	origins := map[string]string{
		"absent":     "",
		"allowed":    allowed,
		"foreign":    "https://evil.example",
		"null":       "null",
		"look-alike": allowed + ".evil.example",
		"other port": allowed + "0",
	}
	type cred struct {
		query  string
		header http.Header
	}
	kinds := map[string]func(valid bool) cred{
		"bearer": func(valid bool) cred {
			tok := uli.access
			if !valid {
				tok += "x"
			}
			return cred{header: bearer(tok)}
		},
		"ticket": func(valid bool) cred {
			if !valid {
				return cred{query: "ticket=" + strings.Repeat("B", 43)}
			}
			return cred{query: "ticket=" + s.ticket(uli)} // unbound: asked for without Origin
		},
		"cookie": func(valid bool) cred {
			tok := uli.access
			if !valid {
				tok = "garbage"
			}
			return cred{header: http.Header{"Cookie": {"auth_token=" + tok}}}
		},
		"legacy token": func(valid bool) cred {
			tok := uli.access
			if !valid {
				tok += "x"
			}
			return cred{query: "token=" + tok}
		},
		"anonymous cookie": func(valid bool) cred {
			tok := anonCookie
			if !valid {
				tok = "garbage"
			}
			return cred{header: http.Header{"Cookie": {"anon_session=" + tok}}}
		},
	}
	cookieKind := func(k string) bool { return strings.Contains(k, "cookie") }
	// want is the contract's answer.
	want := func(kind string, valid bool, origin string) int {
		switch {
		case origin != "absent" && origin != "allowed":
			return 403 // a present Origin must be allowed, whatever the credential
		case cookieKind(kind) && origin == "absent":
			return 403 // a cookie counts only with an allowed Origin
		case !valid:
			return 401
		}
		return 101
	}
	for kind, make := range kinds {
		for _, valid := range []bool{true, false} {
			for oname, origin := range origins {
				name := fmt.Sprintf("%s/%v/origin %s", kind, valid, oname)
				c := make(valid)
				h := http.Header{}
				for k, v := range c.header {
					h[k] = v
				}
				if origin != "" {
					h.Set("Origin", origin)
				}
				conn, status, err := s.dial(c.query, h)
				if err == nil {
					status = 101
					conn.close()
				}
				if w := want(kind, valid, oname); status != w {
					t.Errorf("%s: %d, want %d (%v)", name, status, w, err)
				}
			}
		}
	}
	taken.add(anonCookie)
	taken.assertAbsent(t, logs.String())
}

// TestFirstMessageAuthAndAnonymousRooms: with --first-message-auth a socket
// without a credential opens, must authenticate with its first frame within
// the deadline, counts against a small per-IP cap until then; anonymous
// sockets may only join the anonymous rooms.
func TestFirstMessageAuthAndAnonymousRooms(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken, "--first-message-auth", "--first-message-timeout", "2s",
		"--max-unauthenticated-per-ip", "2", "--anonymous", "--anonymous-rooms", "lobby")
	vera := s.register("vera")

	p1, _, err := s.dial("", nil)
	if err != nil {
		t.Fatalf("pending socket: %v", err)
	}
	p2, _, err := s.dial("", nil)
	if err != nil {
		t.Fatalf("second pending socket: %v", err)
	}
	if _, status, _ := s.dial("", nil); status != 429 {
		t.Fatalf("third pending socket from one IP: %d, want 429", status)
	}
	// The first frame authenticates; the slot is given back.
	p1.send(frame{"type": "auth", "ticket": s.ticket(vera)})
	if w := p1.expect("welcome"); w.obj("user")["name"] != "vera" {
		t.Fatalf("welcome after auth: %v", w)
	}
	p3, _, err := s.dial("", nil)
	if err != nil {
		t.Fatalf("pending socket after another authenticated: %v", err)
	}
	// Anything but auth first closes the socket; silence closes it at the deadline.
	p2.send(frame{"type": "join", "room": "lobby"})
	if code, _ := p2.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("a pending socket that sent join: %d, want 1008", code)
	}
	if code, reason := p3.closed(); code != websocket.StatusPolicyViolation || reason != "auth_timeout" {
		t.Fatalf("a silent pending socket: %d %q", code, reason)
	}

	// Anonymous sockets: only the anonymous rooms.
	allowed := strings.Replace(s.url, "127.0.0.1", "localhost", 1)
	anon := s.call("GET", "/api/auth/anon", nil, http.Header{"Origin": {allowed}})
	var cookie string
	for _, c := range anon.header.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(c, "anon_session="); ok {
			cookie, _, _ = strings.Cut(v, ";")
		}
	}
	taken.add(cookie)
	a, _, err := s.dial("", http.Header{"Origin": {allowed}, "Cookie": {"anon_session=" + cookie}})
	if err != nil {
		t.Fatalf("anonymous socket: %v", err)
	}
	if w := a.expect("welcome"); w.obj("user")["anonymous"] != true {
		t.Fatalf("anonymous welcome: %v", w)
	}
	a.send(frame{"type": "join", "room": "lobby"})
	a.expect("joined")
	a.send(frame{"type": "join", "room": "general"})
	if e := a.expect("error"); e.str("code") != "forbidden" {
		t.Fatalf("anonymous join of another room: %v", e)
	}
	if !strings.Contains(anon.header.Get("Set-Cookie"), "HttpOnly") {
		t.Fatalf("the anonymous cookie is not HttpOnly: %v", anon.header.Values("Set-Cookie"))
	}
	taken.assertAbsent(t, logs.String())
}
