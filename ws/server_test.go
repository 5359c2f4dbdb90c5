package ws_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/ws"
)

// echo is a minimal protocol: it echoes frames, and on "flood" sends n
// large frames at once without waiting.
type echo struct {
	mu     sync.Mutex
	closed []string
	done   chan struct{}
}

func (e *echo) Open(c *ws.Conn) { c.Send([]byte("hello " + c.Subprotocol())) }
func (e *echo) Message(c *ws.Conn, data []byte) error {
	switch string(data) {
	case "flood":
		big := []byte(strings.Repeat("x", 64<<10))
		for range 2000 {
			if !c.Send(big) {
				return nil
			}
		}
	case "bye":
		return tollgate.NewError(tollgate.CodeSessionRevoked)
	default:
		c.Send(data)
	}
	return nil
}
func (e *echo) Expiring(*ws.Conn, time.Time) {}
func (e *echo) Closed(_ *ws.Conn, code int, reason string) {
	e.mu.Lock()
	e.closed = append(e.closed, reason)
	e.mu.Unlock()
	select {
	case e.done <- struct{}{}:
	default:
	}
}

func start(t *testing.T, cfg ws.Config) (*ws.Server, *echo, string) {
	t.Helper()
	e := &echo{done: make(chan struct{}, 16)}
	s := ws.New(cfg, e, map[string]ws.Protocol{"v12.stomp": e, "tollgate.v1": e}, []string{"v12.stomp", "tollgate.v1"})
	ctx, cancel := context.WithCancel(context.Background())
	go s.Run(ctx)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("legacy") != "" {
			w.Header().Set("Deprecation", "true")
			w.Header().Set("Sunset", "Wed, 01 Jan 2031 00:00:00 GMT")
		}
		s.Accept(w, r, tollgate.Principal{UserID: "u", Name: "u"}, tollgate.ClientInfo{IP: "127.0.0.1"})
	}))
	t.Cleanup(func() {
		ctx2, c2 := context.WithTimeout(context.Background(), 3*time.Second)
		defer c2()
		_ = s.Shutdown(ctx2)
		srv.Close()
		cancel()
	})
	return s, e, srv.URL
}

func dial(t *testing.T, url string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

func TestSubprotocolAndExtraHeaders(t *testing.T) {
	_, _, url := start(t, ws.Config{})
	for _, tc := range []struct {
		offer []string
		want  string
	}{
		{nil, ""},
		{[]string{"tollgate.v1"}, "tollgate.v1"},
		{[]string{"tollgate.v1", "v12.stomp"}, "v12.stomp"}, // server preference
		{[]string{"made.up"}, ""},
	} {
		c, resp := dial(t, url+"/?legacy=1", &websocket.DialOptions{Subprotocols: tc.offer})
		if got := c.Subprotocol(); got != tc.want {
			t.Errorf("offer %v: subprotocol %q, want %q", tc.offer, got, tc.want)
		}
		if resp.Header.Get("Deprecation") != "true" || resp.Header.Get("Sunset") == "" {
			t.Errorf("101 lacks the headers set before Accept: %v", resp.Header)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, b, err := c.Read(ctx)
		cancel()
		if err != nil || string(b) != "hello "+tc.want {
			t.Errorf("hello: %q %v", b, err)
		}
	}
}

func TestProtocolErrorClosesWithCode(t *testing.T) {
	_, _, url := start(t, ws.Config{})
	c, _ := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, _ = c.Read(ctx) // hello
	_ = c.Write(ctx, websocket.MessageText, []byte("bye"))
	_, _, err := c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation || !strings.Contains(err.Error(), "session_revoked") {
		t.Fatalf("got %v, want 1008 session_revoked", err)
	}
}

func TestSlowConsumerIsCut(t *testing.T) {
	s, e, url := start(t, ws.Config{SendQueue: 16})
	c, _ := dial(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, _ = c.Read(ctx)
	// Ask for a flood and never read again: the queue fills and the server
	// cuts the socket instead of buffering.
	if err := c.Write(ctx, websocket.MessageText, []byte("flood")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.done:
	case <-time.After(10 * time.Second):
		t.Fatal("slow consumer was not cut")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed[0] != "slow_consumer" {
		t.Fatalf("closed with %q", e.closed[0])
	}
	if s.Count() != 0 {
		t.Fatalf("%d sockets still registered", s.Count())
	}
}

// rawUpgrade completes a WebSocket handshake over plain TCP and then does
// nothing: no reads, no pong — a silent peer.
func rawUpgrade(t *testing.T, url string) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(url, "http://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "101") {
		t.Fatalf("handshake: %q %v", line, err)
	}
	return conn
}

func TestSilentPeerCutAfterIdleTimeout(t *testing.T) {
	_, e, url := start(t, ws.Config{IdleTimeout: 500 * time.Millisecond, PingInterval: 200 * time.Millisecond})
	rawUpgrade(t, url)
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		t.Fatal("silent peer not cut")
	}
}

func TestPongKeepsPeerAlive(t *testing.T) {
	_, e, url := start(t, ws.Config{IdleTimeout: 600 * time.Millisecond, PingInterval: 100 * time.Millisecond})
	c, _ := dial(t, url, nil)
	// coder/websocket answers pings while a Read is pending. The read's
	// context outlives the check below: when it ends, the client closes
	// the socket itself.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	go func() {
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	select {
	case <-e.done:
		t.Fatal("a peer answering pings was cut")
	case <-time.After(1500 * time.Millisecond): // 2.5 idle timeouts
	}
}
