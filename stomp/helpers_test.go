package stomp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/httpapi"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/jsonproto"
	"github.com/tollgate-ws/tollgate/memory"
	"github.com/tollgate-ws/tollgate/stomp"
	"github.com/tollgate-ws/tollgate/ws"

	"github.com/tollgate-ws/tollgate/internal/logbuf"
)

const testPass = "correct horse battery"

var testKey = []byte("0123456789abcdef0123456789abcdef")

// syncBuffer collects log output written from many goroutines.
type syncBuffer = logbuf.Buffer

// limiter allows `allow` publishes per user, then refuses rate_limited.
type limiter struct {
	mu    sync.Mutex
	allow int
	seen  map[string]int
}

func (l *limiter) AllowPublish(_ context.Context, p tollgate.Principal, _ tollgate.ClientInfo) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[p.UserID]++
	if l.seen[p.UserID] > l.allow {
		return &tollgate.Error{Code: tollgate.CodeRateLimited, RetryAfter: 42 * time.Second}
	}
	return nil
}

// messages wraps the memory store so a test can hold History calls.
type messages struct {
	*memory.MessageStore
	mu      sync.Mutex
	hold    chan struct{} // when set, History waits for it to close
	holding chan struct{} // closed when a History call is waiting
}

func (m *messages) History(ctx context.Context, room string, since int64, limit int) ([]tollgate.Message, error) {
	m.mu.Lock()
	hold, holding := m.hold, m.holding
	m.hold, m.holding = nil, nil
	m.mu.Unlock()
	if hold != nil {
		close(holding)
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return m.MessageStore.History(ctx, room, since, limit)
}

// holdNextHistory makes the next History call wait until release is called;
// waiting is closed once it waits.
func (m *messages) holdNextHistory() (waiting <-chan struct{}, release func()) {
	hold, holding := make(chan struct{}), make(chan struct{})
	m.mu.Lock()
	m.hold, m.holding = hold, holding
	m.mu.Unlock()
	return holding, func() { close(hold) }
}

type stackOpts struct {
	proto        func(*stomp.Config)
	auth         func(*auth.Config)
	ws           func(*ws.Config)
	limit        int // publishes allowed per user; 0: no limiter
	firstMessage bool
}

// stack is the whole server on 127.0.0.1: a real auth.Service over memory
// stores, the real httpapi edge, ws server, hub, and both protocols.
type stack struct {
	t     testing.TB
	url   string // http://127.0.0.1:port
	auth  *auth.Service
	hub   *hub.Hub
	ws    *ws.Server
	msgs  *messages
	logs  *syncBuffer
	proto *stomp.Protocol
	http  *http.Client
	// secrets lists every credential the test used, for the log check.
	smu     sync.Mutex
	secrets []string
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	s := &stack{t: t, logs: &syncBuffer{}, msgs: &messages{MessageStore: memory.NewMessageStore()},
		http: &http.Client{Timeout: 10 * time.Second}}
	logger := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ks, err := auth.NewKeySet(testKey)
	if err != nil {
		t.Fatal(err)
	}
	broker := memory.NewBroker()
	acfg := auth.Config{Keys: ks, Argon2: auth.Argon2{Memory: 64, Time: 1}, Logger: logger,
		Control: broker, FirstMessageAuth: o.firstMessage}
	if o.auth != nil {
		o.auth(&acfg)
	}
	if s.auth, err = auth.New(acfg, memory.NewUserStore(), memory.NewSessionStore(), memory.NewTicketStore()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.auth.Close)
	hcfg := hub.Config{Messages: s.msgs, Broker: broker, Logger: logger}
	if o.limit > 0 {
		hcfg.Limiter = &limiter{allow: o.limit}
	}
	if s.hub, err = hub.New(hcfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = s.hub.Run(ctx) }()
	jp := jsonproto.New(jsonproto.Config{Hub: s.hub, Verifier: s.auth, Logger: logger})
	pcfg := stomp.Config{Hub: s.hub, Verifier: s.auth, Logger: logger}
	if o.proto != nil {
		o.proto(&pcfg)
	}
	if s.proto, err = stomp.New(pcfg); err != nil {
		t.Fatal(err)
	}
	wcfg := ws.Config{Logger: logger}
	if o.ws != nil {
		o.ws(&wcfg)
	}
	protocols := map[string]ws.Protocol{jsonproto.Name: jp}
	for _, n := range stomp.Subprotocols() {
		protocols[n] = s.proto
	}
	s.ws = ws.New(wcfg, jp, protocols, append([]string{jsonproto.Name}, stomp.Subprotocols()...))
	go s.ws.Run(ctx)
	api, err := httpapi.New(httpapi.Config{Logger: logger}, httpapi.Deps{Auth: s.auth, Sockets: s.ws})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	s.url = srv.URL
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = s.ws.Shutdown(sctx)
		srv.Close()
		cancel()
	})
	// The broker needs its handler before the first publish.
	deadline := time.Now().Add(5 * time.Second)
	for broker.Publish(context.Background(), tollgate.Message{Room: "warmup", ID: 1}) != nil {
		if time.Now().After(deadline) {
			t.Fatal("broker did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

func (s *stack) remember(secret string) {
	s.smu.Lock()
	s.secrets = append(s.secrets, secret)
	s.smu.Unlock()
}

// checkLogs fails when any credential the test used appears in a log line.
func (s *stack) checkLogs() {
	s.t.Helper()
	logs := s.logs.String()
	s.smu.Lock()
	defer s.smu.Unlock()
	for _, sec := range s.secrets {
		if sec != "" && strings.Contains(logs, sec) {
			s.t.Errorf("a credential appears in the logs")
		}
	}
}

func (s *stack) post(path, bearer string, body any) map[string]any {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(http.MethodPost, s.url+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	return out
}

// user registers name (once per stack) and logs in: it returns an access JWT.
func (s *stack) user(name string) string {
	s.t.Helper()
	s.remember(testPass)
	req, _ := json.Marshal(map[string]string{"username": name, "password": testPass})
	resp, err := s.http.Post(s.url+"/api/auth/register", "application/json", bytes.NewReader(req))
	if err != nil {
		s.t.Fatal(err)
	}
	resp.Body.Close()
	out := s.post("/api/auth/login", "", map[string]string{"username": name, "password": testPass})
	tok, _ := out["access_token"].(string)
	if tok == "" {
		s.t.Fatalf("login %s: %v", name, out)
	}
	s.remember(tok)
	if rt, _ := out["refresh_token"].(string); rt != "" {
		s.remember(rt)
	}
	return tok
}

// ticket asks for a WebSocket ticket with the access token.
func (s *stack) ticket(token string) string {
	s.t.Helper()
	out := s.post("/api/auth/ws-ticket", token, nil)
	tk, _ := out["ticket"].(string)
	if tk == "" {
		s.t.Fatalf("ws-ticket: %v", out)
	}
	s.remember(tk)
	return tk
}

func (s *stack) wsURL(query string) string {
	u := "ws" + strings.TrimPrefix(s.url, "http") + "/ws"
	if query != "" {
		u += "?" + query
	}
	return u
}

// dial opens /ws offering subprotocols, with the given query and headers.
func (s *stack) dial(query string, header http.Header, subprotocols ...string) *websocket.Conn {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, s.wsURL(query), &websocket.DialOptions{HTTPHeader: header, Subprotocols: subprotocols})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		s.t.Fatalf("dial: %v (status %d)", err, status)
	}
	c.SetReadLimit(4 << 20)
	s.t.Cleanup(func() { c.CloseNow() })
	return c
}

// raw is a hand-driven STOMP client over one socket: it writes frames as
// given and decodes what arrives with the package's own decoder.
type raw struct {
	t   testing.TB
	c   *websocket.Conn
	dec *stomp.Decoder
	// beats counts heart-beat EOLs received.
	beats int
}

func (s *stack) raw(query string, header http.Header) *raw {
	s.t.Helper()
	c := s.dial(query, header, stomp.Name12)
	if c.Subprotocol() != stomp.Name12 {
		s.t.Fatalf("subprotocol %q", c.Subprotocol())
	}
	d := stomp.NewDecoder(stomp.Limits{MaxFrameBytes: 4 << 20})
	return &raw{t: s.t, c: c, dec: d}
}

func (r *raw) write(frame string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.c.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// writeBinary writes a binary WebSocket message (STOMP allows either kind).
func (r *raw) writeBinary(frame string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.c.Write(ctx, websocket.MessageBinary, []byte(frame)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// send writes a frame built from a command, "k:v" headers and a body.
func (r *raw) send(command string, body string, headers ...string) {
	r.t.Helper()
	var b strings.Builder
	b.WriteString(command + "\n")
	for _, h := range headers {
		b.WriteString(h + "\n")
	}
	b.WriteString("\n" + body + "\x00")
	r.write(b.String())
}

// next returns the next frame within d.
func (r *raw) next(d time.Duration) (*stomp.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		if f, err := r.dec.Next(); f != nil || err != nil {
			return f, err
		}
		_, b, err := r.c.Read(ctx)
		if err != nil {
			return nil, err
		}
		if len(bytes.Trim(b, "\r\n")) == 0 {
			r.beats++
		}
		r.dec.Write(b)
	}
}

func (r *raw) read() *stomp.Frame {
	r.t.Helper()
	f, err := r.next(5 * time.Second)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	if f.Command == "CONNECTED" {
		switch f.Value("version") {
		case "1.2":
			r.dec.SetVersion(stomp.V12)
		case "1.1":
			r.dec.SetVersion(stomp.V11)
		default:
			r.dec.SetVersion(stomp.V10)
		}
	}
	return f
}

// expect reads the next frame and checks its command.
func (r *raw) expect(command string) *stomp.Frame {
	r.t.Helper()
	f := r.read()
	if f.Command != command {
		r.t.Fatalf("want %s, got %s (message %q)", command, f.Command, f.Value("message"))
	}
	return f
}

// closed reads until the socket closes and returns the close status and reason.
func (r *raw) closed() (websocket.StatusCode, string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := r.c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			return -1, err.Error()
		}
	}
}

// connect sends CONNECT (1.2) with extra headers and expects CONNECTED.
func (r *raw) connect(headers ...string) *stomp.Frame {
	r.t.Helper()
	r.send("CONNECT", "", append([]string{"accept-version:1.2", "host:tollgate", "heart-beat:0,0"}, headers...)...)
	return r.expect("CONNECTED")
}

// netConn adapts a WebSocket to the net.Conn a Go STOMP library reads and
// writes as a byte stream; every Write is one text message.
func netConn(c *websocket.Conn) net.Conn {
	return websocket.NetConn(context.Background(), c, websocket.MessageText)
}

// jsonClient speaks tollgate.v1 on one socket.
type jsonClient struct {
	t testing.TB
	c *websocket.Conn
}

func (s *stack) json(token string) *jsonClient {
	s.t.Helper()
	c := s.dial("", http.Header{"Authorization": {"Bearer " + token}}, jsonproto.Name)
	j := &jsonClient{t: s.t, c: c}
	j.expect("welcome")
	return j
}

func (j *jsonClient) send(v any) {
	j.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := j.c.Write(ctx, websocket.MessageText, b); err != nil {
		j.t.Fatal(err)
	}
}

func (j *jsonClient) read() map[string]any {
	j.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := j.c.Read(ctx)
	if err != nil {
		j.t.Fatalf("json read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		j.t.Fatal(err)
	}
	return m
}

func (j *jsonClient) expect(typ string) map[string]any {
	j.t.Helper()
	m := j.read()
	if m["type"] != typ {
		j.t.Fatalf("want %s, got %v", typ, m)
	}
	return m
}

// waitFor polls cond for up to 5 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
