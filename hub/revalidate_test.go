package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/memory"
)

// fakeConn is an in-process socket that records how it was closed.
type fakeConn struct {
	id     string
	mu     sync.Mutex
	p      tollgate.Principal
	closed []tollgate.Code
	done   chan struct{} // closed on the first Close
}

func newFakeConn(id string, p tollgate.Principal) *fakeConn {
	return &fakeConn{id: id, p: p, done: make(chan struct{})}
}

func (c *fakeConn) ID() string { return c.id }
func (c *fakeConn) Principal() tollgate.Principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.p
}
func (c *fakeConn) setPrincipal(p tollgate.Principal) {
	c.mu.Lock()
	c.p = p
	c.mu.Unlock()
}
func (c *fakeConn) Client() tollgate.ClientInfo { return tollgate.ClientInfo{IP: "192.0.2.9"} }
func (c *fakeConn) Deliver(*Delivery) bool      { return true }
func (c *fakeConn) Close(err *tollgate.Error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = append(c.closed, err.Code)
	if len(c.closed) == 1 {
		close(c.done)
	}
}

// closes returns the codes the socket was closed with, in order.
func (c *fakeConn) closes() []tollgate.Code {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]tollgate.Code(nil), c.closed...)
}

// countingUsers counts UsersByID calls and the ids asked; it fails while down.
type countingUsers struct {
	tollgate.UserStore
	calls, ids atomic.Int64
	maxBatch   atomic.Int64
	down       atomic.Bool
	asked      sync.Map // id -> times asked
}

func (s *countingUsers) UsersByID(ctx context.Context, ids []string) (map[string]tollgate.User, error) {
	s.calls.Add(1)
	s.ids.Add(int64(len(ids)))
	recordBatch(&s.maxBatch, &s.asked, ids)
	if s.down.Load() {
		return nil, fmt.Errorf("users by id: %w", tollgate.ErrUnavailable)
	}
	return s.UserStore.UsersByID(ctx, ids)
}

// countingSessions counts SessionsByID calls; it fails while down and runs
// hook (if set) before answering.
type countingSessions struct {
	tollgate.SessionStore
	calls, ids atomic.Int64
	maxBatch   atomic.Int64
	down       atomic.Bool
	asked      sync.Map
	hook       func()
}

func (s *countingSessions) SessionsByID(ctx context.Context, ids []string) (map[string]tollgate.Session, error) {
	s.calls.Add(1)
	s.ids.Add(int64(len(ids)))
	recordBatch(&s.maxBatch, &s.asked, ids)
	if s.hook != nil {
		s.hook()
	}
	if s.down.Load() {
		return nil, fmt.Errorf("sessions by id: %w", tollgate.ErrUnavailable)
	}
	return s.SessionStore.SessionsByID(ctx, ids)
}

func recordBatch(maxBatch *atomic.Int64, asked *sync.Map, ids []string) {
	for {
		cur := maxBatch.Load()
		if int64(len(ids)) <= cur || maxBatch.CompareAndSwap(cur, int64(len(ids))) {
			break
		}
	}
	for _, id := range ids {
		n, _ := asked.LoadOrStore(id, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newRevalidateHub(t testing.TB, logs *lockedWriter, now func() time.Time) *Hub {
	t.Helper()
	cfg := Config{Messages: memory.NewMessageStore(), Broker: memory.NewBroker(), Now: now}
	if logs != nil {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// lockedWriter serializes writes to a buffer shared with the test.
type lockedWriter struct {
	mu sync.Mutex
	w  bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// revalidateFixture holds users and sessions in every state revalidation
// distinguishes.
type revalidateFixture struct {
	users    *memory.UserStore
	sessions *memory.SessionStore
}

func newRevalidateFixture(t testing.TB) revalidateFixture {
	t.Helper()
	ctx := context.Background()
	f := revalidateFixture{users: memory.NewUserStore(), sessions: memory.NewSessionStore()}
	for _, u := range []tollgate.User{
		{ID: "u-alice", Name: "alice"},
		{ID: "u-bob", Name: "bob", Disabled: true},
		{ID: "u-carol", Name: "carol"},
		{ID: "u-dave", Name: "dave"},
		{ID: "u-erin", Name: "erin"},
	} {
		if err := f.users.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range []tollgate.Session{
		{ID: "s-alice", UserID: "u-alice", ExpiresAt: t0.Add(time.Hour)},
		{ID: "s-alice-2", UserID: "u-alice", ExpiresAt: t0.Add(time.Hour)},
		{ID: "s-bob", UserID: "u-bob", ExpiresAt: t0.Add(time.Hour)},
		{ID: "s-carol", UserID: "u-carol", ExpiresAt: t0.Add(time.Hour), RevokedAt: t0.Add(-time.Minute)},
		{ID: "s-dave", UserID: "u-dave", ExpiresAt: t0.Add(-time.Second)},
		{ID: "s-dave-edge", UserID: "u-dave", ExpiresAt: t0},
		{ID: "s-ghost", UserID: "u-ghost", ExpiresAt: t0.Add(time.Hour)},
	} {
		if err := f.sessions.CreateSession(ctx, s, tollgate.RefreshToken{Hash: fmt.Sprintf("h%d", i), ExpiresAt: s.ExpiresAt}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestRevalidate(t *testing.T) {
	t.Parallel()
	f := newRevalidateFixture(t)
	own := func(user, session string) tollgate.Principal {
		return tollgate.Principal{UserID: user, Name: user, SessionID: session, Credential: tollgate.CredentialBearer}
	}
	cases := []struct {
		name string
		p    tollgate.Principal
		want tollgate.Code // "" = left open
	}{
		{"healthy socket untouched", own("u-alice", "s-alice"), ""},
		{"healthy second session untouched", own("u-alice", "s-alice-2"), ""},
		{"disabled user", own("u-bob", "s-bob"), tollgate.CodeUserDisabled},
		{"disabled user wins over a missing session", own("u-bob", "s-nope"), tollgate.CodeUserDisabled},
		{"revoked session", own("u-carol", "s-carol"), tollgate.CodeSessionRevoked},
		{"expired session", own("u-dave", "s-dave"), tollgate.CodeSessionRevoked},
		{"session expiring exactly now", own("u-dave", "s-dave-edge"), tollgate.CodeSessionRevoked},
		{"unknown session", own("u-erin", "s-unknown"), tollgate.CodeSessionRevoked},
		{"session of another user", own("u-erin", "s-alice"), tollgate.CodeSessionRevoked},
		{"unknown user", own("u-ghost", "s-ghost"), tollgate.CodeUserDisabled},
		{"anonymous untouched", tollgate.Principal{UserID: "anon-0123456789abcdef", Name: "guest-abcdef",
			Anonymous: true, Credential: tollgate.CredentialAnonymous}, ""},
		{"anonymous with a stray session id untouched", tollgate.Principal{UserID: "anon-1", SessionID: "s-carol",
			Anonymous: true, Credential: tollgate.CredentialAnonymous}, ""},
		{"external provider token untouched", tollgate.Principal{UserID: "oidc:0123456789abcdef0123456789abcdef",
			Name: "eve", Issuer: "https://idp.example.com", Credential: tollgate.CredentialBearer}, ""},
		{"pending first-message socket untouched", tollgate.Principal{Credential: tollgate.CredentialFirstMessage}, ""},
	}
	logs := &lockedWriter{}
	h := newRevalidateHub(t, logs, nil)
	conns := make([]*fakeConn, len(cases))
	wantClosed := 0
	for i, tc := range cases {
		conns[i] = newFakeConn(fmt.Sprintf("c%02d", i), tc.p)
		h.Register(conns[i])
		if tc.want != "" {
			wantClosed++
		}
	}
	closed, err := h.Revalidate(context.Background(), f.users, f.sessions, t0)
	if err != nil {
		t.Fatal(err)
	}
	if closed != wantClosed {
		t.Errorf("closed = %d, want %d", closed, wantClosed)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := conns[i].closes()
			switch {
			case tc.want == "" && len(got) != 0:
				t.Fatalf("closed with %v; want it left open", got)
			case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
				t.Fatalf("closed with %v; want exactly [%s]", got, tc.want)
			}
			if tc.want != "" && tollgate.NewError(tc.want).Code.CloseCode() != 1008 {
				t.Fatalf("%s does not close 1008", tc.want)
			}
		})
	}
	if out := logs.String(); !strings.Contains(out, "code=user_disabled") || !strings.Contains(out, "code=session_revoked") {
		t.Errorf("closes not logged with their code: %s", out)
	}
	// Revalidate does not unregister: the socket's own close path does. A
	// second run closes the same sockets again (Close is idempotent in ws).
	if n, err := h.Revalidate(context.Background(), f.users, f.sessions, t0); err != nil || n != wantClosed {
		t.Errorf("second run: closed %d, %v", n, err)
	}
}

func TestRevalidateStoreDownClosesNothing(t *testing.T) {
	t.Parallel()
	for _, which := range []string{"users", "sessions", "both"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			f := newRevalidateFixture(t)
			users := &countingUsers{UserStore: f.users}
			sessions := &countingSessions{SessionStore: f.sessions}
			users.down.Store(which != "sessions")
			sessions.down.Store(which != "users")
			h := newRevalidateHub(t, nil, nil)
			var conns []*fakeConn
			for i, p := range []tollgate.Principal{
				{UserID: "u-bob", SessionID: "s-bob"},     // disabled
				{UserID: "u-carol", SessionID: "s-carol"}, // revoked
				{UserID: "u-ghost", SessionID: "s-ghost"}, // unknown user
				{UserID: "u-alice", SessionID: "s-alice"}, // healthy
			} {
				c := newFakeConn(fmt.Sprint(i), p)
				conns = append(conns, c)
				h.Register(c)
			}
			closed, err := h.Revalidate(context.Background(), users, sessions, t0)
			if !errors.Is(err, tollgate.ErrUnavailable) {
				t.Fatalf("err = %v; want one wrapping ErrUnavailable", err)
			}
			if closed != 0 {
				t.Fatalf("closed = %d with a store down", closed)
			}
			for _, c := range conns {
				if got := c.closes(); len(got) != 0 {
					t.Fatalf("socket %s closed with %v while a store was down", c.id, got)
				}
			}
		})
	}
}

func TestRevalidateCanceledContextClosesNothing(t *testing.T) {
	t.Parallel()
	f := newRevalidateFixture(t)
	h := newRevalidateHub(t, nil, nil)
	c := newFakeConn("c", tollgate.Principal{UserID: "u-bob", SessionID: "s-bob"})
	h.Register(c)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := h.Revalidate(ctx, f.users, f.sessions, t0); err == nil || n != 0 || len(c.closes()) != 0 {
		t.Fatalf("canceled run: closed %d (%v), err %v", n, c.closes(), err)
	}
}

// TestRevalidateRechecksBeforeClosing: a socket that moved to a live session
// (in-band refresh) or went away while the stores were asked is not closed.
func TestRevalidateRechecksBeforeClosing(t *testing.T) {
	t.Parallel()
	f := newRevalidateFixture(t)
	h := newRevalidateHub(t, nil, nil)
	refreshed := newFakeConn("refreshed", tollgate.Principal{UserID: "u-carol", SessionID: "s-carol"})
	gone := newFakeConn("gone", tollgate.Principal{UserID: "u-carol", SessionID: "s-carol"})
	stays := newFakeConn("stays", tollgate.Principal{UserID: "u-carol", SessionID: "s-carol"})
	for _, c := range []*fakeConn{refreshed, gone, stays} {
		h.Register(c)
	}
	sessions := &countingSessions{SessionStore: f.sessions, hook: func() {
		refreshed.setPrincipal(tollgate.Principal{UserID: "u-carol", SessionID: "s-carol-new"})
		h.UpdatePrincipal(refreshed)
		h.Unregister(gone)
	}}
	closed, err := h.Revalidate(context.Background(), f.users, sessions, t0)
	if err != nil || closed != 1 {
		t.Fatalf("closed %d, %v; want 1", closed, err)
	}
	if len(refreshed.closes()) != 0 || len(gone.closes()) != 0 {
		t.Fatalf("refreshed %v, gone %v; want both left alone", refreshed.closes(), gone.closes())
	}
	if got := stays.closes(); len(got) != 1 || got[0] != tollgate.CodeSessionRevoked {
		t.Fatalf("stays: %v", got)
	}
}

// TestRevalidateBatchesStoreCalls: 1,200 sockets of 600 users (two sessions
// each) cost ceil(600/500) user calls and ceil(1200/500) session calls, each
// id asked once, no call over the batch size.
func TestRevalidateBatchesStoreCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	us, ss := memory.NewUserStore(), memory.NewSessionStore()
	h := newRevalidateHub(t, nil, nil)
	const nUsers, perUser = 600, 2
	var victim []*fakeConn
	for u := range nUsers {
		uid := fmt.Sprintf("u%04d", u)
		if err := us.CreateUser(ctx, tollgate.User{ID: uid, Name: fmt.Sprintf("user%04d", u)}); err != nil {
			t.Fatal(err)
		}
		for s := range perUser {
			sid := fmt.Sprintf("s%04d-%d", u, s)
			if err := ss.CreateSession(ctx, tollgate.Session{ID: sid, UserID: uid, ExpiresAt: t0.Add(time.Hour)},
				tollgate.RefreshToken{Hash: "h" + sid, ExpiresAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
			c := newFakeConn(sid, tollgate.Principal{UserID: uid, Name: uid, SessionID: sid})
			h.Register(c)
			if u == 7 {
				victim = append(victim, c)
			}
		}
	}
	if h.Count() != nUsers*perUser {
		t.Fatalf("registered %d sockets", h.Count())
	}
	users := &countingUsers{UserStore: us}
	sessions := &countingSessions{SessionStore: ss}
	closed, err := h.Revalidate(ctx, users, sessions, t0)
	if err != nil || closed != 0 {
		t.Fatalf("healthy run: closed %d, %v", closed, err)
	}
	ceil := func(n int) int64 { return int64((n + RevalidateBatch - 1) / RevalidateBatch) }
	limit := 2 * ceil(nUsers)
	if got := users.calls.Load(); got > limit || got != ceil(nUsers) {
		t.Errorf("UsersByID calls = %d; want %d (limit %d)", got, ceil(nUsers), limit)
	}
	if got := sessions.calls.Load(); got > limit || got != ceil(nUsers*perUser) {
		t.Errorf("SessionsByID calls = %d; want %d (limit %d)", got, ceil(nUsers*perUser), limit)
	}
	if users.maxBatch.Load() > RevalidateBatch || sessions.maxBatch.Load() > RevalidateBatch {
		t.Errorf("batch over %d ids: users %d, sessions %d", RevalidateBatch, users.maxBatch.Load(), sessions.maxBatch.Load())
	}
	if users.ids.Load() != nUsers || sessions.ids.Load() != nUsers*perUser {
		t.Errorf("ids asked: users %d, sessions %d; want each distinct id once", users.ids.Load(), sessions.ids.Load())
	}
	for _, asked := range []*sync.Map{&users.asked, &sessions.asked} {
		asked.Range(func(k, v any) bool {
			if n := v.(*atomic.Int64).Load(); n != 1 {
				t.Errorf("id %v asked %d times", k, n)
			}
			return true
		})
	}

	// One disabled user among 600: both of its sockets close, nothing else.
	if err := us.SetUserDisabled(ctx, "u0007", true); err != nil {
		t.Fatal(err)
	}
	closed, err = h.Revalidate(ctx, users, sessions, t0)
	if err != nil || closed != perUser {
		t.Fatalf("closed %d, %v; want %d", closed, err, perUser)
	}
	for _, c := range victim {
		if got := c.closes(); len(got) != 1 || got[0] != tollgate.CodeUserDisabled {
			t.Fatalf("%s: %v", c.id, got)
		}
	}
}

func TestRunRevalidation(t *testing.T) {
	t.Parallel()
	f := newRevalidateFixture(t)
	logs := &lockedWriter{}
	// The hub's clock, not the wall clock, decides expiry: s-dave-edge
	// expires at t0, which the wall clock passed long ago but this clock
	// reaches only later.
	var now atomic.Int64
	now.Store(t0.Add(-time.Hour).UnixNano())
	h := newRevalidateHub(t, logs, func() time.Time { return time.Unix(0, now.Load()).UTC() })
	expiring := newFakeConn("expiring", tollgate.Principal{UserID: "u-dave", SessionID: "s-dave-edge"})
	healthy := newFakeConn("healthy", tollgate.Principal{UserID: "u-alice", SessionID: "s-alice"})
	h.Register(expiring)
	h.Register(healthy)

	users := &countingUsers{UserStore: f.users}
	sessions := &countingSessions{SessionStore: f.sessions}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.RunRevalidation(ctx, users, sessions, 10*time.Millisecond, nil)
	}()

	waitFor(t, "a few runs", func() bool { return users.calls.Load() >= 3 })
	if len(expiring.closes()) != 0 {
		t.Fatalf("closed before the hub's clock reached the session's end: %v", expiring.closes())
	}
	// A store outage is logged and closes nothing.
	users.down.Store(true)
	now.Store(t0.UnixNano())
	before := users.calls.Load()
	waitFor(t, "a failed run", func() bool { return users.calls.Load() >= before+2 })
	if len(expiring.closes()) != 0 {
		t.Fatalf("closed while the user store was down: %v", expiring.closes())
	}
	users.down.Store(false)
	select {
	case <-expiring.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the expired session's socket was not closed")
	}
	if got := expiring.closes(); got[0] != tollgate.CodeSessionRevoked {
		t.Fatalf("closed with %v", got)
	}
	if len(healthy.closes()) != 0 {
		t.Fatalf("healthy socket closed: %v", healthy.closes())
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunRevalidation did not return after ctx ended")
	}
	if out := logs.String(); !strings.Contains(out, "revalidation failed") {
		t.Errorf("store outage not logged: %s", out)
	}
}

func TestRevalidateJitter(t *testing.T) {
	t.Parallel()
	const interval = 5 * time.Minute
	seen := make(map[time.Duration]bool)
	for range 2000 {
		d := jitter(interval)
		if d < interval*9/10 || d > interval*11/10 {
			t.Fatalf("jitter(%s) = %s; outside ±10%%", interval, d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct waits in 2000: not jittered", len(seen))
	}
	if d := jitter(0); d <= 0 {
		t.Fatalf("jitter(0) = %s", d)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
