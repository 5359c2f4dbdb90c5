package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate-ws/tollgate/sqlite"
)

// TestExpiryAndRefreshOnLiveSockets, with 10 s access tokens: the warning
// comes before exp; a refresh with a new token of the same user keeps the
// socket open past the old exp; without one the socket closes 1008
// token_expired at exp; a refresh with another user's token closes it.
func TestExpiryAndRefreshOnLiveSockets(t *testing.T) {
	t.Parallel()
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken, "--access-token-ttl", "10s")
	pia, quinn := s.register("pia"), s.register("quinn")

	kept, lapsed, hijacked := s.open(pia), s.open(pia), s.open(pia)
	var exp time.Time
	for _, c := range []*sock{kept, lapsed, hijacked} {
		// Tokens live less than the 60 s warning: it comes at once.
		w := c.expect("token_expiring")
		e, err := time.Parse(time.RFC3339, w.str("expires_at"))
		if err != nil || time.Until(e) > 10*time.Second {
			t.Fatalf("token_expiring: %v", w)
		}
		exp = e
	}
	// Refresh half-way, so that the new token outlives the old one by ~5 s.
	time.Sleep(time.Until(exp) - 5*time.Second)
	r := s.call("POST", "/api/auth/refresh", map[string]string{"refresh_token": pia.refresh}, nil)
	if r.status != 200 {
		t.Fatalf("refresh: %s", r)
	}
	taken.add(r.str("access_token"), r.str("refresh_token"))
	kept.send(frame{"type": "refresh", "token": r.str("access_token")})
	if f := kept.expect("refreshed"); f.str("expires_at") == "" {
		t.Fatalf("refreshed: %v", f)
	}
	hijacked.send(frame{"type": "refresh", "token": quinn.access})
	if code, _ := hijacked.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("refresh with another user's token: close %d, want 1008", code)
	}
	if code, reason := lapsed.closed(); code != websocket.StatusPolicyViolation || reason != "token_expired" {
		t.Fatalf("socket without refresh: %d %q", code, reason)
	}
	time.Sleep(time.Until(exp) + 1500*time.Millisecond)
	kept.send(frame{"type": "ping"})
	for {
		f := kept.read()
		if f.str("type") == "pong" {
			break
		}
		if f.str("type") != "token_expiring" {
			t.Fatalf("refreshed socket after the old exp: %v", f)
		}
	}
	taken.assertAbsent(t, logs.String())
}

// TestRevocationClosesLiveSockets: logout closes that session's socket and
// not the same user's other session; presenting a spent refresh token closes
// the sockets of its session; disabling a user closes all of its sockets.
func TestRevocationClosesLiveSockets(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	tokenFile := adminTokenFile(t, taken)
	s := startServer(t, t.TempDir(), logs, taken, "--admin-token-file", tokenFile)
	rosa := s.register("rosa")
	rosa2 := s.login("rosa", rosa.password)
	a, b := s.open(rosa), s.open(rosa2)

	if r := s.call("POST", "/api/auth/logout", nil, bearer(rosa.access)); r.status != 200 {
		t.Fatalf("logout: %s", r)
	}
	if code, reason := a.closed(); code != websocket.StatusPolicyViolation || reason != "session_revoked" {
		t.Fatalf("socket of the logged-out session: %d %q", code, reason)
	}
	b.send(frame{"type": "ping"})
	b.expect("pong")

	// Refresh-token reuse: the whole session goes.
	r := s.call("POST", "/api/auth/refresh", map[string]string{"refresh_token": rosa2.refresh}, nil)
	if r.status != 200 {
		t.Fatalf("refresh: %s", r)
	}
	taken.add(r.str("access_token"), r.str("refresh_token"))
	if r := s.call("POST", "/api/auth/refresh", map[string]string{"refresh_token": rosa2.refresh}, nil); r.status != 401 {
		t.Fatalf("spent refresh token: %s", r)
	}
	if code, reason := b.closed(); code != websocket.StatusPolicyViolation || reason != "session_revoked" {
		t.Fatalf("socket after refresh-token reuse: %d %q", code, reason)
	}
	if r := s.call("GET", "/api/me", nil, bearer(r.str("access_token"))); r.status != 401 {
		t.Fatalf("the rotated token of a revoked session: %s", r)
	}

	// Disabling closes every socket of the user.
	rosa3, rosa4 := s.login("rosa", rosa.password), s.login("rosa", rosa.password)
	c, d := s.open(rosa3), s.open(rosa4)
	if code, out := cli(t, "user", "disable", "rosa", "--server", s.url, "--admin-token-file", tokenFile); code != 0 {
		t.Fatalf("user disable: %d %s", code, out)
	}
	for _, x := range []*sock{c, d} {
		if code, reason := x.closed(); code != websocket.StatusPolicyViolation || reason != "user_disabled" {
			t.Fatalf("socket of a disabled user: %d %q", code, reason)
		}
	}
	if r := s.call("POST", "/api/auth/login", map[string]string{"username": "rosa", "password": rosa.password}, nil); r.status != 401 {
		t.Fatalf("login of a disabled user: %s", r)
	}
	taken.assertAbsent(t, logs.String())
}

// TestRevalidationCutsSessionsRevokedInTheStore: a session revoked straight
// in the database (no control event) loses its socket at the next
// revalidation.
func TestRevalidationCutsSessionsRevokedInTheStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, dir, logs, taken, "--revalidate-interval", "10s")
	sam := s.register("sam")
	c := s.open(sam)
	var me struct {
		User struct{ ID string } `json:"user"`
	}
	r := s.call("GET", "/api/me", nil, bearer(sam.access))
	if err := json.Unmarshal([]byte(r.raw), &me); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(t.Context(), filepath.Join(dir, DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids, err := db.RevokeUserSessions(t.Context(), me.User.ID, time.Now())
	if err != nil || len(ids) != 1 {
		t.Fatalf("revoking in the store: %v %v", ids, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, _, err := c.c.Read(ctx)
		if err == nil {
			continue
		}
		if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
			t.Fatalf("socket of a session revoked in the store: %v", err)
		}
		break
	}
}

// TestKeyRotation: after `tollgate keys rotate` and SIGHUP, a running server
// signs with the new key (new kid) and still accepts tokens of the old one.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	cmd.Env = append(os.Environ(), "TOLLGATE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, reloaded := make(chan string, 1), make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			if strings.Contains(sc.Text(), "signing keys reloaded") {
				reloaded <- struct{}{}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	s := &testServer{t: t, taken: &secrets{}}
	select {
	case a := <-addr:
		s.url, s.ws = "http://"+a, "ws://"+a+"/ws"
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start")
	}
	old := s.register("tina")
	if code, out := cli(t, "keys", "rotate", "--data-dir", dir); code != 0 || !strings.Contains(out, "new signing key") {
		t.Fatalf("keys rotate: %d %s", code, out)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded:
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not reload its keys on SIGHUP")
	}
	fresh := s.login("tina", old.password)
	if kidOf(t, fresh.access) == kidOf(t, old.access) {
		t.Fatal("after rotation new tokens still carry the old kid")
	}
	for _, tok := range []string{old.access, fresh.access} {
		if r := s.call("GET", "/api/me", nil, bearer(tok)); r.status != 200 {
			t.Fatalf("token after rotation: %s", r)
		}
	}
	c := s.open(old) // a ticket minted with a token of the old key
	c.send(frame{"type": "ping"})
	c.expect("pong")
}

// kidOf reads the kid of a JWT's header.
func kidOf(t *testing.T, jwt string) string {
	t.Helper()
	h, _, _ := strings.Cut(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct{ Kid string }
	if err := json.Unmarshal(b, &hdr); err != nil || hdr.Kid == "" {
		t.Fatalf("JWT header %s: %v", b, err)
	}
	return hdr.Kid
}
