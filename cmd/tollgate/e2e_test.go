package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestChatAcrossRestart is the first vertical slice end to end: two users
// register, log in, take tickets, chat in a room, the server restarts on the
// same data dir, and history, accounts and tokens are still there. All log
// output of the whole session is searched for the secrets it used.
func TestChatAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, dir, logs, taken)

	alice, bob := s.register("alice"), s.register("bob")
	a, b := s.open(alice), s.open(bob)
	a.send(frame{"type": "join", "room": "general"})
	if j := a.expect("joined"); j.num("last_id") != 0 {
		t.Fatalf("joined an empty room: %v", j)
	}
	b.send(frame{"type": "join", "room": "general"})
	b.expect("joined")

	a.send(frame{"type": "publish", "room": "general", "text": "hello bob", "client_id": "c1"})
	// The ack and alice's own copy may come in either order.
	var ack, own frame
	for range 2 {
		switch f := a.read(); f.str("type") {
		case "ack":
			ack = f
		case "message":
			own = f
		default:
			t.Fatalf("unexpected frame %v", f)
		}
	}
	if ack.str("client_id") != "c1" || ack.num("id") != 1 || own.num("id") != 1 {
		t.Fatalf("ack %v, own copy %v", ack, own)
	}
	m := b.expect("message")
	if m.str("text") != "hello bob" || m.obj("from")["name"] != "alice" || m.num("id") != 1 || m.str("room") != "general" {
		t.Fatalf("bob got %v", m)
	}
	// A retried publish with the same client_id is acknowledged, not repeated.
	a.send(frame{"type": "publish", "room": "general", "text": "hello bob", "client_id": "c1"})
	if ack := a.expect("ack"); ack.num("id") != 1 {
		t.Fatalf("retried publish: %v", ack)
	}
	b.send(frame{"type": "publish", "room": "general", "text": "hi alice"})
	if m := a.expect("message"); m.num("id") != 2 || m.str("text") != "hi alice" {
		t.Fatalf("alice got %v", m)
	}

	// Shutdown closes live sockets 1001.
	s.shutdown()
	if code, reason := a.closed(); code != websocket.StatusGoingAway || reason != "shutting_down" {
		t.Fatalf("socket at shutdown: %d %q", code, reason)
	}
	b.closed()

	// Restart on the same data dir: the signing key, the accounts, the
	// sessions and the history survived.
	s2 := startServer(t, dir, logs, taken)
	if r := s2.call("GET", "/api/me", nil, bearer(alice.access)); r.status != 200 {
		t.Fatalf("alice's access token after restart: %s", r)
	}
	bob2 := s2.login("bob", bob.password)
	c := s2.open(bob2)
	c.send(frame{"type": "join", "room": "general"})
	if j := c.expect("joined"); j.num("last_id") != 2 {
		t.Fatalf("joined after restart: %v", j)
	}
	c.send(frame{"type": "history", "room": "general", "since": 0})
	h := c.expect("history")
	msgs, _ := h["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("history after restart: %v", h)
	}
	if first, _ := msgs[0].(map[string]any); first["text"] != "hello bob" {
		t.Fatalf("history order: %v", msgs)
	}
	c.send(frame{"type": "history", "room": "general", "since": 1, "limit": 5})
	if h := c.expect("history"); len(h["messages"].([]any)) != 1 {
		t.Fatalf("history since 1: %v", h)
	}

	// Logout revokes the session: its live socket closes 1008 and its
	// access token is refused at once although it has not expired.
	if r := s2.call("POST", "/api/auth/logout", nil, bearer(bob2.access)); r.status != 200 {
		t.Fatalf("logout: %s", r)
	}
	if code, reason := c.closed(); code != websocket.StatusPolicyViolation || reason != "session_revoked" {
		t.Fatalf("socket after logout: %d %q", code, reason)
	}
	if r := s2.call("GET", "/api/me", nil, bearer(bob2.access)); r.status != 401 {
		t.Fatalf("/api/me after logout: %s", r)
	}
	if r := s2.call("POST", "/api/auth/ws-ticket", nil, bearer(bob2.access)); r.status != 401 {
		t.Fatalf("ticket after logout: %s", r)
	}

	s2.shutdown()
	taken.assertAbsent(t, logs.String())
	if !strings.Contains(logs.String(), "/api/auth/ws-ticket") || !strings.Contains(logs.String(), "path=/ws") {
		t.Fatal("the access log does not show the requests: the secret check saw too little")
	}
}

// TestTicketRulesBeforeUpgrade: a ticket opens one socket once; reuse, a
// foreign Origin, a garbage ticket and no credential are all refused with an
// HTTP error before any 101.
func TestTicketRulesBeforeUpgrade(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken)
	carol := s.register("carol")

	tk := s.ticket(carol)
	c, _, err := s.dial("ticket="+tk, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.expect("welcome")
	tests := []struct {
		name   string
		query  string
		header http.Header
		status int
	}{
		{"reused ticket", "ticket=" + tk, nil, 401},
		{"unknown ticket", "ticket=" + strings.Repeat("A", 43), nil, 401},
		{"malformed ticket", "ticket=%00%ff", nil, 401},
		{"no credential", "", nil, 401},
		{"bad bearer", "", bearer("not.a.jwt"), 401},
		{"foreign origin", "ticket=" + s.ticket(carol), http.Header{"Origin": {"https://evil.example"}}, 403},
		{"origin null", "ticket=" + s.ticket(carol), http.Header{"Origin": {"null"}}, 403},
	}
	for _, tc := range tests {
		if _, status, err := s.dial(tc.query, tc.header); err == nil || status != tc.status {
			t.Errorf("%s: status %d (%v), want %d before the upgrade", tc.name, status, err, tc.status)
		}
	}
	// A ticket asked for from an allowed Origin opens only from that Origin.
	origin := http.Header{"Origin": {strings.Replace(s.url, "127.0.0.1", "localhost", 1)}}
	h := bearer(carol.access)
	h["Origin"] = origin["Origin"]
	r := s.call("POST", "/api/auth/ws-ticket", nil, h)
	if r.status != 200 {
		t.Fatalf("ticket with an allowed Origin: %s", r)
	}
	taken.add(r.str("ticket"))
	if _, status, _ := s.dial("ticket="+r.str("ticket"), nil); status != 403 {
		t.Fatalf("Origin-bound ticket without Origin: %d, want 403", status)
	}
	r = s.call("POST", "/api/auth/ws-ticket", nil, h)
	taken.add(r.str("ticket"))
	c2, _, err := s.dial("ticket="+r.str("ticket"), origin)
	if err != nil {
		t.Fatalf("Origin-bound ticket from its Origin: %v", err)
	}
	c2.expect("welcome")
	// The server keeps serving.
	c.send(frame{"type": "ping"})
	c.expect("pong")
	taken.assertAbsent(t, logs.String())
}

// TestConcurrentRedeem: 64 concurrent handshakes with one ticket open
// exactly one socket.
func TestConcurrentRedeem(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	// 63 refused handshakes from one IP would otherwise block it (and
	// throttle the handshakes) before all 64 were tried.
	s := startServer(t, t.TempDir(), logs, taken, "--failed-auth-block", "1000", "--handshake-rate", "1000")
	dave := s.register("dave")
	tk := s.ticket(dave)
	var opened, refused atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			c, status, err := s.dial("ticket="+tk, nil)
			switch {
			case err == nil:
				opened.Add(1)
				c.close()
			case status == 401:
				refused.Add(1)
			default:
				t.Errorf("dial: %d %v", status, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if opened.Load() != 1 || refused.Load() != 63 {
		t.Fatalf("opened %d, refused %d; want 1 and 63", opened.Load(), refused.Load())
	}
	taken.assertAbsent(t, logs.String())
}

// TestTicketExpires: a ticket is refused after --ticket-ttl.
func TestTicketExpires(t *testing.T) {
	t.Parallel()
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken, "--ticket-ttl", "5s")
	erin := s.register("erin")
	tk := s.ticket(erin)
	time.Sleep(5*time.Second + 200*time.Millisecond)
	if _, status, err := s.dial("ticket="+tk, nil); err == nil || status != 401 {
		t.Fatalf("expired ticket: %d %v, want 401", status, err)
	}
}

// TestBadInputKeepsServing: every malformed request gets its contract error
// and neither the socket nor the server goes down; an oversized frame
// closes 1009.
func TestBadInputKeepsServing(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken, "--max-message-bytes", "16384")
	fred := s.register("fred")

	// REST.
	rest := []struct {
		name          string
		method, path  string
		body          any
		status        int
		code          string
		sameAsUnknown bool
	}{
		{"wrong password", "POST", "/api/auth/login", map[string]string{"username": "fred", "password": "wrong-password"}, 401, "invalid_credentials", true},
		{"unknown user", "POST", "/api/auth/login", map[string]string{"username": "nobody", "password": "wrong-password"}, 401, "invalid_credentials", true},
		{"short username", "POST", "/api/auth/register", map[string]string{"username": "x", "password": "long-enough-1"}, 400, "invalid_request", false},
		{"unknown field", "POST", "/api/auth/login", map[string]any{"username": "fred", "password": "x", "admin": true}, 400, "invalid_request", false},
		{"taken", "POST", "/api/auth/register", map[string]string{"username": "FRED", "password": "long-enough-1"}, 409, "username_taken", false},
		{"me without credential", "GET", "/api/me", nil, 401, "unauthenticated", false},
		{"unknown path", "GET", "/api/nope", nil, 404, "not_found", false},
		{"ws without upgrade", "GET", "/ws", nil, 400, "invalid_request", false},
	}
	var unknownUser, wrongPassword string
	for _, tc := range rest {
		r := s.call(tc.method, tc.path, tc.body, nil)
		if r.status != tc.status || r.code() != tc.code || r.body["success"] != false {
			t.Errorf("%s: %s, want %d %s", tc.name, r, tc.status, tc.code)
		}
		switch tc.name {
		case "wrong password":
			wrongPassword = r.raw
		case "unknown user":
			unknownUser = r.raw
		}
	}
	if unknownUser != wrongPassword {
		t.Errorf("unknown user and wrong password answer differently:\n%s\n%s", unknownUser, wrongPassword)
	}
	big := bytes.Repeat([]byte("a"), 70<<10)
	req, _ := http.NewRequest("POST", s.url+"/api/auth/login", bytes.NewReader(append(append([]byte(`{"username":"`), big...), `"}`...)))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 413 {
		t.Errorf("body over 64 KiB: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// Socket.
	c := s.open(fred)
	frames := []struct {
		name string
		raw  string
		code string
	}{
		{"invalid JSON", `{"type":`, "invalid_request"},
		{"unknown type", `{"type":"dance"}`, "invalid_request"},
		{"bad room", `{"type":"join","room":"Bad Room!"}`, "invalid_request"},
		{"not joined", `{"type":"publish","room":"r","text":"x","client_id":"k1"}`, "not_joined"},
		{"history limit", `{"type":"history","room":"r","limit":501}`, "invalid_request"},
	}
	for _, tc := range frames {
		c.sendRaw([]byte(tc.raw))
		if e := c.expect("error"); e.str("code") != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, e, tc.code)
		}
	}
	c.send(frame{"type": "join", "room": "r"})
	c.expect("joined")
	for _, tc := range []struct{ text, code string }{{"", "invalid_request"}, {strings.Repeat("é", 4001), "too_long"}} {
		c.send(frame{"type": "publish", "room": "r", "text": tc.text, "client_id": "ref-1"})
		if e := c.expect("error"); e.str("code") != tc.code || e.str("ref") != "ref-1" {
			t.Errorf("text of %d bytes: %v, want %s", len(tc.text), e, tc.code)
		}
	}
	c.send(frame{"type": "ping"})
	c.expect("pong")
	taken.assertAbsent(t, logs.String())
}

// TestFrameOverLimitCloses1009: a frame over --max-message-bytes closes the
// socket 1009 and the server keeps serving. The frame is small enough for
// the client to write in one go, so the close frame is not lost to a reset.
func TestFrameOverLimitCloses1009(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken, "--max-message-bytes", "1024")
	kate := s.register("kate")
	c := s.open(kate)
	c.sendRaw(bytes.Repeat([]byte(" "), 1100))
	// The reason is the library's fixed text (docs/api.md, "JSON protocol").
	if code, _ := c.closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: close %d, want 1009", code)
	}
	c2 := s.open(kate)
	c2.send(frame{"type": "ping"})
	c2.expect("pong")
}

// TestUserAddAndClosedRegistration: `tollgate user add` creates an account
// (password on stdin) that logs in on a server with registration closed,
// where POST /api/auth/register is refused.
func TestUserAddAndClosedRegistration(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	noEnv := func(string) string { return "" }
	code := run(t.Context(), []string{"user", "add", "grace", "--admin", "--data-dir", dir},
		strings.NewReader("grace-password-1\n"), &out, &errOut, noEnv)
	if code != 0 || !strings.Contains(out.String(), "created admin grace") {
		t.Fatalf("user add: %d %q %q", code, out.String(), errOut.String())
	}
	if code := run(t.Context(), []string{"user", "add", "grace", "--data-dir", dir},
		strings.NewReader("grace-password-2\n"), &out, &errOut, noEnv); code == 0 {
		t.Fatal("adding a taken name succeeded")
	}
	if code := run(t.Context(), []string{"user", "add", "henry", "--data-dir", dir},
		strings.NewReader("short\n"), &out, &errOut, noEnv); code == 0 {
		t.Fatal("a short password was accepted")
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		// t.TempDir is 0700 already; check a data dir the command creates.
		t.Logf("temp dir mode %v", fi.Mode())
	}
	fresh := filepath.Join(dir, "sub", "data")
	if code := run(t.Context(), []string{"user", "add", "ivan", "--data-dir", fresh},
		strings.NewReader("ivan-password-1\r\n"), &out, &errOut, noEnv); code != 0 {
		t.Fatalf("user add in a new dir: %s", errOut.String())
	}
	for path, want := range map[string]os.FileMode{fresh: 0o700, filepath.Join(fresh, "jwt.key"): 0o600, filepath.Join(fresh, DatabaseFile): 0o600} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %v", path, fi.Mode().Perm(), err, want)
		}
	}

	logs, taken := &syncBuffer{}, &secrets{}
	taken.add("grace-password-1", "ivan-password-1")
	s := startServer(t, dir, logs, taken, "--registration", "closed")
	g := s.login("grace", "grace-password-1")
	if r := s.call("GET", "/api/me", nil, bearer(g.access)); r.status != 200 || !strings.Contains(r.raw, `"admin":true`) {
		t.Fatalf("/api/me of an admin: %s", r)
	}
	if r := s.call("POST", "/api/auth/register", map[string]string{"username": "mallory", "password": "long-enough-1"}, nil); r.status != 403 || r.code() != "forbidden" {
		t.Fatalf("register while closed: %s", r)
	}
	s2 := startServer(t, fresh, logs, taken)
	s2.login("ivan", "ivan-password-1") // the CR of a CRLF line is not part of the password
	taken.assertAbsent(t, logs.String()+out.String()+errOut.String())
}

// TestBadSettingFailsAtStart: a bad value is an error naming the setting,
// not a silent default.
func TestBadSettingFailsAtStart(t *testing.T) {
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"serve", "--ticket-ttl", "1s"}, nil, "--ticket-ttl"},
		{[]string{"serve", "--addr", "nope"}, nil, "--addr"},
		{[]string{"serve", "--max-message-bytes", "ten"}, nil, "--max-message-bytes"},
		{[]string{"serve"}, map[string]string{"TOLLGATE_REGISTRATION": "maybe"}, "TOLLGATE_REGISTRATION"},
		{[]string{"serve", "--no-such-flag"}, nil, "no-such-flag"},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		getenv := func(k string) string { return tc.env[k] }
		code := run(t.Context(), append(tc.args, "--data-dir", t.TempDir()), strings.NewReader(""), &out, &errOut, getenv)
		if code == 0 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v %v: exit %d, stderr %q; want an error naming %s", tc.args, tc.env, code, errOut.String(), tc.want)
		}
	}
	var out bytes.Buffer
	if code := run(t.Context(), []string{"version"}, nil, &out, &out, nil); code != 0 || !strings.HasPrefix(out.String(), "tollgate ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}
