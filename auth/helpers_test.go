package auth

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/memory"

	"github.com/tollgate-ws/tollgate/internal/logbuf"
)

// testKey is a fixed 32-byte HS256 key for tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

const (
	testOrigin  = "https://chat.example.com"
	otherOrigin = "https://evil.example.net"
	testPass    = "correct horse battery"
)

// clock is a settable test clock, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// auditLog records audit events, safe for concurrent use.
type auditLog struct {
	mu     sync.Mutex
	events []tollgate.AuditEvent
}

func (a *auditLog) Record(_ context.Context, e tollgate.AuditEvent) {
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
}

func (a *auditLog) kinds() []tollgate.AuditKind {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []tollgate.AuditKind
	for _, e := range a.events {
		out = append(out, e.Event)
	}
	return out
}

func (a *auditLog) last(kind tollgate.AuditKind) (tollgate.AuditEvent, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.events) - 1; i >= 0; i-- {
		if a.events[i].Event == kind {
			return a.events[i], true
		}
	}
	return tollgate.AuditEvent{}, false
}

// controlLog records control events, safe for concurrent use.
type controlLog struct {
	mu     sync.Mutex
	events []tollgate.ControlEvent
}

func (c *controlLog) PublishControl(_ context.Context, e tollgate.ControlEvent) error {
	c.mu.Lock()
	c.events = append(c.events, e)
	c.mu.Unlock()
	return nil
}

func (c *controlLog) all() []tollgate.ControlEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]tollgate.ControlEvent(nil), c.events...)
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer = logbuf.Buffer

type env struct {
	svc      *Service
	clock    *clock
	audit    *auditLog
	control  *controlLog
	users    *memory.UserStore
	sessions *memory.SessionStore
	tickets  *memory.TicketStore
	logs     *syncBuffer
}

// fastArgon keeps tests quick; production defaults are tested separately.
var fastArgon = Argon2{Memory: 64, Time: 1, Threads: 1}

func newEnv(t testing.TB, mutate ...func(*Config)) *env {
	t.Helper()
	ks, err := NewKeySet(testKey)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		clock: newClock(), audit: &auditLog{}, control: &controlLog{},
		users: memory.NewUserStore(), sessions: memory.NewSessionStore(), tickets: memory.NewTicketStore(),
		logs: &syncBuffer{},
	}
	cfg := Config{
		Keys:           ks,
		AllowedOrigins: []string{testOrigin, "http://127.0.0.1:8080"},
		Argon2:         fastArgon,
		Now:            e.clock.Now,
		Logger:         slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Auditor:        e.audit,
		Control:        e.control,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	e.svc, err = New(cfg, e.users, e.sessions, e.tickets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.svc.Close)
	return e
}

// login registers name (if needed) and logs in.
func (e *env) login(t testing.TB, name string) tollgate.Tokens {
	t.Helper()
	ctx := context.Background()
	if _, err := e.svc.users.UserByName(ctx, name); err != nil {
		if _, err := e.svc.Register(ctx, name, testPass, tollgate.ClientInfo{IP: "192.0.2.1"}); err != nil {
			t.Fatalf("register %s: %v", name, err)
		}
	}
	tok, err := e.svc.Login(ctx, name, testPass, tollgate.ClientInfo{IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return tok
}

func (e *env) principal(t testing.TB, tok tollgate.Tokens) tollgate.Principal {
	t.Helper()
	p, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	if err != nil {
		t.Fatalf("VerifyAccess: %v", err)
	}
	return p
}

// code returns the contract code of err ("" for nil).
func code(err error) tollgate.Code { return tollgate.ErrorCode(err) }

func wantCode(t testing.TB, err error, want tollgate.Code) {
	t.Helper()
	if got := code(err); got != want {
		t.Fatalf("code = %q (err %v), want %q", got, err, want)
	}
	if err != nil {
		if _, ok := err.(*tollgate.Error); !ok {
			t.Fatalf("error %T is not a *tollgate.Error", err)
		}
	}
}

func browser(origin string) tollgate.ClientInfo {
	return tollgate.ClientInfo{IP: "198.51.100.7", Origin: origin, HasOrigin: origin != ""}
}

func wsRequest(target string, header http.Header) *http.Request {
	r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080"+target, nil)
	if err != nil {
		panic(err)
	}
	for k, v := range header {
		r.Header[k] = v
	}
	return r
}
