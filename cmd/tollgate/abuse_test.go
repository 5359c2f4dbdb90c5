package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const testAdminToken = "admin-token-0123456789abcdef0123456789"

// adminTokenFile writes the operator's admin token where --admin-token-file
// can read it.
func adminTokenFile(t testing.TB, taken *secrets) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(p, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	taken.add(testAdminToken)
	return p
}

// cli runs a tollgate command in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &out, &out, func(string) string { return "" })
	return code, out.String()
}

// TestRateLimitBlockAndAdmin: the 11th publish within the window is refused
// with rate_limited and the socket keeps working; after the window publishing
// works again; repeated violations block the user (socket closed 1008
// blocked, tickets and handshakes 403); the admin unblocks through the CLI
// and the user is back. A non-admin cannot use the admin API. Afterwards the
// audit log holds every event of the session, verifies, and detects an
// edited, removed or reordered line.
func TestRateLimitBlockAndAdmin(t *testing.T) {
	dir := t.TempDir()
	logs, taken := &syncBuffer{}, &secrets{}
	tokenFile := adminTokenFile(t, taken)
	s := startServer(t, dir, logs, taken,
		"--publish-rate", "10", "--publish-window", "3s",
		"--block-violations", "3", "--block-window", "1m", "--block-duration", "1h",
		"--admin-token-file", tokenFile,
		"--legacy-query-token", "--legacy-query-token-until", time.Now().AddDate(0, 1, 0).Format("2006-01-02"))
	lena := s.register("lena")
	c := s.open(lena)
	c.send(frame{"type": "join", "room": "r"})
	c.expect("joined")
	publish := func(i int) {
		c.send(frame{"type": "publish", "room": "r", "text": "m", "client_id": "k" + string(rune('a'+i))})
	}
	// Ten publishes pass; the eleventh is refused, the socket stays.
	for i := range 10 {
		publish(i)
	}
	acks := 0
	for acks < 10 {
		if f := c.read(); f.str("type") == "ack" {
			acks++
		}
	}
	publish(10)
	e := c.expect("error")
	if e.str("code") != "rate_limited" || e.num("retry_after") < 1 || e.str("ref") != "kk" {
		t.Fatalf("11th publish: %v", e)
	}
	c.send(frame{"type": "ping"})
	c.expect("pong")
	time.Sleep(time.Duration(e.num("retry_after"))*time.Second + 100*time.Millisecond)
	publish(11)
	for {
		if f := c.read(); f.str("type") == "ack" {
			break
		} else if f.str("type") == "error" {
			t.Fatalf("publish after the window: %v", f)
		}
	}
	// Two more violations (three in all) block lena. The server may close
	// the socket while the loop is still writing.
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	for range 12 {
		if c.c.Write(wctx, websocket.MessageText, []byte(`{"type":"publish","room":"r","text":"m"}`)) != nil {
			break
		}
	}
	if code, reason := c.closed(); code != websocket.StatusPolicyViolation || reason != "blocked" {
		t.Fatalf("socket after repeated violations: %d %q", code, reason)
	}
	if r := s.call("POST", "/api/auth/ws-ticket", nil, bearer(lena.access)); r.status != 403 || r.code() != "blocked" {
		t.Fatalf("ticket while blocked: %s", r)
	}
	if _, status, _ := s.dial("", bearer(lena.access)); status != 403 {
		t.Fatalf("handshake while blocked: %d, want 403", status)
	}

	// The admin API: no credential 401, a non-admin 403, the token works.
	mike := s.register("mike")
	if r := s.call("GET", "/api/admin/blocks", nil, nil); r.status != 401 {
		t.Fatalf("admin API without credential: %s", r)
	}
	if r := s.call("GET", "/api/admin/blocks", nil, bearer(mike.access)); r.status != 403 || r.code() != "forbidden" {
		t.Fatalf("admin API as a non-admin: %s", r)
	}
	admin := []string{"--server", s.url, "--admin-token-file", tokenFile}
	if code, out := cli(t, append([]string{"block", "list"}, admin...)...); code != 0 || !strings.Contains(out, "lena") {
		t.Fatalf("block list: %d %s", code, out)
	}
	if code, out := cli(t, append([]string{"block", "remove", "user:lena"}, admin...)...); code != 0 || !strings.Contains(out, "unblocked") {
		t.Fatalf("block remove: %d %s", code, out)
	}
	c2 := s.open(lena)
	c2.send(frame{"type": "ping"})
	c2.expect("pong")
	// An admin block by IP closes the socket and refuses the IP.
	if code, out := cli(t, append([]string{"block", "add", "ip:127.0.0.1", "--for", "1m", "--reason", "test"}, admin...)...); code != 0 {
		t.Fatalf("block add: %d %s", code, out)
	}
	if code, reason := c2.closed(); code != websocket.StatusPolicyViolation || reason != "blocked" {
		t.Fatalf("socket after an IP block: %d %q", code, reason)
	}
	if r := s.call("POST", "/api/auth/login", map[string]string{"username": "mike", "password": mike.password}, nil); r.status != 403 || r.code() != "blocked" {
		t.Fatalf("login from a blocked IP: %s", r)
	}
	if code, _ := cli(t, append([]string{"block", "remove", "ip:127.0.0.1"}, admin...)...); code != 0 {
		t.Fatal("unblocking the IP failed")
	}
	if code, out := cli(t, append([]string{"block", "add", "user:nobody-here"}, admin...)...); code == 0 || !strings.Contains(out, "not_found") {
		t.Fatalf("blocking an unknown user: %d %s", code, out)
	}

	// The rest of the audited events: a failed login, a rejected handshake,
	// a refresh, a legacy ?token=, an admin revocation of a session.
	s.call("POST", "/api/auth/login", map[string]string{"username": "mike", "password": "wrong-password"}, nil)
	s.dial("ticket=not-a-ticket", nil)
	r := s.call("POST", "/api/auth/refresh", map[string]string{"refresh_token": mike.refresh}, nil)
	if r.status != 200 {
		t.Fatalf("refresh: %s", r)
	}
	taken.add(r.str("access_token"), r.str("refresh_token"))
	lc, _, err := s.dial("token="+r.str("access_token"), nil)
	if err != nil {
		t.Fatalf("legacy ?token=: %v", err)
	}
	lc.expect("welcome")
	req, _ := http.NewRequest("POST", s.url+"/api/admin/users/mike/revoke-sessions", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke-sessions: %v %v", resp, err)
	}
	if code, reason := lc.closed(); code != websocket.StatusPolicyViolation || reason != "session_revoked" {
		t.Fatalf("socket after revoke-sessions: %d %q", code, reason)
	}
	s.shutdown()

	path := filepath.Join(dir, AuditFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{"register", "login", "login_failed", "ticket_issued", "connect", "handshake_rejected",
		"disconnect", "rate_limited", "blocked", "unblocked", "token_refreshed", "session_revoked", "legacy_token_used"} {
		if !bytes.Contains(raw, []byte(`"event":"`+ev+`"`)) {
			t.Errorf("the audit log has no %q event", ev)
		}
	}
	if !bytes.Contains(raw, []byte(`"ip":"127.0.0.1"`)) {
		t.Error("the audit log names no IP")
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if bytes.Contains(line, []byte(`"event":"rate_limited"`)) && bytes.Contains(line, []byte(`"reason":"publish"`)) &&
			!bytes.Contains(line, []byte(`"conn_id":"`)) {
			t.Errorf("a refused publish is audited without its socket: %s", line)
		}
	}
	taken.assertAbsent(t, string(raw))
	taken.assertAbsent(t, logs.String())
	if code, out := cli(t, "audit", "verify", path); code != 0 || !strings.Contains(out, "chain intact") {
		t.Fatalf("audit verify of an intact log: %d %s", code, out)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(string(raw), "\n"), "\n")
	// Each change shows as a broken prev on the first line after it.
	tamper := []struct {
		name string
		f    func([]string) []string
		line string
	}{
		{"edited", func(l []string) []string {
			l[3] = strings.Replace(l[3], `"ts":"`, `"ts":"1`, 1)
			return l
		}, "line 5"},
		{"removed", func(l []string) []string { return append(l[:3], l[4:]...) }, "line 4"},
		{"reordered", func(l []string) []string { l[3], l[4] = l[4], l[3]; return l }, "line 4"},
	}
	for _, tc := range tamper {
		bad := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(bad, []byte(strings.Join(tc.f(append([]string(nil), lines...)), "")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out := cli(t, "audit", "verify", bad)
		if code == 0 || !strings.Contains(out, tc.line+":") {
			t.Errorf("audit verify of a log with a line %s: %d %s (want a failure at %s)", tc.name, code, out, tc.line)
		}
	}
}

// TestConnectionCapsAndFloods: sockets beyond the per-user cap get 429 with
// Retry-After; a handshake flood from one IP is throttled while another IP
// still connects.
func TestConnectionCapsAndFloods(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken, "--max-sockets-per-user", "2", "--handshake-rate", "6")
	nina := s.register("nina")
	a, b := s.open(nina), s.open(nina)
	_, _ = a, b
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, s.ws, &websocket.DialOptions{HTTPHeader: bearer(nina.access)})
	if err == nil || resp == nil || resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third socket of a user capped at 2: %v %v", resp, err)
	}
	// Handshakes 1-3 above were from 127.0.0.1; three more are allowed.
	throttled := false
	for range 6 {
		if _, status, _ := s.dial("", bearer(nina.access)); status == 429 {
			throttled = true
			break
		}
	}
	if !throttled {
		t.Fatal("a handshake flood from one IP was not throttled")
	}
	// Another IP still connects.
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	a.close()
	time.Sleep(200 * time.Millisecond) // the closed socket frees its slot
	c, _, err := websocket.Dial(ctx2, s.ws, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: bearer(nina.access)})
	if err != nil {
		t.Fatalf("a handshake from another IP during the flood: %v", err)
	}
	c.CloseNow()
}

// TestSlowAndSilentPeersAreCut: half an HTTP request is cut within
// --read-header-timeout; a socket that answers no pings is cut after
// --idle-timeout.
func TestSlowAndSilentPeersAreCut(t *testing.T) {
	t.Parallel()
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken, "--read-header-timeout", "1s", "--idle-timeout", "5s", "--ping-interval", "1s")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = bufio.NewReader(conn).ReadString(0) // until the server closes
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("half a request held the connection for %s", waited)
	}

	olga := s.register("olga")
	c := s.open(olga)
	// Read nothing for longer than the idle timeout: coder/websocket
	// answers pings only while a Read is pending, so this peer is silent.
	time.Sleep(7 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		if _, _, err := c.c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("a silent socket was not cut after the idle timeout")
			}
			break
		}
	}
}
