package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/internal/storetest"
	"github.com/tollgate-ws/tollgate/internal/testenv"

	"github.com/tollgate-ws/tollgate/internal/logbuf"
)

// testPrefix returns a key prefix of its own for one test, so that parallel
// tests (and runs) sharing one Redis never see each other's keys.
func testPrefix() string { return "tollgate-test:" + rand.Text()[:16] + ":" }

// openTest opens a Client on the test Redis with prefix (a fresh one when
// empty); it is closed, and its keys deleted, when the test ends.
func openTest(t testing.TB, prefix string, opts Options) *Client {
	t.Helper()
	return openURL(t, testenv.Redis(t), prefix, opts)
}

func openURL(t testing.TB, rawURL, prefix string, opts Options) *Client {
	t.Helper()
	if prefix == "" {
		prefix = testPrefix()
	}
	opts.Prefix = prefix
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Open(ctx, rawURL, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		deleteKeys(t, ctx, c.rdb, prefix)
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// deleteKeys deletes every key under prefix.
func deleteKeys(t testing.TB, ctx context.Context, rdb *goredis.Client, prefix string) {
	t.Helper()
	iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Errorf("scan %s*: %v", prefix, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := rdb.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Errorf("delete test keys: %v", err)
			return
		}
		keys = keys[n:]
	}
}

func TestTickets(t *testing.T) {
	t.Parallel()
	storetest.Tickets(t, func(t *testing.T) tollgate.TicketStore { return openTest(t, "", Options{}) })
}

func TestBroker(t *testing.T) {
	t.Parallel()
	storetest.Broker(t, func(t *testing.T) tollgate.Broker { return openTest(t, "", Options{}) })
}

func TestRateCounter(t *testing.T) {
	t.Parallel()
	storetest.RateCounter(t, func(t *testing.T) tollgate.RateCounter { return openTest(t, "", Options{}) })
}

func TestBlocklist(t *testing.T) {
	t.Parallel()
	storetest.Blocklist(t, func(t *testing.T) tollgate.Blocklist { return openTest(t, "", Options{}) })
}

// TestRedeemAcrossNodes races 64 redeems of one ticket on four clients (four
// "nodes", each with its own connection pool): exactly one wins.
func TestRedeemAcrossNodes(t *testing.T) {
	t.Parallel()
	prefix := testPrefix()
	nodes := make([]*Client, 4)
	for i := range nodes {
		nodes[i] = openTest(t, prefix, Options{})
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for round := range 20 {
		now := time.Now()
		tk := tollgate.Ticket{Hash: tollgate.HashTicket(tollgate.Secret(rand.Text())), UserID: "u-1", UserName: "alice",
			SessionID: "s-1", ExpiresAt: now.Add(30 * time.Second)}
		if err := nodes[round%len(nodes)].Put(ctx, tk); err != nil {
			t.Fatalf("Put: %v", err)
		}
		const n = 64
		var won, notFound atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				_, err := nodes[i%len(nodes)].Redeem(ctx, tk.Hash, time.Now())
				switch {
				case err == nil:
					won.Add(1)
				case errors.Is(err, tollgate.ErrNotFound):
					notFound.Add(1)
				default:
					t.Errorf("Redeem: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if won.Load() != 1 || notFound.Load() != n-1 {
			t.Fatalf("round %d: %d redeems won, %d not found; want 1 and %d", round, won.Load(), notFound.Load(), n-1)
		}
	}
}

func TestTicketPutTwiceConflicts(t *testing.T) {
	t.Parallel()
	c := openTest(t, "", Options{})
	ctx := t.Context()
	tk := tollgate.Ticket{Hash: tollgate.HashTicket("x"), UserID: "u-1", ExpiresAt: time.Now().Add(time.Minute)}
	if err := c.Put(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, tk); !errors.Is(err, tollgate.ErrConflict) {
		t.Fatalf("second Put = %v, want ErrConflict", err)
	}
}

// TestTicketTTL checks that Redis forgets a ticket soon after it expires,
// and that an expired ticket's record is not kept.
func TestTicketTTL(t *testing.T) {
	t.Parallel()
	c := openTest(t, "", Options{})
	ctx := t.Context()
	tk := tollgate.Ticket{Hash: tollgate.HashTicket("y"), UserID: "u-1", ExpiresAt: time.Now().Add(30 * time.Second)}
	if err := c.Put(ctx, tk); err != nil {
		t.Fatal(err)
	}
	ttl, err := c.rdb.PTTL(ctx, c.ticketKey(tk.Hash)).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 29*time.Second || ttl > 30*time.Second+ticketSlack {
		t.Fatalf("PTTL = %v, want about 30s + %v", ttl, ticketSlack)
	}
}

// recorder keeps what a broker delivers.
type recorder struct {
	mu       sync.Mutex
	messages []tollgate.Message
	controls []tollgate.ControlEvent
	changed  chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) HandleMessage(m tollgate.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, m)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) HandleControl(e tollgate.ControlEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.controls = append(r.controls, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

// waitFor waits until ok (called under r.mu) holds, or fails t after 10 s.
func (r *recorder) waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		done, changed := ok(), r.changed
		r.mu.Unlock()
		if done {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// hasControl reports whether a control event with target arrived (r.mu held).
func (r *recorder) hasControl(target string) bool {
	for _, e := range r.controls {
		if e.Target == target {
			return true
		}
	}
	return false
}

// run runs c's broker with handler r until the test ends.
func run(t *testing.T, c *Client, r *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, r) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

// untilDelivered publishes control events with fresh targets from c until
// every recorder has received one, so that their subscriptions are known to
// be up.
func untilDelivered(t *testing.T, c *Client, rs ...*recorder) {
	t.Helper()
	ctx := t.Context()
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		target := fmt.Sprintf("probe-%d", i)
		if err := c.PublishControl(ctx, tollgate.ControlEvent{Kind: "probe", Target: target}); err != nil &&
			!errors.Is(err, tollgate.ErrUnavailable) {
			t.Fatalf("PublishControl: %v", err)
		}
		wait := time.After(50 * time.Millisecond)
		all := func() bool {
			for _, r := range rs {
				r.mu.Lock()
				ok := r.hasControl(target)
				r.mu.Unlock()
				if !ok {
					return false
				}
			}
			return true
		}
		<-wait
		if all() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker delivered nothing within 15 s")
		}
	}
}

// TestBrokerTwoNodes: two clients on one prefix (two nodes) both receive a
// message and a control event published by one of them.
func TestBrokerTwoNodes(t *testing.T) {
	t.Parallel()
	prefix := testPrefix()
	a, b := openTest(t, prefix, Options{}), openTest(t, prefix, Options{})
	ra, rb := newRecorder(), newRecorder()
	run(t, a, ra)
	run(t, b, rb)
	untilDelivered(t, a, ra, rb)

	ctx := t.Context()
	ts := time.Now().UTC()
	want := tollgate.Message{Room: "general", ID: 7, UserID: "u-1", UserName: "alice", Text: "hello ü€😀", ClientID: "c-1", TS: ts}
	if err := a.Publish(ctx, want); err != nil {
		t.Fatal(err)
	}
	ev := tollgate.ControlEvent{Kind: tollgate.ControlRevokeSession, Target: "s-1", Code: tollgate.CodeSessionRevoked, At: ts}
	if err := b.PublishControl(ctx, ev); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*recorder{"a": ra, "b": rb} {
		r.waitFor(t, "node "+name+": the message and the control event", func() bool {
			return len(r.messages) == 1 && r.hasControl("s-1")
		})
		r.mu.Lock()
		got := r.messages[0]
		var gotEv tollgate.ControlEvent
		for _, e := range r.controls {
			if e.Target == "s-1" {
				gotEv = e
			}
		}
		r.mu.Unlock()
		if got.Room != want.Room || got.ID != want.ID || got.UserID != want.UserID || got.UserName != want.UserName ||
			got.Text != want.Text || got.ClientID != want.ClientID || !got.TS.Equal(want.TS) {
			t.Errorf("node %s: message = %+v, want %+v", name, got, want)
		}
		if gotEv.Kind != ev.Kind || gotEv.Code != ev.Code || !gotEv.At.Equal(ev.At) {
			t.Errorf("node %s: control event = %+v, want %+v", name, gotEv, ev)
		}
	}

	// Another prefix is another cluster: it hears nothing of this one.
	other := openTest(t, "", Options{})
	ro := newRecorder()
	run(t, other, ro)
	untilDelivered(t, other, ro)
	if err := a.Publish(ctx, want); err != nil {
		t.Fatal(err)
	}
	ra.waitFor(t, "the second message on node a", func() bool { return len(ra.messages) == 2 })
	ro.mu.Lock()
	defer ro.mu.Unlock()
	if len(ro.messages) != 0 {
		t.Errorf("a client with another prefix received %d messages", len(ro.messages))
	}
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer = logbuf.Buffer

// TestBrokerSurvivesClientKill kills the broker's subscription connection
// with CLIENT KILL, twice, and checks that Run logs it, resubscribes and
// delivers again.
func TestBrokerSurvivesClientKill(t *testing.T) {
	t.Parallel()
	name := "tollgate-test-" + strings.ToLower(rand.Text()[:12])
	u, err := url.Parse(testenv.Redis(t))
	if err != nil {
		t.Fatal("cannot parse the test Redis URL")
	}
	q := u.Query()
	q.Set("client_name", name)
	u.RawQuery = q.Encode()
	var logs syncBuffer
	c := openURL(t, u.String(), "", Options{
		Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond,
	})
	r := newRecorder()
	run(t, c, r)
	untilDelivered(t, c, r)

	for kill := 1; kill <= 2; kill++ {
		ids := subscriberIDs(t, c.rdb, name)
		if len(ids) != 1 {
			t.Fatalf("kill %d: found %d subscribed connections named %s, want 1", kill, len(ids), name)
		}
		if err := c.rdb.Do(t.Context(), "CLIENT", "KILL", "ID", ids[0]).Err(); err != nil {
			t.Fatalf("CLIENT KILL: %v", err)
		}
		untilDelivered(t, c, r)
		if n := strings.Count(logs.String(), "subscription lost"); n < kill {
			t.Errorf("after kill %d: %d warnings logged, want at least %d; logs:\n%s", kill, n, kill, logs.String())
		}
		if got := subscriberIDs(t, c.rdb, name); len(got) != 1 || got[0] == ids[0] {
			t.Errorf("after kill %d: subscribed connections %v, want one new one (killed %s)", kill, got, ids[0])
		}
	}
	// And messages flow again.
	if err := c.Publish(t.Context(), tollgate.Message{Room: "r", ID: 1, Text: "after", TS: time.Now()}); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "a message after the kills", func() bool { return len(r.messages) == 1 })
}

// subscriberIDs returns the ids of the connections named name that hold a
// subscription.
func subscriberIDs(t *testing.T, rdb *goredis.Client, name string) []string {
	t.Helper()
	list, err := rdb.ClientList(t.Context()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	var ids []string
	for line := range strings.SplitSeq(list, "\n") {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] == name && fields["sub"] != "" && fields["sub"] != "0" {
			ids = append(ids, fields["id"])
		}
	}
	return ids
}

// TestUnreachable: a server that does not answer gives ErrUnavailable, and
// neither that error nor a URL parse error shows the password.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-Pa55word"
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, url   string
		unavailable bool
	}{
		{"closed port", "redis://user:" + secret + "@127.0.0.1:1/0?dial_timeout=200ms", true},
		{"unparsable", "redis://user:" + secret + "@127.0.0.1:x/0", false},
		{"password breaks the authority", "redis://:" + secret + "/x@127.0.0.1/0", false},
		{"unknown option", "redis://:" + secret + "@127.0.0.1/0?" + secret + "=1", false},
		{"bad scheme", "http://:" + secret + "@127.0.0.1/0", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Open(ctx, tc.url, Options{})
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
			if errors.Is(err, tollgate.ErrUnavailable) != tc.unavailable {
				t.Errorf("Open = %v; wrapping ErrUnavailable: %v, want %v", err, !tc.unavailable, tc.unavailable)
			}
		})
	}
}

// TestClosed: every call after Close fails with ErrUnavailable.
func TestClosed(t *testing.T) {
	t.Parallel()
	c := openTest(t, "", Options{})
	ctx := t.Context()
	prefix := c.prefix
	raw, err := Open(ctx, testenv.Redis(t), Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := raw.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	now := time.Now()
	for name, err := range map[string]error{
		"Ping":    raw.Ping(ctx),
		"Put":     raw.Put(ctx, tollgate.Ticket{ExpiresAt: now.Add(time.Minute)}),
		"Publish": raw.Publish(ctx, tollgate.Message{Room: "r"}),
		"Block":   raw.Block(ctx, tollgate.Block{Kind: tollgate.BlockIP, Target: "x", Until: now.Add(time.Minute)}),
	} {
		if !errors.Is(err, tollgate.ErrUnavailable) {
			t.Errorf("%s after Close = %v, want ErrUnavailable", name, err)
		}
	}
	_, err = raw.Redeem(ctx, tollgate.TicketHash{}, now)
	if !errors.Is(err, tollgate.ErrUnavailable) {
		t.Errorf("Redeem after Close = %v, want ErrUnavailable", err)
	}
	_, _, err = raw.Incr(ctx, "k", 1, time.Minute, now)
	if !errors.Is(err, tollgate.ErrUnavailable) {
		t.Errorf("Incr after Close = %v, want ErrUnavailable", err)
	}
	// Run after Close keeps retrying until its context ends.
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := raw.Run(rctx, newRecorder()); err != nil {
		t.Errorf("Run after Close = %v, want nil when its context ends", err)
	}
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	c := openTest(t, "", Options{})
	r := newRecorder()
	run(t, c, r)
	untilDelivered(t, c, r)
	if err := c.Run(t.Context(), r); err == nil {
		t.Fatal("a second Run succeeded")
	}
	if err := c.Run(t.Context(), nil); err == nil {
		t.Fatal("Run with a nil handler succeeded")
	}
}

func TestIncrRejectsBadWindow(t *testing.T) {
	t.Parallel()
	c := openTest(t, "", Options{})
	if _, _, err := c.Incr(t.Context(), "k", 1, 0, time.Now()); err == nil {
		t.Fatal("Incr with a zero window succeeded")
	}
}
