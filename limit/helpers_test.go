package limit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/limit"
	"github.com/tollgate-ws/tollgate/memory"
)

var _ hub.PublishLimiter = (*limit.Limiter)(nil)

// t0 starts a window of every length the tests use (a multiple of 10 min
// since the epoch).
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// clock is a settable clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// auditLog records audit events.
type auditLog struct {
	mu     sync.Mutex
	events []tollgate.AuditEvent
}

func (a *auditLog) Record(_ context.Context, e tollgate.AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
}

func (a *auditLog) of(kind tollgate.AuditKind) []tollgate.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []tollgate.AuditEvent
	for _, e := range a.events {
		if e.Event == kind {
			out = append(out, e)
		}
	}
	return out
}

// controls records control events; with fail set, it refuses them.
type controls struct {
	mu     sync.Mutex
	events []tollgate.ControlEvent
	fail   bool
}

func (c *controls) PublishControl(_ context.Context, e tollgate.ControlEvent) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return fmt.Errorf("broker down: %w", tollgate.ErrUnavailable)
	}
	c.events = append(c.events, e)
	return nil
}

func (c *controls) all() []tollgate.ControlEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]tollgate.ControlEvent(nil), c.events...)
}

// env is a Limiter on memory stores with a settable clock and recorders.
type env struct {
	clock   *clock
	counter *memory.RateCounter
	blocks  *memory.Blocklist
	audit   *auditLog
	control *controls
	l       *limit.Limiter
}

// newEnv returns an env whose clock starts at t0 plus one second; cfg's
// clock is replaced.
func newEnv(t testing.TB, cfg limit.Config) *env {
	t.Helper()
	e := &env{clock: &clock{t: t0.Add(time.Second)}, counter: memory.NewRateCounter(), audit: &auditLog{}, control: &controls{}}
	e.blocks = &memory.Blocklist{Now: e.clock.Now}
	cfg.Now = e.clock.Now
	e.l = limit.New(cfg, e.counter, e.blocks, e.control, e.audit)
	return e
}

var (
	alice = tollgate.Principal{UserID: "u-alice", Name: "alice", SessionID: "s-1", Credential: tollgate.CredentialBearer}
	bob   = tollgate.Principal{UserID: "u-bob", Name: "bob", SessionID: "s-2", Credential: tollgate.CredentialTicket}
	anon1 = tollgate.Principal{UserID: "anon-1", Name: "guest-1", Anonymous: true, Credential: tollgate.CredentialAnonymous}
	anon2 = tollgate.Principal{UserID: "anon-2", Name: "guest-2", Anonymous: true, Credential: tollgate.CredentialAnonymous}
	ipA   = tollgate.ClientInfo{IP: "192.0.2.1", Origin: "https://chat.example.com", HasOrigin: true}
	ipB   = tollgate.ClientInfo{IP: "2001:db8::2"}
)

// wantCode fails t unless err is an *tollgate.Error with code c, and returns it.
func wantCode(t testing.TB, what string, err error, c tollgate.Code) *tollgate.Error {
	t.Helper()
	var te *tollgate.Error
	if !errors.As(err, &te) || te.Code != c {
		t.Fatalf("%s: got %v, want an *tollgate.Error %s", what, err, c)
	}
	return te
}

// wantRetry fails t unless err is rate_limited with RetryAfter d.
func wantRetry(t testing.TB, what string, err error, d time.Duration) {
	t.Helper()
	te := wantCode(t, what, err, tollgate.CodeRateLimited)
	if te.RetryAfter != d {
		t.Fatalf("%s: RetryAfter = %v, want %v", what, te.RetryAfter, d)
	}
}

// publishes calls AllowPublish until it refuses (at most max+1 times) and
// returns how many it let through and the refusal.
func (e *env) publishes(t testing.TB, p tollgate.Principal, c tollgate.ClientInfo, max int) (int, error) {
	t.Helper()
	for i := range max + 1 {
		if err := e.l.AllowPublish(context.Background(), p, c); err != nil {
			return i, err
		}
	}
	t.Fatalf("%d publishes let through, more than %d", max+1, max)
	return 0, nil
}

// failCounter is a RateCounter whose store is down.
type failCounter struct{}

func (failCounter) Incr(context.Context, string, int64, time.Duration, time.Time) (int64, int64, error) {
	return 0, 0, fmt.Errorf("redis: dial: %w", tollgate.ErrUnavailable)
}

// failBlocklist is a Blocklist whose store is down.
type failBlocklist struct{}

var errDown = errors.New("redis: connection refused")

func (failBlocklist) Block(context.Context, tollgate.Block) error { return errDown }
func (failBlocklist) Unblock(context.Context, tollgate.BlockKind, string) (bool, error) {
	return false, errDown
}
func (failBlocklist) Blocked(context.Context, tollgate.BlockKind, string, time.Time) (tollgate.Block, bool, error) {
	return tollgate.Block{}, false, errDown
}
func (failBlocklist) List(context.Context, time.Time) ([]tollgate.Block, error) { return nil, errDown }

// parallel runs f n times concurrently, released together, and waits for all.
func parallel(n int, f func(i int)) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}
