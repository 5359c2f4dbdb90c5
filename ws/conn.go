package ws

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"github.com/tollgate-ws/tollgate"
)

// Conn is one accepted WebSocket. All methods are safe for concurrent use.
type Conn struct {
	srv    *Server
	sock   *gws.Conn
	id     string
	client tollgate.ClientInfo
	proto  Protocol
	opened time.Time
	// release frees the socket's concurrency slot; called once at close.
	release func()
	// openedAs is the credential kind the socket opened with: its metric
	// label, which must not change when first-message auth completes.
	openedAs tollgate.CredentialKind

	mu        sync.Mutex
	principal tollgate.Principal
	warnTimer *time.Timer
	expTimer  *time.Timer
	// State is the protocol's per-connection state (set once in Open).
	state any

	// wroteShared accounts one SendShared frame as written; bound once so
	// that queueing it does not allocate per frame.
	wroteShared func()

	pending   atomic.Int32 // queued, unwritten frames
	busySince atomic.Int64 // unix nanos of the last write progress while pending > 0
	closing   atomic.Bool
	closeCode atomic.Int32
	reason    atomic.Pointer[string]
}

// ID is the connection id shown to the client in `welcome` and used in logs
// and audit lines.
func (c *Conn) ID() string { return c.id }

// Client is what the HTTP edge knew about the peer at the handshake.
func (c *Conn) Client() tollgate.ClientInfo { return c.client }

// Subprotocol is the negotiated subprotocol, "" for none.
func (c *Conn) Subprotocol() string { return c.sock.SubProtocol() }

// Opened is when the socket was accepted.
func (c *Conn) Opened() time.Time { return c.opened }

// Principal is who the socket acts for now.
func (c *Conn) Principal() tollgate.Principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.principal
}

// SetState stores the protocol's per-connection state.
func (c *Conn) SetState(v any) {
	c.mu.Lock()
	c.state = v
	c.mu.Unlock()
}

// State returns what SetState stored.
func (c *Conn) State() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// SetPrincipal replaces the socket's principal (first-message auth, in-band
// refresh) and re-arms the expiry timers for its ExpiresAt. Callers must
// check that the new principal names the same user as the old one where the
// contract requires it.
func (c *Conn) SetPrincipal(p tollgate.Principal) {
	c.mu.Lock()
	c.principal = p
	c.armExpiryLocked(p.ExpiresAt)
	c.mu.Unlock()
}

// SetPrincipalThen is SetPrincipal for an answer that must reach the client
// before anything the new expiry causes: it stops the old expiry timers,
// queues frame, and only then arms the timers for p.ExpiresAt, so that a
// warning due at once (a token living less than Config.ExpiryWarning) follows
// frame instead of racing it. Call it from the socket's message handler.
func (c *Conn) SetPrincipalThen(p tollgate.Principal, frame []byte) {
	c.mu.Lock()
	c.principal = p
	c.armExpiryLocked(time.Time{})
	c.mu.Unlock()
	c.Send(frame)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing.Load() {
		return // the close stopped the timers, or is about to: arm none
	}
	c.armExpiryLocked(p.ExpiresAt)
}

// armExpiryLocked sets the expiry warning (Config.ExpiryWarning before exp,
// or at once when less is left) and the close at exp. Zero exp: no expiry.
func (c *Conn) armExpiryLocked(exp time.Time) {
	if c.warnTimer != nil {
		c.warnTimer.Stop()
		c.warnTimer = nil
	}
	if c.expTimer != nil {
		c.expTimer.Stop()
		c.expTimer = nil
	}
	if exp.IsZero() {
		return
	}
	left := exp.Sub(c.srv.cfg.Now())
	warnIn := left - c.srv.cfg.ExpiryWarning
	if warnIn < 0 {
		warnIn = 0
	}
	c.warnTimer = time.AfterFunc(warnIn, func() { c.proto.Expiring(c, exp) })
	c.expTimer = time.AfterFunc(max(left, 0), func() {
		c.Close(tollgate.NewError(tollgate.CodeTokenExpired))
	})
}

// Send queues a text frame. It never blocks: a socket with more than
// Config.SendQueue unwritten frames is cut as a slow consumer and Send
// reports false, as it does for a closing socket. The caller may share frame
// between sockets but must not modify it afterwards.
func (c *Conn) Send(frame []byte) bool {
	if !c.reserve() {
		return false
	}
	c.sock.Async(func() {
		err := c.sock.WriteMessage(gws.OpcodeText, frame)
		c.written(err)
	})
	return true
}

// SendShared queues a frame that is encoded once for many sockets.
func (c *Conn) SendShared(s *Shared) bool {
	if !c.reserve() {
		return false
	}
	if err := s.b.Broadcast(c.sock); err != nil {
		c.written(err)
		return false
	}
	// The Broadcaster's job cannot report back, so a second job, run right
	// after it, accounts the frame; a write error is handled by gws, which
	// closes the socket.
	c.sock.Async(c.wroteShared)
	return true
}

func (c *Conn) reserve() bool {
	if c.closing.Load() {
		return false
	}
	n := c.pending.Add(1)
	if n == 1 {
		c.busySince.Store(c.srv.cfg.Now().UnixNano())
	}
	if int(n) > c.srv.cfg.SendQueue {
		c.pending.Add(-1)
		c.cut(tollgate.CodeSlowConsumer)
		return false
	}
	return true
}

func (c *Conn) written(err error) {
	if c.pending.Add(-1) > 0 {
		c.busySince.Store(c.srv.cfg.Now().UnixNano())
	}
	if err != nil {
		c.cut(tollgate.CodeInternal)
	}
}

// stuck reports whether the socket has unwritten frames and made no write
// progress since before deadline.
func (c *Conn) stuck(deadline time.Time) bool {
	return c.pending.Load() > 0 && c.busySince.Load() < deadline.UnixNano()
}

// Close sends a close frame with err's close code and code as reason after
// the frames already queued, then closes the socket. A nil err, or a code
// that is answered with an error frame, closes 1000. Close never blocks; the
// write is bounded by Config.WriteTimeout.
func (c *Conn) Close(err *tollgate.Error) {
	code, reason := tollgate.CloseNormal, string(tollgate.CodeNormal)
	if err != nil {
		if cc := err.Code.CloseCode(); cc != 0 {
			code, reason = cc, string(err.Code)
		}
	}
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	c.closeCode.Store(int32(code))
	c.reason.Store(&reason)
	c.stopTimers()
	_ = c.sock.SetWriteDeadline(c.srv.cfg.Now().Add(c.srv.cfg.WriteTimeout))
	c.sock.Async(func() { _ = c.sock.WriteClose(uint16(code), []byte(reason)) })
}

// cut closes the TCP connection at once without a close handshake: for a
// peer that cannot take more writes (a close frame would queue behind them).
func (c *Conn) cut(code tollgate.Code) {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	cc := code.CloseCode()
	if cc == 0 {
		cc = tollgate.CloseInternalError
	}
	reason := string(code)
	c.closeCode.Store(int32(cc))
	c.reason.Store(&reason)
	c.stopTimers()
	_ = c.sock.NetConn().Close()
}

func (c *Conn) stopTimers() {
	c.mu.Lock()
	if c.warnTimer != nil {
		c.warnTimer.Stop()
	}
	if c.expTimer != nil {
		c.expTimer.Stop()
	}
	c.mu.Unlock()
}

// ping queues a ping frame through the same bounded queue as data frames.
func (c *Conn) ping() {
	if !c.reserve() {
		return
	}
	c.sock.Async(func() {
		err := c.sock.WritePing(nil)
		c.written(err)
	})
}

// ReleaseSlot gives the socket's concurrency slot back before it closes:
// a socket opened unauthenticated (first-message auth) leaves the small
// pending cap once it has authenticated. The slot is released once; the
// close does not release it again.
func (c *Conn) ReleaseSlot() { c.release() }

// RemoteAddr is the TCP peer address (not the client IP behind a proxy; see Client).
func (c *Conn) RemoteAddr() net.Addr { return c.sock.RemoteAddr() }

// Shared is a frame encoded once and written to many sockets.
type Shared struct{ b *gws.Broadcaster }

// NewShared prepares a text frame for many sockets. Call Release once every
// SendShared with it has been called.
func NewShared(frame []byte) *Shared {
	return &Shared{b: gws.NewBroadcaster(gws.OpcodeText, frame)}
}

// Release returns the frame's buffers once all queued writes are done.
func (s *Shared) Release() { _ = s.b.Close() }
