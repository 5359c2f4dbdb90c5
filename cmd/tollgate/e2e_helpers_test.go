package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate-ws/tollgate/internal/logbuf"
)

// syncBuffer collects log output written from many goroutines.
type syncBuffer = logbuf.Buffer

// secrets remembers every password, token, ticket and cookie a test used,
// and at the end fails the test if any of them is in the captured logs.
type secrets struct {
	mu   sync.Mutex
	list []string
}

func (s *secrets) add(v ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range v {
		if x != "" {
			s.list = append(s.list, x)
		}
	}
}

func (s *secrets) assertAbsent(t *testing.T, logs string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 {
		t.Fatal("no secrets were recorded: the log check would prove nothing")
	}
	if len(logs) == 0 {
		t.Fatal("no logs were captured: the log check would prove nothing")
	}
	for i, x := range s.list {
		if strings.Contains(logs, x) {
			t.Errorf("secret #%d (%d bytes) appears in the logs", i, len(x))
		}
	}
}

// testServer is `tollgate serve` running in-process on 127.0.0.1:0.
type testServer struct {
	t     testing.TB
	url   string // http://127.0.0.1:port
	ws    string // ws://127.0.0.1:port/ws
	stop  context.CancelFunc
	done  chan error
	logs  *syncBuffer
	taken *secrets
}

// startServer runs serve with the data dir and extra flags; logs at debug
// level go into logs. It is stopped at cleanup if the test did not stop it.
func startServer(t testing.TB, dataDir string, logs *syncBuffer, taken *secrets, extra ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	args := append([]string{"--addr", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "debug"}, extra...)
	noEnv := func(string) string { return "" }
	go func() { done <- serve(ctx, args, io.Discard, logs, noEnv, ready) }()
	s := &testServer{t: t, stop: cancel, done: done, logs: logs, taken: taken}
	select {
	case addr := <-ready:
		s.url = "http://" + addr
		s.ws = "ws://" + addr + "/ws"
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not become ready")
	}
	t.Cleanup(func() { s.shutdown() })
	return s
}

// shutdown cancels serve (as SIGTERM does) and waits for it to return.
func (s *testServer) shutdown() {
	s.t.Helper()
	if s.stop == nil {
		return
	}
	s.stop()
	s.stop = nil
	select {
	case err := <-s.done:
		if err != nil {
			s.t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		s.t.Error("serve did not stop within 30s")
	}
}

// reply is a JSON answer of the REST API.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(k string) string { s, _ := r.body[k].(string); return s }

func (r reply) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// call makes one REST request; body is marshalled to JSON when not nil.
func (s *testServer) call(method, path string, body any, header http.Header) reply {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	for _, c := range resp.Cookies() {
		s.taken.add(c.Value)
	}
	return out
}

// account is a registered and logged-in user.
type account struct {
	name, password, access, refresh string
}

func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

// register creates name and logs it in.
func (s *testServer) register(name string) account {
	s.t.Helper()
	a := account{name: name, password: "pw-" + name + "-0123456789"}
	s.taken.add(a.password)
	if r := s.call("POST", "/api/auth/register", map[string]string{"username": name, "password": a.password}, nil); r.status != 201 {
		s.t.Fatalf("register %s: %d %s", name, r.status, r.raw)
	}
	return s.login(name, a.password)
}

func (s *testServer) login(name, password string) account {
	s.t.Helper()
	r := s.call("POST", "/api/auth/login", map[string]string{"username": name, "password": password}, nil)
	if r.status != 200 {
		s.t.Fatalf("login %s: %d %s", name, r.status, r.raw)
	}
	a := account{name: name, password: password, access: r.str("access_token"), refresh: r.str("refresh_token")}
	s.taken.add(a.access, a.refresh)
	return a
}

func (s *testServer) ticket(a account) string {
	s.t.Helper()
	r := s.call("POST", "/api/auth/ws-ticket", nil, bearer(a.access))
	if r.status != 200 || r.str("ticket") == "" {
		s.t.Fatalf("ws-ticket: %d %s", r.status, r.raw)
	}
	s.taken.add(r.str("ticket"))
	return r.str("ticket")
}

// dial opens /ws with the query and headers; it returns the HTTP status of
// a refused handshake.
func (s *testServer) dial(query string, header http.Header) (*sock, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := s.ws
	if query != "" {
		u += "?" + query
	}
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: header, Subprotocols: []string{"tollgate.v1"}})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return nil, status, err
	}
	c.SetReadLimit(1 << 20)
	return &sock{t: s.t, c: c}, resp.StatusCode, nil
}

// open dials with a fresh ticket of a and reads the welcome frame.
func (s *testServer) open(a account) *sock {
	s.t.Helper()
	c, status, err := s.dial("ticket="+s.ticket(a), nil)
	if err != nil {
		s.t.Fatalf("dial as %s: %d %v", a.name, status, err)
	}
	if w := c.expect("welcome"); w.obj("user")["name"] != a.name {
		s.t.Fatalf("welcome for %s: %v", a.name, w)
	}
	return c
}

// sock is a test WebSocket client speaking tollgate.v1.
type sock struct {
	t testing.TB
	c *websocket.Conn
}

type frame map[string]any

func (f frame) str(k string) string         { s, _ := f[k].(string); return s }
func (f frame) num(k string) int64          { n, _ := f[k].(float64); return int64(n) }
func (f frame) obj(k string) map[string]any { o, _ := f[k].(map[string]any); return o }

func (c *sock) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *sock) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *sock) read() frame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := c.c.Read(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("frame is not JSON: %q", b)
	}
	return f
}

// expect reads the next frame and fails unless it has type typ.
func (c *sock) expect(typ string) frame {
	c.t.Helper()
	f := c.read()
	if f.str("type") != typ {
		c.t.Fatalf("want a %q frame, got %v", typ, f)
	}
	return f
}

// closed reads until the server closes the socket and returns the close
// code and reason.
func (c *sock) closed() (websocket.StatusCode, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.c.Read(ctx); err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code, ce.Reason
			}
			return -1, err.Error()
		}
	}
}

func (c *sock) close() { _ = c.c.Close(websocket.StatusNormalClosure, "") }

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, r.raw) }
