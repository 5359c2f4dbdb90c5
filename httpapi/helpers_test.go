package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/memory"

	"github.com/tollgate-ws/tollgate/internal/logbuf"
)

const (
	testOrigin  = "https://chat.example.com"
	otherOrigin = "https://evil.example.net"
	testPass    = "correct horse battery"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

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

// syncBuffer collects log output written from many goroutines.
type syncBuffer = logbuf.Buffer

// acceptor is a fake SocketAcceptor: it records each call and answers 200.
type acceptor struct {
	mu    sync.Mutex
	calls []acceptCall
}

type acceptCall struct {
	p      tollgate.Principal
	c      tollgate.ClientInfo
	header http.Header
}

func (a *acceptor) AcceptSlot(w http.ResponseWriter, r *http.Request, p tollgate.Principal, c tollgate.ClientInfo, release func()) {
	defer release()
	a.mu.Lock()
	a.calls = append(a.calls, acceptCall{p: p, c: c, header: w.Header().Clone()})
	a.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (a *acceptor) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.calls)
}

func (a *acceptor) last() acceptCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[len(a.calls)-1]
}

// tickets is a memory TicketStore that can be switched off ("store down").
type tickets struct {
	*memory.TicketStore
	down atomic.Bool
}

func (t *tickets) Put(ctx context.Context, tk tollgate.Ticket) error {
	if t.down.Load() {
		return tollgate.ErrUnavailable
	}
	return t.TicketStore.Put(ctx, tk)
}

func (t *tickets) Redeem(ctx context.Context, h tollgate.TicketHash, now time.Time) (tollgate.Ticket, error) {
	if t.down.Load() {
		return tollgate.Ticket{}, tollgate.ErrUnavailable
	}
	return t.TicketStore.Redeem(ctx, h, now)
}

type harness struct {
	t       testing.TB
	url     string
	svc     *auth.Service
	api     *Server
	acc     *acceptor
	clock   *clock
	logs    *syncBuffer
	tickets *tickets
	client  *http.Client
}

type options struct {
	auth func(*auth.Config)
	http func(*Config)
	deps func(*Deps)
}

func newHarness(t testing.TB, o options) *harness {
	t.Helper()
	ks, err := auth.NewKeySet(testKey)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t:       t,
		acc:     &acceptor{},
		clock:   &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		logs:    &syncBuffer{},
		tickets: &tickets{TicketStore: memory.NewTicketStore()},
		client:  &http.Client{Timeout: 10 * time.Second},
	}
	logger := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	acfg := auth.Config{
		Keys:           ks,
		AllowedOrigins: []string{testOrigin},
		Argon2:         auth.Argon2{Memory: 64, Time: 1},
		Now:            h.clock.Now,
		Logger:         logger,
	}
	if o.auth != nil {
		o.auth(&acfg)
	}
	h.svc, err = auth.New(acfg, memory.NewUserStore(), memory.NewSessionStore(), h.tickets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.svc.Close)
	cfg := Config{Logger: logger, Now: h.clock.Now}
	if o.http != nil {
		o.http(&cfg)
	}
	deps := Deps{Auth: h.svc, Sockets: h.acc}
	if o.deps != nil {
		o.deps(&deps)
	}
	h.api, err = New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.api.Handler())
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// response is a decoded answer.
type response struct {
	status  int
	header  http.Header
	body    map[string]any
	raw     string
	cookies map[string]*http.Cookie
}

func (r response) code() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r response) str(k string) string { s, _ := r.body[k].(string); return s }

// do sends a request; body is JSON-encoded unless it is a string.
func (h *harness) do(method, path string, body any, header http.Header) response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		bs, _ := json.Marshal(b)
		rd = bytes.NewReader(bs)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := h.client.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, raw: string(raw), cookies: map[string]*http.Cookie{}}
	_ = json.Unmarshal(raw, &out.body)
	for _, c := range resp.Cookies() {
		out.cookies[c.Name] = c
	}
	return out
}

func (h *harness) register(name string) {
	h.t.Helper()
	r := h.do("POST", "/api/auth/register", map[string]string{"username": name, "password": testPass}, nil)
	if r.status != 201 {
		h.t.Fatalf("register: %d %s", r.status, r.raw)
	}
}

func (h *harness) login(name string) response {
	h.t.Helper()
	r := h.do("POST", "/api/auth/login", map[string]string{"username": name, "password": testPass}, nil)
	if r.status != 200 {
		h.t.Fatalf("login: %d %s", r.status, r.raw)
	}
	return r
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

func withOrigin(h http.Header, origin string) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Origin", origin)
	return h
}

func withCookie(h http.Header, name, value string) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Add("Cookie", name+"="+value)
	return h
}

// upgrade adds the headers of a WebSocket opening handshake.
func upgrade(h http.Header) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set("Connection", "Upgrade")
	h.Set("Upgrade", "websocket")
	h.Set("Sec-WebSocket-Version", "13")
	h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	return h
}

// wantError checks the exact JSON error shape, status and code.
func wantError(t testing.TB, r response, status int, code tollgate.Code) {
	t.Helper()
	if r.status != status || r.code() != string(code) {
		t.Fatalf("got %d %s; want %d %s", r.status, r.raw, status, code)
	}
	var shape struct {
		Success *bool `json:"success"`
		Error   *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(r.raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&shape); err != nil || shape.Success == nil || *shape.Success || shape.Error == nil || shape.Error.Message == "" {
		t.Fatalf("error body %q is not exactly {success:false,error:{code,message}}: %v", r.raw, err)
	}
	if len(r.body) != 2 {
		t.Fatalf("error body has extra fields: %s", r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
}
