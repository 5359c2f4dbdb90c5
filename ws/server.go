package ws

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/tollgate-ws/tollgate"
)

// Protocol serves one application protocol over accepted sockets. The
// server calls Open once, then Message for each text or binary frame in
// order from the socket's read goroutine, Expiring from a timer, and Closed
// once after the socket is gone.
type Protocol interface {
	// Open runs after the 101, before the first frame is read.
	Open(c *Conn)
	// Message handles one frame. A returned error closes the socket: with the
	// close code of its tollgate code when it has one, else 1011.
	Message(c *Conn, data []byte) error
	// Expiring warns the client that its credential expires at exp.
	Expiring(c *Conn, exp time.Time)
	// Closed runs once when the socket is gone, with the close code sent or
	// received and the socket's lifetime.
	Closed(c *Conn, code int, reason string)
}

// Metrics receives socket events for monitoring (package metrics implements
// it). Every argument comes from a fixed set: a subprotocol the server
// serves ("" for none), a credential kind, and a close reason that is a
// contract code or one of "peer", "protocol", "abnormal" — never client
// input. Implementations are safe for concurrent use and never block.
type Metrics interface {
	// SocketOpened counts a socket that has opened.
	SocketOpened(subprotocol string, credential tollgate.CredentialKind)
	// SocketClosed counts a socket that has closed, with the labels it was
	// opened with and the reason it closed for (slow_consumer for a socket
	// cut because it could not keep up).
	SocketClosed(subprotocol string, credential tollgate.CredentialKind, reason string)
}

// Config configures a Server. Zero fields take the documented defaults.
type Config struct {
	// MaxMessageBytes is the largest frame accepted; larger ones close the
	// socket 1009. Default 65536.
	MaxMessageBytes int
	// IdleTimeout cuts a socket from which nothing (not even a pong) arrived
	// for this long. Default 60s.
	IdleTimeout time.Duration
	// PingInterval is how often the server pings every socket. Default 25s.
	PingInterval time.Duration
	// WriteTimeout cuts a socket whose queued writes make no progress for
	// this long. Default 10s.
	WriteTimeout time.Duration
	// SendQueue is how many frames may wait unwritten per socket before it
	// is cut as a slow consumer. Default 256.
	SendQueue int
	// ExpiryWarning is how long before its credential expires a socket is
	// warned (Protocol.Expiring). Default 60s.
	ExpiryWarning time.Duration
	// HandshakeTimeout bounds writing the 101 response. Default 5s.
	HandshakeTimeout time.Duration
	// ReadBufferSize is the per-socket read buffer. Default 1024: frames
	// larger than the buffer are read straight into the message, and at
	// 10,000 idle sockets 1 KiB instead of 4 KiB saved 1.3 KiB per socket
	// (docs/benchmarks.md).
	ReadBufferSize int
	// NodeID prefixes connection ids so they are unique across nodes.
	// Default: random.
	NodeID string
	// Auditor records connect and disconnect; nil discards.
	Auditor tollgate.Auditor
	// Metrics counts open and closed sockets; nil counts nothing.
	Metrics Metrics
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Auditor == nil {
		c.Auditor = tollgate.NopAuditor{}
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 65536
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.ExpiryWarning <= 0 {
		c.ExpiryWarning = 60 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 1024
	}
	if c.NodeID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.NodeID = hex.EncodeToString(b[:])
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Server accepts authenticated upgrades and runs their sockets. It is safe
// for concurrent use. Run must be running for pings and write timeouts to be
// enforced; Shutdown closes every socket 1001.
type Server struct {
	cfg       Config
	protocols map[string]Protocol // by subprotocol name
	fallback  Protocol            // no (known) subprotocol offered
	offer     []string            // subprotocols in preference order

	upgraders sync.Map // upgraderKey -> *gws.Upgrader

	mu     sync.Mutex
	conns  map[*Conn]struct{}
	closed bool
	done   chan struct{} // closed when conns becomes empty after Shutdown began

	seq atomic.Uint64
}

// New returns a Server that speaks fallback to clients offering no known
// subprotocol, and protocols[name] to clients offering name. preference
// orders the names when a client offers several.
func New(cfg Config, fallback Protocol, protocols map[string]Protocol, preference []string) *Server {
	s := &Server{
		cfg:       cfg.withDefaults(),
		protocols: protocols,
		fallback:  fallback,
		offer:     preference,
		conns:     make(map[*Conn]struct{}),
		done:      make(chan struct{}),
	}
	return s
}

// Count is the number of open sockets.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

type upgraderKey struct {
	subprotocol string
	headers     string // canonical extra response headers
}

// upgrader returns the upgrader for one subprotocol and one set of extra
// response headers. The set of keys is small and comes from server code
// (subprotocols we serve, headers httpapi sets), never from client input.
func (s *Server) upgrader(sub string, extra http.Header) *gws.Upgrader {
	key := upgraderKey{subprotocol: sub, headers: canonicalHeaders(extra)}
	if u, ok := s.upgraders.Load(key); ok {
		return u.(*gws.Upgrader)
	}
	opt := &gws.ServerOption{
		ReadMaxPayloadSize:  s.cfg.MaxMessageBytes,
		ReadBufferSize:      s.cfg.ReadBufferSize,
		WriteMaxPayloadSize: 16 << 20,
		CheckUtf8Enabled:    true,
		HandshakeTimeout:    s.cfg.HandshakeTimeout,
		ResponseHeader:      extra.Clone(),
		NewSession:          func() gws.SessionStorage { return &slot{} },
		Logger:              gwsLogger{s.cfg.Logger},
	}
	if sub != "" {
		opt.SubProtocols = []string{sub}
	}
	u, _ := s.upgraders.LoadOrStore(key, gws.NewUpgrader(s, opt))
	return u.(*gws.Upgrader)
}

func canonicalHeaders(h http.Header) string {
	if len(h) == 0 {
		return ""
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(':')
		b.WriteString(strings.Join(h[k], ","))
		b.WriteByte('\n')
	}
	return b.String()
}

// chooseProtocol picks the subprotocol to answer from the client's offer:
// the first of s.offer the client offered; "" (the fallback) otherwise.
func (s *Server) chooseProtocol(r *http.Request) (string, Protocol) {
	offered := r.Header.Values("Sec-WebSocket-Protocol")
	if len(offered) == 0 {
		return "", s.fallback
	}
	var names []string
	for _, v := range offered {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" && len(names) < 16 {
				names = append(names, p)
			}
		}
	}
	for _, want := range s.offer {
		if slices.Contains(names, want) {
			return want, s.protocols[want]
		}
	}
	return "", s.fallback
}

// Accept upgrades an authenticated request and serves the socket until it
// closes. Headers already set on w (e.g. Deprecation) go into the 101. It
// implements httpapi.SocketAcceptor: authentication, Origin and limits were
// checked before it is called, and it is never called for a refused request.
func (s *Server) Accept(w http.ResponseWriter, r *http.Request, p tollgate.Principal, client tollgate.ClientInfo) {
	s.AcceptSlot(w, r, p, client, nil)
}

// AcceptSlot is Accept for a socket that holds a slot of a concurrency cap:
// release (if not nil) is called exactly once, when the socket has closed or
// the upgrade failed. It implements httpapi.SocketAcceptor.
func (s *Server) AcceptSlot(w http.ResponseWriter, r *http.Request, p tollgate.Principal, client tollgate.ClientInfo, release func()) {
	if release == nil {
		release = func() {}
	}
	release = sync.OnceFunc(release)
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		release()
		http.Error(w, `{"success":false,"error":{"code":"unavailable","message":"The server is shutting down."}}`, http.StatusServiceUnavailable)
		return
	}
	name, proto := s.chooseProtocol(r)
	extra := w.Header().Clone()
	extra.Del("Content-Type")
	sock, err := s.upgrader(name, extra).Upgrade(w, r)
	if err != nil {
		release()
		s.cfg.Logger.Debug("upgrade failed", "error", err)
		return
	}
	c := &Conn{
		srv:       s,
		sock:      sock,
		id:        s.cfg.NodeID + "-" + strconv.FormatUint(s.seq.Add(1), 36),
		client:    client,
		proto:     proto,
		opened:    s.cfg.Now(),
		principal: p,
		openedAs:  p.Credential,
		release:   release,
	}
	c.wroteShared = func() { c.written(nil) }
	sock.Session().Store("", c)
	if !s.add(c) {
		release()
		_ = sock.WriteClose(tollgate.CloseGoingAway, []byte(tollgate.CodeShuttingDown))
		return
	}
	// The read loop runs in its own goroutine so the handler returns and
	// net/http releases its per-request state (saves several KiB per socket).
	go sock.ReadLoop()
}

func (s *Server) add(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) remove(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.closed && len(s.conns) == 0 {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
	s.mu.Unlock()
}

func (s *Server) snapshot() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// Run pings every socket each PingInterval and cuts sockets whose writes
// made no progress for WriteTimeout, until ctx ends.
func (s *Server) Run(ctx context.Context) {
	check := min(s.cfg.PingInterval, s.cfg.WriteTimeout/4, time.Second)
	tick := time.NewTicker(check)
	defer tick.Stop()
	lastPing := s.cfg.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := s.cfg.Now()
		doPing := now.Sub(lastPing) >= s.cfg.PingInterval
		if doPing {
			lastPing = now
		}
		deadline := now.Add(-s.cfg.WriteTimeout)
		for _, c := range s.snapshot() {
			if c.stuck(deadline) {
				c.cut(tollgate.CodeSlowConsumer)
				continue
			}
			if doPing {
				c.ping()
			}
		}
	}
}

// Shutdown stops accepting, closes every socket 1001 after its queued
// frames, and waits for them to finish until ctx ends; sockets still open
// then are cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	if len(s.conns) == 0 {
		select {
		case <-s.done:
		default:
			close(s.done)
		}
	}
	s.mu.Unlock()
	for _, c := range s.snapshot() {
		c.Close(tollgate.NewError(tollgate.CodeShuttingDown))
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		for _, c := range s.snapshot() {
			c.cut(tollgate.CodeShuttingDown)
		}
		return ctx.Err()
	}
}

// The gws event handler: one for all sockets, state in the session slot.

func connOf(sock *gws.Conn) *Conn {
	v, _ := sock.Session().Load("")
	c, _ := v.(*Conn)
	return c
}

// OnOpen implements gws.Event.
func (s *Server) OnOpen(sock *gws.Conn) {
	c := connOf(sock)
	_ = sock.SetReadDeadline(s.cfg.Now().Add(s.cfg.IdleTimeout))
	p := c.Principal()
	s.cfg.Auditor.Record(context.Background(), tollgate.AuditEvent{
		TS: c.opened.UTC(), Event: tollgate.AuditConnect, User: p.UserID, IP: c.client.IP,
		Origin: c.client.Origin, ConnID: c.id, Credential: p.Credential})
	if m := s.cfg.Metrics; m != nil {
		m.SocketOpened(sock.SubProtocol(), p.Credential)
	}
	c.proto.Open(c)
	// The expiry timers start after Open, so that a warning due at once
	// follows the protocol's first frame (welcome) and finds its session.
	c.mu.Lock()
	c.armExpiryLocked(c.principal.ExpiresAt)
	c.mu.Unlock()
}

// OnClose implements gws.Event.
func (s *Server) OnClose(sock *gws.Conn, err error) {
	c := connOf(sock)
	if c == nil {
		return
	}
	c.stopTimers()
	code, reason := int(c.closeCode.Load()), ""
	if r := c.reason.Load(); r != nil {
		reason = *r
	}
	if code == 0 {
		// Closed by the peer or the network: report what arrived.
		var ce *gws.CloseError
		var sc interface{ Uint16() uint16 } // the library's internal StatusCode
		switch {
		case errors.As(err, &ce):
			code, reason = int(ce.Code), "peer"
		case errors.As(err, &sc) && sc.Uint16() == tollgate.CloseMessageTooBig:
			code, reason = tollgate.CloseMessageTooBig, string(tollgate.CodeMessageTooBig)
		case errors.As(err, &sc):
			code, reason = int(sc.Uint16()), "protocol"
		default:
			code, reason = 1006, "abnormal"
		}
	}
	s.remove(c)
	c.release()
	if m := s.cfg.Metrics; m != nil {
		m.SocketClosed(sock.SubProtocol(), c.openedAs, reason)
	}
	c.proto.Closed(c, code, reason)
	p := c.Principal()
	now := s.cfg.Now()
	s.cfg.Auditor.Record(context.Background(), tollgate.AuditEvent{
		TS: now.UTC(), Event: tollgate.AuditDisconnect, User: p.UserID, IP: c.client.IP,
		Origin: c.client.Origin, ConnID: c.id, Credential: p.Credential, Reason: reason,
		Code: code, Seconds: now.Sub(c.opened).Seconds()})
}

// OnPing implements gws.Event.
func (s *Server) OnPing(sock *gws.Conn, payload []byte) {
	_ = sock.SetReadDeadline(s.cfg.Now().Add(s.cfg.IdleTimeout))
	_ = sock.WritePong(payload)
}

// OnPong implements gws.Event.
func (s *Server) OnPong(sock *gws.Conn, _ []byte) {
	_ = sock.SetReadDeadline(s.cfg.Now().Add(s.cfg.IdleTimeout))
}

// OnMessage implements gws.Event.
func (s *Server) OnMessage(sock *gws.Conn, m *gws.Message) {
	defer m.Close()
	c := connOf(sock)
	_ = sock.SetReadDeadline(s.cfg.Now().Add(s.cfg.IdleTimeout))
	if c.closing.Load() {
		return
	}
	if err := s.handle(c, m.Bytes()); err != nil {
		c.Close(tollgate.AsError(err))
	}
}

// handle runs the protocol on one frame; a panic closes the socket 1011
// without logging the frame (it may hold a token).
func (s *Server) handle(c *Conn, data []byte) (err error) {
	defer func() {
		if v := recover(); v != nil {
			s.cfg.Logger.Error("protocol panic", "conn_id", c.id, "panic_type", typeName(v))
			err = tollgate.NewError(tollgate.CodeInternal)
		}
	}()
	return c.proto.Message(c, data)
}

func typeName(v any) string {
	switch v.(type) {
	case error:
		return "error"
	case string:
		return "string"
	default:
		return "other"
	}
}

// slot is a one-entry gws.SessionStorage: the library's default is a map
// with a mutex per socket, which costs memory for nothing here.
type slot struct {
	mu sync.Mutex
	v  any
}

func (s *slot) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.v == nil {
		return 0
	}
	return 1
}
func (s *slot) Load(string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.v, s.v != nil
}
func (s *slot) Delete(string) {
	s.mu.Lock()
	s.v = nil
	s.mu.Unlock()
}
func (s *slot) Store(_ string, v any) {
	s.mu.Lock()
	s.v = v
	s.mu.Unlock()
}
func (s *slot) Range(f func(string, any) bool) {
	if v, ok := s.Load(""); ok {
		f("", v)
	}
}

// gwsLogger routes the library's error logs to slog.
type gwsLogger struct{ l *slog.Logger }

func (g gwsLogger) Error(v ...any) {
	g.l.Error("websocket library", "detail", strings.TrimSpace(fmtArgs(v)))
}

func fmtArgs(v []any) string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte(' ')
		}
		if e, ok := x.(error); ok {
			b.WriteString(e.Error())
		} else if s, ok := x.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}
