package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate-ws/tollgate/internal/testenv"
)

// cluster is n tollgate nodes on 127.0.0.1 sharing one PostgreSQL schema,
// one Redis key prefix and one signing key, as nodes behind a load balancer
// do. Each node has its own data dir (audit log).
type cluster struct {
	nodes []*testServer
	logs  *syncBuffer
	taken *secrets
}

// startCluster starts n nodes on redisURL (the machine's Redis when "")
// and a fresh schema of the test PostgreSQL.
func startCluster(t testing.TB, n int, redisURL string, extra ...string) *cluster {
	t.Helper()
	if redisURL == "" {
		redisURL = testenv.Redis(t)
	}
	pg := testenv.PostgresSchema(t)
	key := filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(key, []byte(rand.Text()+rand.Text()), 0o600); err != nil {
		t.Fatal(err)
	}
	prefix := "tollgate-test-" + strings.ToLower(rand.Text()[:12]) + ":"
	c := &cluster{logs: &syncBuffer{}, taken: &secrets{}}
	tokenFile := adminTokenFile(t, c.taken)
	for range n {
		args := append([]string{"--redis-url", redisURL, "--redis-prefix", prefix, "--postgres-url", pg,
			"--jwt-secret-file", key, "--admin-token-file", tokenFile}, extra...)
		c.nodes = append(c.nodes, startServer(t, t.TempDir(), c.logs, c.taken, args...))
	}
	return c
}

// TestClusterTicketsFanoutAndRevocation: a ticket from node A opens a socket
// on node B once; of concurrent redeems on A and B exactly one wins (100
// trials); a message published on A reaches members on B and C in order;
// logout on A closes the socket on B; a block made on A is enforced on B;
// the publish rate limit counts a user's publishes on all nodes together.
func TestClusterTicketsFanoutAndRevocation(t *testing.T) {
	c := startCluster(t, 3, "", "--publish-rate", "6", "--publish-window", "1m",
		"--failed-auth-block", "100000", "--handshake-rate", "100000",
		"--session-cache-ttl", "10s") // the longest: revocation must not wait for it
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	uma := a.register("uma")
	vic := b.login("uma", uma.password) // accounts are shared

	// A ticket issued on A opens a socket on B, once.
	tk := a.ticket(uma)
	sb, _, err := b.dial("ticket="+tk, nil)
	if err != nil {
		t.Fatalf("A's ticket on B: %v", err)
	}
	sb.expect("welcome")
	if _, status, _ := cc.dial("ticket="+tk, nil); status != 401 {
		t.Fatalf("the same ticket again on C: %d, want 401", status)
	}

	// Concurrent redeems on two nodes: exactly one socket, 100 times.
	for trial := range 100 {
		tk := a.ticket(uma)
		var opened, refused atomic.Int32
		var wg sync.WaitGroup
		for _, n := range []*testServer{a, b} {
			wg.Go(func() {
				s, status, err := n.dial("ticket="+tk, nil)
				switch {
				case err == nil:
					opened.Add(1)
					s.close()
				case status == 401:
					refused.Add(1)
				default:
					t.Errorf("trial %d: %d %v", trial, status, err)
				}
			})
		}
		wg.Wait()
		if opened.Load() != 1 || refused.Load() != 1 {
			t.Fatalf("trial %d: %d opened, %d refused; want 1 and 1", trial, opened.Load(), refused.Load())
		}
	}

	// Fan-out across nodes, in order.
	walt := b.register("walt")
	pub, onB, onC := a.open(uma), b.open(walt), cc.open(walt)
	for _, s := range []*sock{pub, onB, onC} {
		s.send(frame{"type": "join", "room": "x"})
		s.expect("joined")
	}
	for i := range 5 {
		pub.send(frame{"type": "publish", "room": "x", "text": fmt.Sprintf("m%d", i)})
	}
	for _, s := range []*sock{onB, onC} {
		for i := range 5 {
			m := s.expect("message")
			if m.num("id") != int64(i+1) || m.str("text") != fmt.Sprintf("m%d", i) {
				t.Fatalf("message %d on another node: %v", i, m)
			}
		}
	}

	// The rate limit is per user across nodes: 5 publishes were made on A,
	// the 6th passes on C, the 7th is refused on B.
	onC2 := cc.open(uma)
	onB2 := b.open(uma)
	for _, s := range []*sock{onC2, onB2} {
		s.send(frame{"type": "join", "room": "x"})
		s.expect("joined")
	}
	onC2.send(frame{"type": "publish", "room": "x", "text": "sixth", "client_id": "six"})
	waitFrame(t, onC2, "ack")
	onB2.send(frame{"type": "publish", "room": "x", "text": "seventh", "client_id": "seven"})
	if e := waitFrame(t, onB2, "error"); e.str("code") != "rate_limited" {
		t.Fatalf("7th publish of the user, on another node: %v", e)
	}

	// Logout on A closes the session's socket on B.
	vs := b.open(vic)
	start := time.Now()
	if r := a.call("POST", "/api/auth/logout", nil, bearer(vic.access)); r.status != 200 {
		t.Fatalf("logout on A: %s", r)
	}
	if code, reason := vs.closed(); code != websocket.StatusPolicyViolation || reason != "session_revoked" {
		t.Fatalf("socket on B after logout on A: %d %q", code, reason)
	}
	t.Logf("logout on A closed the socket on B after %s", time.Since(start))
	// B had the session and the token cached a moment ago (its ticket
	// request and redeem); the control event that closed the socket dropped
	// them, so B refuses the token at once, well inside --session-cache-ttl.
	if _, status, _ := b.dial("", bearer(vic.access)); status != 401 {
		t.Fatalf("bearer handshake on B after logout on A: %d, want 401", status)
	}
	if r := b.call("POST", "/api/auth/ws-ticket", nil, bearer(vic.access)); r.status != 401 {
		t.Fatalf("ticket request on B after logout on A: %s, want 401", r)
	}

	// A block made on A is enforced on B: its socket closes, tickets and
	// handshakes there are refused.
	xena := a.register("xena")
	xs := b.open(xena)
	h := bearer(testAdminToken)
	h.Set("Content-Type", "application/json")
	if r := a.call("POST", "/api/admin/blocks", map[string]string{"target": "user:xena"}, h); r.status != 201 {
		t.Fatalf("block on A: %s", r)
	}
	if code, reason := xs.closed(); code != websocket.StatusPolicyViolation || reason != "blocked" {
		t.Fatalf("socket on B after a block on A: %d %q", code, reason)
	}
	if r := b.call("POST", "/api/auth/ws-ticket", nil, bearer(xena.access)); r.status != 403 || r.code() != "blocked" {
		t.Fatalf("ticket on B for a user blocked on A: %s", r)
	}
	if _, status, _ := cc.dial("", bearer(xena.access)); status != 403 {
		t.Fatalf("handshake on C for a user blocked on A: %d", status)
	}
	c.taken.assertAbsent(t, c.logs.String())
}

// waitFrame reads until a frame of type typ, skipping room messages and
// acks of earlier publishes.
func waitFrame(t *testing.T, s *sock, typ string) frame {
	t.Helper()
	for {
		f := s.read()
		if f.str("type") == typ {
			return f
		}
		if f.str("type") != "message" && f.str("type") != "ack" {
			t.Fatalf("want %q, got %v", typ, f)
		}
	}
}

// privateRedis runs a redis-server of the test's own on a free port, so the
// test can stop and start it without touching the machine's Redis.
type privateRedis struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if testenv.InCI() {
			t.Fatal("redis-server is not installed; CI needs it")
		}
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &privateRedis{t: t, port: ln.Addr().(*net.TCPAddr).Port}
	ln.Close()
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.t.TempDir())
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	for range 100 {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatal("the private redis-server did not start")
}

func (r *privateRedis) stop() {
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// TestClusterRedisOutage: with Redis down, handshakes and ticket requests
// fail closed with 503 and /readyz names redis, while open sockets stay;
// when Redis is back the nodes recover by themselves and every
// acknowledged message reaches the other node's members, in order, once.
func TestClusterRedisOutage(t *testing.T) {
	rds := startPrivateRedis(t)
	c := startCluster(t, 2, rds.url(), "--publish-rate", "1000")
	a, b := c.nodes[0], c.nodes[1]
	yara := a.register("yara")
	pub, sub := a.open(yara), b.open(b.login("yara", yara.password))
	for _, s := range []*sock{pub, sub} {
		s.send(frame{"type": "join", "room": "y"})
		s.expect("joined")
	}
	pub.send(frame{"type": "publish", "room": "y", "text": "before", "client_id": "c0"})
	if m := sub.expect("message"); m.num("id") != 1 {
		t.Fatalf("before the outage: %v", m)
	}

	// A block made before the outage must outlive it: Redis keeps nothing
	// on disk here, the nodes put blocks back from PostgreSQL.
	zed := a.register("zed")
	h := bearer(testAdminToken)
	if r := a.call("POST", "/api/admin/blocks", map[string]string{"target": "user:zed"}, h); r.status != 201 {
		t.Fatalf("block: %s", r)
	}

	rds.stop()
	if _, status, _ := a.dial("", bearer(yara.access)); status != 503 {
		t.Fatalf("handshake with Redis down: %d, want 503", status)
	}
	if r := a.call("POST", "/api/auth/ws-ticket", nil, bearer(yara.access)); r.status != 503 || r.code() != "unavailable" {
		t.Fatalf("ticket with Redis down: %s", r)
	}
	if r := b.call("GET", "/readyz", nil, nil); r.status != 503 || !strings.Contains(r.raw, "redis") {
		t.Fatalf("/readyz with Redis down: %s", r)
	}
	// Open sockets stay; a publish is refused (fail closed: the rate limit
	// cannot be checked) and can be retried with its client_id.
	pub.send(frame{"type": "publish", "room": "y", "text": "during", "client_id": "c1"})
	if e := waitFrame(t, pub, "error"); e.str("code") != "unavailable" {
		t.Fatalf("publish with Redis down: %v", e)
	}
	pub.send(frame{"type": "ping"})
	waitFrame(t, pub, "pong")

	rds.start()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range []*testServer{a, b} {
		for n.call("GET", "/readyz", nil, nil).status != 200 {
			if time.Now().After(deadline) {
				t.Fatal("/readyz did not recover after Redis came back")
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The restarted Redis is empty; within the reseed period the block is
	// back and zed is refused again.
	for deadline := time.Now().Add(45 * time.Second); ; {
		if _, status, _ := b.dial("", bearer(zed.access)); status == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a block made before a Redis restart was not enforced after it")
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Publish (retrying the refused message by its client_id, then more)
	// until the other node's member sees deliveries again; whatever was
	// acknowledged must arrive there, in order, once.
	seen := map[int64]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		for i := 1; ctx.Err() == nil && i < 40; i++ {
			pub.send(frame{"type": "publish", "room": "y", "text": fmt.Sprintf("after %d", i), "client_id": fmt.Sprintf("c%d", i)})
			time.Sleep(250 * time.Millisecond)
		}
	}()
	last := int64(1)
	for len(seen) < 5 {
		if ctx.Err() != nil {
			t.Fatalf("after Redis came back the other node received only %d messages", len(seen))
		}
		m := sub.read()
		if m.str("type") != "message" {
			continue
		}
		id := m.num("id")
		if seen[id] || id != last+1 {
			t.Fatalf("message %d after %d (duplicate or gap)", id, last)
		}
		seen[id], last = true, id
	}
}
