package jsonproto_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/jsonproto"
	"github.com/tollgate-ws/tollgate/memory"
	"github.com/tollgate-ws/tollgate/ws"
)

// stack is a real hub + ws server + protocol on 127.0.0.1. The test handler
// trusts a header for the principal: authentication is httpapi's job and is
// tested there; this tests everything after the 101.
type stack struct {
	t      *testing.T
	url    string
	hub    *hub.Hub
	ws     *ws.Server
	broker tollgate.Broker
	msgs   tollgate.MessageStore
	verify *fakeVerifier
	cancel context.CancelFunc
}

type fakeVerifier struct {
	mu      sync.Mutex
	tokens  map[tollgate.Secret]tollgate.Principal
	tickets map[tollgate.Secret]tollgate.Principal
}

func (f *fakeVerifier) VerifyAccess(_ context.Context, t tollgate.Secret) (tollgate.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.tokens[t]; ok {
		return p, nil
	}
	return tollgate.Principal{}, tollgate.NewError(tollgate.CodeUnauthenticated)
}

func (f *fakeVerifier) RedeemTicket(_ context.Context, t tollgate.Secret, _ tollgate.ClientInfo) (tollgate.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.tickets[t]; ok {
		delete(f.tickets, t)
		return p, nil
	}
	return tollgate.Principal{}, tollgate.NewError(tollgate.CodeInvalidTicket)
}

type stackOpts struct {
	wsCfg        ws.Config
	anonRooms    []string
	firstMessage time.Duration
}

func newStack(t *testing.T, o stackOpts) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &stack{t: t, broker: memory.NewBroker(), msgs: memory.NewMessageStore(), cancel: cancel,
		verify: &fakeVerifier{tokens: map[tollgate.Secret]tollgate.Principal{}, tickets: map[tollgate.Secret]tollgate.Principal{}}}
	h, err := hub.New(hub.Config{Messages: s.msgs, Broker: s.broker, AnonymousRooms: o.anonRooms})
	if err != nil {
		t.Fatal(err)
	}
	s.hub = h
	ready := make(chan struct{})
	go func() { close(ready); _ = h.Run(ctx) }()
	<-ready
	proto := jsonproto.New(jsonproto.Config{Hub: h, Verifier: s.verify, FirstMessageTimeout: o.firstMessage})
	s.ws = ws.New(o.wsCfg, proto, map[string]ws.Protocol{jsonproto.Name: proto}, []string{jsonproto.Name})
	go s.ws.Run(ctx)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := tollgate.Principal{UserID: r.Header.Get("X-Test-User"), Name: r.Header.Get("X-Test-User"),
			SessionID: r.Header.Get("X-Test-Session"), Credential: tollgate.CredentialBearer}
		if r.Header.Get("X-Test-Anon") != "" {
			p.Anonymous = true
			p.Credential = tollgate.CredentialAnonymous
		}
		if r.Header.Get("X-Test-First") != "" {
			p = tollgate.Principal{Credential: tollgate.CredentialFirstMessage}
		}
		if exp := r.Header.Get("X-Test-Exp"); exp != "" {
			d, _ := time.ParseDuration(exp)
			p.ExpiresAt = time.Now().Add(d)
		}
		s.ws.Accept(w, r, p, tollgate.ClientInfo{IP: "127.0.0.1"})
	}))
	s.url = "ws" + strings.TrimPrefix(srv.URL, "http")
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = s.ws.Shutdown(sctx)
		srv.Close()
		cancel()
	})
	// Wait for the broker to have its handler.
	waitFor(t, func() bool {
		return s.broker.Publish(context.Background(), tollgate.Message{Room: "warmup", ID: 1}) == nil
	})
	return s
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type client struct {
	t    *testing.T
	c    *websocket.Conn
	name string
}

func (s *stack) dial(user string, hdr map[string]string) *client {
	s.t.Helper()
	h := http.Header{"X-Test-User": {user}, "X-Test-Session": {"sess-" + user}}
	for k, v := range hdr {
		h.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		s.t.Fatalf("dial %s: %v", user, err)
	}
	c.SetReadLimit(1 << 20)
	cl := &client{t: s.t, c: c, name: user}
	s.t.Cleanup(func() { c.CloseNow() })
	return cl
}

func (c *client) send(v any) {
	c.t.Helper()
	var b []byte
	switch x := v.(type) {
	case string:
		b = []byte(x)
	default:
		b, _ = json.Marshal(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.c.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("%s write: %v", c.name, err)
	}
}

type frame map[string]any

func (f frame) str(k string) string { s, _ := f[k].(string); return s }
func (f frame) num(k string) int64  { n, _ := f[k].(float64); return int64(n) }

func (c *client) read() frame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.c.Read(ctx)
	if err != nil {
		c.t.Fatalf("%s read: %v", c.name, err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("%s: bad frame %s", c.name, b)
	}
	return f
}

// expect reads frames until one of type typ arrives (skipping none: the
// frame read must be of that type).
func (c *client) expect(typ string) frame {
	c.t.Helper()
	f := c.read()
	if f.str("type") != typ {
		c.t.Fatalf("%s: want %q frame, got %v", c.name, typ, f)
	}
	return f
}

// closed waits for the server to close the socket and returns its status and reason.
func (c *client) closed() (websocket.StatusCode, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := c.c.Read(ctx)
		if err != nil {
			var ce websocket.CloseError
			if ok := asClose(err, &ce); ok {
				return ce.Code, ce.Reason
			}
			return -1, err.Error()
		}
	}
}

func asClose(err error, ce *websocket.CloseError) bool {
	return errors.As(err, ce)
}

func TestWelcomeJoinPublishTwoUsers(t *testing.T) {
	s := newStack(t, stackOpts{})
	alice, bob := s.dial("alice", nil), s.dial("bob", nil)
	w := alice.expect("welcome")
	if w.str("protocol") != "tollgate.v1" || w.str("conn_id") == "" {
		t.Fatalf("welcome: %v", w)
	}
	if u := w["user"].(map[string]any); u["id"] != "alice" || u["name"] != "alice" {
		t.Fatalf("welcome user: %v", u)
	}
	bob.expect("welcome")
	alice.send(frame{"type": "join", "room": "general"})
	if j := alice.expect("joined"); j.str("room") != "general" || j.num("last_id") != 0 {
		t.Fatalf("joined: %v", j)
	}
	bob.send(frame{"type": "join", "room": "general"})
	bob.expect("joined")

	alice.send(frame{"type": "publish", "room": "general", "text": "hi bob", "client_id": "a1"})
	// Alice gets the ack and her own message, in either order.
	got := map[string]frame{}
	for range 2 {
		f := alice.read()
		got[f.str("type")] = f
	}
	if got["ack"].num("id") != 1 || got["ack"].str("client_id") != "a1" {
		t.Fatalf("ack: %v", got["ack"])
	}
	m := bob.expect("message")
	if m.str("text") != "hi bob" || m.num("id") != 1 || m.str("room") != "general" {
		t.Fatalf("message: %v", m)
	}
	if from := m["from"].(map[string]any); from["id"] != "alice" || from["name"] != "alice" {
		t.Fatalf("from: %v", from)
	}
	if _, err := time.Parse(time.RFC3339Nano, m.str("ts")); err != nil {
		t.Fatalf("ts: %v", m)
	}
	if got["message"].num("id") != 1 {
		t.Fatalf("sender did not get its message: %v", got)
	}

	// Idempotent retry: same client_id -> same id, nobody gets it twice.
	alice.send(frame{"type": "publish", "room": "general", "text": "hi bob", "client_id": "a1"})
	if a := alice.expect("ack"); a.num("id") != 1 {
		t.Fatalf("retried ack: %v", a)
	}
	bob.send(frame{"type": "publish", "room": "general", "text": "second", "client_id": "a1"})
	if a := bob.expect("message"); a.num("id") != 2 { // bob's own message first (delivered before the ack is written)
		t.Fatalf("bob second: %v", a)
	}
	if a := bob.expect("ack"); a.num("id") != 2 {
		t.Fatalf("bob ack: %v", a)
	}
	if a := alice.expect("message"); a.num("id") != 2 || a.str("text") != "second" {
		t.Fatalf("alice did not get exactly the next message: %v", a)
	}

	alice.send(frame{"type": "history", "room": "general", "since": 0, "limit": 10})
	h := alice.expect("history")
	if msgs := h["messages"].([]any); len(msgs) != 2 {
		t.Fatalf("history: %v", h)
	}
	alice.send(frame{"type": "history", "room": "general", "since": 1})
	if msgs := alice.expect("history")["messages"].([]any); len(msgs) != 1 || msgs[0].(map[string]any)["id"].(float64) != 2 {
		t.Fatalf("history since 1: %v", msgs)
	}
	alice.send(frame{"type": "ping"})
	alice.expect("pong")
	alice.send(frame{"type": "leave", "room": "general"})
	alice.expect("left")
	alice.send(frame{"type": "leave", "room": "general"})
	if e := alice.expect("error"); e.str("code") != "not_joined" {
		t.Fatalf("leave twice: %v", e)
	}
}

func TestBadInputKeepsSocketOpen(t *testing.T) {
	s := newStack(t, stackOpts{})
	c := s.dial("carol", nil)
	c.expect("welcome")
	c.send(frame{"type": "join", "room": "r1"})
	c.expect("joined")
	long := strings.Repeat("é", tollgate.MaxTextChars+1)
	tests := []struct {
		name string
		in   any
		code string
		ref  string
	}{
		{"invalid json", `{"type":`, "invalid_request", ""},
		{"not an object", `[1,2]`, "invalid_request", ""},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, "invalid_request", ""},
		{"no type", `{"room":"x"}`, "invalid_request", ""},
		{"unknown type", frame{"type": "dance"}, "invalid_request", ""},
		{"wrong field type", `{"type":"join","room":5}`, "invalid_request", ""},
		{"bad room", frame{"type": "join", "room": "Not Valid!"}, "invalid_request", ""},
		{"room too long", frame{"type": "join", "room": strings.Repeat("a", 65)}, "invalid_request", ""},
		{"empty text", frame{"type": "publish", "room": "r1", "text": "", "client_id": "e1"}, "invalid_request", "e1"},
		{"too long", frame{"type": "publish", "room": "r1", "text": long, "client_id": "t1"}, "too_long", "t1"},
		{"not joined", frame{"type": "publish", "room": "r2", "text": "x"}, "not_joined", ""},
		{"history limit", frame{"type": "history", "room": "r1", "limit": 501}, "invalid_request", ""},
		{"history negative", frame{"type": "history", "room": "r1", "since": -1}, "invalid_request", ""},
		{"refresh no token", frame{"type": "refresh"}, "invalid_request", ""},
	}
	for _, tc := range tests {
		c.send(tc.in)
		e := c.expect("error")
		if e.str("code") != tc.code || e.str("ref") != tc.ref || e.str("message") == "" {
			t.Errorf("%s: got %v, want code %s ref %q", tc.name, e, tc.code, tc.ref)
		}
	}
	// Exactly 4000 characters is fine.
	c.send(frame{"type": "publish", "room": "r1", "text": strings.Repeat("é", tollgate.MaxTextChars)})
	c.expect("message")
	c.expect("ack")
	c.send(frame{"type": "ping"})
	c.expect("pong")
}

func TestFrameOverLimitCloses1009(t *testing.T) {
	s := newStack(t, stackOpts{wsCfg: ws.Config{MaxMessageBytes: 1024}})
	c := s.dial("dave", nil)
	c.expect("welcome")
	c.send(frame{"type": "publish", "room": "r", "text": strings.Repeat("x", 2000)})
	if code, _ := c.closed(); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	// The server keeps serving.
	d := s.dial("dave2", nil)
	d.expect("welcome")
}

func TestControlEventClosesSessionSockets(t *testing.T) {
	s := newStack(t, stackOpts{})
	a1 := s.dial("erin", map[string]string{"X-Test-Session": "s1"})
	a2 := s.dial("erin", map[string]string{"X-Test-Session": "s2"})
	a1.expect("welcome")
	a2.expect("welcome")
	waitFor(t, func() bool { return s.hub.Count() == 2 })
	if err := s.broker.PublishControl(context.Background(), tollgate.ControlEvent{
		Kind: tollgate.ControlRevokeSession, Target: "s1", Code: tollgate.CodeSessionRevoked}); err != nil {
		t.Fatal(err)
	}
	if code, reason := a1.closed(); code != websocket.StatusPolicyViolation || reason != "session_revoked" {
		t.Fatalf("revoked socket: %d %q", code, reason)
	}
	a2.send(frame{"type": "ping"})
	a2.expect("pong") // the other session stays
	_ = s.broker.PublishControl(context.Background(), tollgate.ControlEvent{
		Kind: tollgate.ControlDisableUser, Target: "erin", Code: tollgate.CodeUserDisabled})
	if code, reason := a2.closed(); code != websocket.StatusPolicyViolation || reason != "user_disabled" {
		t.Fatalf("disabled user socket: %d %q", code, reason)
	}
}

func TestExpiryWarningThenClose(t *testing.T) {
	s := newStack(t, stackOpts{wsCfg: ws.Config{ExpiryWarning: 300 * time.Millisecond}})
	c := s.dial("frank", map[string]string{"X-Test-Exp": "600ms"})
	w := c.expect("welcome")
	if w.str("expires_at") == "" {
		t.Fatalf("welcome without expires_at: %v", w)
	}
	c.expect("token_expiring")
	if code, reason := c.closed(); code != websocket.StatusPolicyViolation || reason != "token_expired" {
		t.Fatalf("expiry close: %d %q", code, reason)
	}
}

func TestRefreshExtendsAndWrongUserCloses(t *testing.T) {
	s := newStack(t, stackOpts{wsCfg: ws.Config{ExpiryWarning: 200 * time.Millisecond}})
	s.verify.tokens["good"] = tollgate.Principal{UserID: "gina", Name: "gina", SessionID: "sess-gina", ExpiresAt: time.Now().Add(time.Hour)}
	s.verify.tokens["other"] = tollgate.Principal{UserID: "mallory", Name: "mallory", SessionID: "m", ExpiresAt: time.Now().Add(time.Hour)}
	c := s.dial("gina", map[string]string{"X-Test-Exp": "500ms"})
	c.expect("welcome")
	c.expect("token_expiring")
	c.send(frame{"type": "refresh", "token": "good"})
	r := c.expect("refreshed")
	if exp, err := time.Parse(time.RFC3339Nano, r.str("expires_at")); err != nil || time.Until(exp) < 50*time.Minute {
		t.Fatalf("refreshed: %v", r)
	}
	time.Sleep(700 * time.Millisecond) // past the original expiry
	c.send(frame{"type": "ping"})
	c.expect("pong")
	c.send(frame{"type": "refresh", "token": "other"})
	if code, _ := c.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("foreign token: close %d, want 1008", code)
	}
	d := s.dial("gina", nil)
	d.expect("welcome")
	d.send(frame{"type": "refresh", "token": "garbage"})
	if code, _ := d.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("bad token: close %d, want 1008", code)
	}
}

// A refresh with a token that lives less than the warning period: the
// answer comes first, then the warning for the new expiry, every time (the
// warning is due at once, so its timer raced the answer before).
func TestRefreshAnswersBeforeTheNewWarning(t *testing.T) {
	s := newStack(t, stackOpts{wsCfg: ws.Config{ExpiryWarning: time.Hour}})
	s.verify.tokens["short"] = tollgate.Principal{UserID: "hugo", Name: "hugo", SessionID: "sess-hugo", ExpiresAt: time.Now().Add(30 * time.Minute)}
	c := s.dial("hugo", map[string]string{"X-Test-Exp": "40m"})
	c.expect("welcome")
	c.expect("token_expiring")
	for i := range 200 {
		c.send(frame{"type": "refresh", "token": "short"})
		if f := c.read(); f.str("type") != "refreshed" {
			t.Fatalf("refresh %d: first frame %v, want refreshed", i, f)
		}
		if f := c.read(); f.str("type") != "token_expiring" {
			t.Fatalf("refresh %d: second frame %v, want token_expiring", i, f)
		}
	}
}

func TestAnonymousRooms(t *testing.T) {
	s := newStack(t, stackOpts{anonRooms: []string{"lobby"}})
	c := s.dial("anon-1", map[string]string{"X-Test-Anon": "1"})
	if u := c.expect("welcome")["user"].(map[string]any); u["anonymous"] != true {
		t.Fatalf("welcome does not say anonymous: %v", u)
	}
	c.send(frame{"type": "join", "room": "general"})
	if e := c.expect("error"); e.str("code") != "forbidden" {
		t.Fatalf("anon join general: %v", e)
	}
	c.send(frame{"type": "history", "room": "general"})
	if e := c.expect("error"); e.str("code") != "forbidden" {
		t.Fatalf("anon history general: %v", e)
	}
	c.send(frame{"type": "join", "room": "lobby"})
	c.expect("joined")
}

func TestFirstMessageAuth(t *testing.T) {
	s := newStack(t, stackOpts{firstMessage: 300 * time.Millisecond})
	s.verify.tickets["tkt"] = tollgate.Principal{UserID: "hank", Name: "hank", SessionID: "h"}

	silent := s.dial("", map[string]string{"X-Test-First": "1"})
	if code, reason := silent.closed(); code != websocket.StatusPolicyViolation || reason != "auth_timeout" {
		t.Fatalf("silent: %d %q", code, reason)
	}
	chatty := s.dial("", map[string]string{"X-Test-First": "1"})
	chatty.send(frame{"type": "join", "room": "general"})
	if code, _ := chatty.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("non-auth first frame: %d", code)
	}
	good := s.dial("", map[string]string{"X-Test-First": "1"})
	good.send(frame{"type": "auth", "ticket": "tkt"})
	if u := good.expect("welcome")["user"].(map[string]any); u["id"] != "hank" {
		t.Fatalf("welcome after auth: %v", u)
	}
	time.Sleep(400 * time.Millisecond) // past the deadline: must stay open
	good.send(frame{"type": "ping"})
	good.expect("pong")
	reuse := s.dial("", map[string]string{"X-Test-First": "1"})
	reuse.send(frame{"type": "auth", "ticket": "tkt"})
	if code, reason := reuse.closed(); code != websocket.StatusPolicyViolation || reason != "invalid_ticket" {
		t.Fatalf("reused ticket: %d %q", code, reason)
	}
}

func TestShutdownCloses1001(t *testing.T) {
	s := newStack(t, stackOpts{})
	c := s.dial("ivan", nil)
	c.expect("welcome")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _ = s.ws.Shutdown(ctx) }()
	if code, _ := c.closed(); code != websocket.StatusGoingAway {
		t.Fatalf("shutdown close %d, want 1001", code)
	}
}

func TestManyMembersReceiveInOrder(t *testing.T) {
	s := newStack(t, stackOpts{})
	const members, msgs = 20, 50
	clients := make([]*client, members)
	for i := range clients {
		clients[i] = s.dial(fmt.Sprintf("m%02d", i), nil)
		clients[i].expect("welcome")
		clients[i].send(frame{"type": "join", "room": "big"})
		clients[i].expect("joined")
	}
	// Two publishers interleave; every member sees ids 1..2*msgs in order.
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := s.dial(fmt.Sprintf("pub%d", p), nil)
			pub.expect("welcome")
			pub.send(frame{"type": "join", "room": "big"})
			pub.expect("joined")
			for i := range msgs {
				pub.send(frame{"type": "publish", "room": "big", "text": fmt.Sprintf("p%d-%d", p, i)})
			}
		}()
	}
	for _, c := range clients {
		for want := int64(1); want <= 2*msgs; want++ {
			if got := c.expect("message").num("id"); got != want {
				t.Fatalf("%s: id %d, want %d", c.name, got, want)
			}
		}
	}
	wg.Wait()
}
