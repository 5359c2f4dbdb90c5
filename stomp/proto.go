package stomp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/ws"
)

// Subprotocol names (docs/api.md, "STOMP 1.2"). The version spoken is
// negotiated by CONNECT's accept-version, whichever name was chosen.
const (
	Name12 = "v12.stomp"
	Name11 = "v11.stomp"
	Name10 = "v10.stomp"
)

// Subprotocols returns the STOMP subprotocol names, newest first: the
// preference order to give ws.New.
func Subprotocols() []string { return []string{Name12, Name11, Name10} }

// Verifier checks credentials that arrive inside the socket: a JWT on
// CONNECT, on SEND (send-token mode) or on /app/refresh, and the ticket of a
// first-message CONNECT. auth.Service implements it.
type Verifier interface {
	VerifyAccess(ctx context.Context, token tollgate.Secret) (tollgate.Principal, error)
	RedeemTicket(ctx context.Context, ticket tollgate.Secret, c tollgate.ClientInfo) (tollgate.Principal, error)
}

// Config configures the protocol. Zero fields take the documented defaults.
type Config struct {
	// Hub serves rooms. Required.
	Hub *hub.Hub
	// Verifier checks in-band credentials. Required.
	Verifier Verifier
	// Heartbeat is the heart-beat period the server offers and expects
	// (--stomp-heartbeat): CONNECTED says "h,h", the server sends an EOL
	// every max(Heartbeat, client's cy) and cuts a client silent for twice
	// max(Heartbeat, client's cx). Zero means 10s; negative disables
	// heart-beats ("0,0").
	Heartbeat time.Duration
	// SendTokenRequired (--stomp-send-token=required) makes every SEND carry
	// "Authorization: Bearer <JWT>" of the socket's user; a SEND without
	// one, or with an invalid, expired or foreign one, gets ERROR and the
	// socket is closed. Zero means off.
	SendTokenRequired bool
	// FirstMessageTimeout is how long a socket has to send CONNECT: for a
	// socket opened with first-message auth this is the authentication
	// deadline of docs/api.md. Default 5s.
	FirstMessageTimeout time.Duration
	// RequestTimeout bounds the store and verifier calls of one frame.
	// Default 10s.
	RequestTimeout time.Duration
	// Limits bound the frame decoder. Set Limits.MaxFrameBytes to the
	// socket's ws.Config.MaxMessageBytes (both default to 65536).
	Limits Limits
	// MaxSubscriptions bounds the open subscriptions of one connection.
	// Default 64 (as many as the rooms a socket may join).
	MaxSubscriptions int
	// MaxReplay bounds the messages a SUBSCRIBE since-id replays: when more
	// were missed, the newest MaxReplay are replayed. Default and maximum
	// 500 (tollgate.MaxHistoryLimit: one store call).
	MaxReplay int
	// MaxTransactions bounds the open transactions of a connection.
	// Default 8.
	MaxTransactions int
	// MaxTransactionFrames bounds the SENDs buffered by all open
	// transactions of a connection together. Default 64.
	MaxTransactionFrames int
	// MaxTransactionBytes bounds the body bytes buffered by all open
	// transactions of a connection together. Default 256 KiB.
	MaxTransactionBytes int
	// ServerName is the CONNECTED server header. Default "tollgate".
	ServerName string
	// Auditor records token_refreshed; nil discards.
	Auditor tollgate.Auditor
	// Logger receives operational logs, never a credential; nil discards them.
	Logger *slog.Logger
	// Now is the clock of audit timestamps; nil means time.Now. Heart-beats
	// and deadlines run on timers and the monotonic clock.
	Now func() time.Time
	// OnAuthenticated, if set, runs when a first-message socket has
	// authenticated with its CONNECT (for counting unauthenticated sockets).
	OnAuthenticated func(c *ws.Conn)
}

// Protocol implements ws.Protocol for STOMP 1.0, 1.1 and 1.2 over the hub.
// It is safe for concurrent use: one value serves every STOMP socket.
type Protocol struct {
	cfg Config
	// early holds expiry warnings (*ws.Conn -> time.Time) that fired before
	// Open made the connection's session: the ws layer arms its timers
	// first, and a credential with less than the warning period left is
	// warned at once. Each entry is taken once, by Open, Expiring or Closed.
	early sync.Map
}

// New returns the protocol. It fails when Hub or Verifier is missing.
func New(cfg Config) (*Protocol, error) {
	if cfg.Hub == nil || cfg.Verifier == nil {
		return nil, errors.New("stomp: Config.Hub and Config.Verifier are required")
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Heartbeat < 0 {
		cfg.Heartbeat = 0
	}
	if cfg.FirstMessageTimeout <= 0 {
		cfg.FirstMessageTimeout = 5 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = 64
	}
	if cfg.MaxReplay <= 0 || cfg.MaxReplay > tollgate.MaxHistoryLimit {
		cfg.MaxReplay = tollgate.MaxHistoryLimit
	}
	if cfg.MaxTransactions <= 0 {
		cfg.MaxTransactions = 8
	}
	if cfg.MaxTransactionFrames <= 0 {
		cfg.MaxTransactionFrames = 64
	}
	if cfg.MaxTransactionBytes <= 0 {
		cfg.MaxTransactionBytes = 256 << 10
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "tollgate"
	}
	if cfg.Auditor == nil {
		cfg.Auditor = tollgate.NopAuditor{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Protocol{cfg: cfg}, nil
}

// pendingPrincipal reports whether p is the placeholder of a socket opened
// with first-message auth that has not authenticated yet.
func pendingPrincipal(p tollgate.Principal) bool {
	return p.Credential == tollgate.CredentialFirstMessage && p.UserID == ""
}

func sessionOf(c *ws.Conn) *session {
	s, _ := c.State().(*session)
	return s
}

// Open implements ws.Protocol. Every socket must send CONNECT within
// FirstMessageTimeout; a handshake-authenticated one is registered with the
// hub at once, so revocations reach it even before CONNECT.
func (pr *Protocol) Open(c *ws.Conn) {
	s := newSession(pr, c)
	c.SetState(s)
	pending := pendingPrincipal(c.Principal())
	s.mu.Lock()
	s.pending = pending
	s.connectTimer = time.AfterFunc(pr.cfg.FirstMessageTimeout, s.connectDeadline)
	s.mu.Unlock()
	if !pending {
		pr.cfg.Hub.Register(s)
	}
	if exp, ok := pr.early.LoadAndDelete(c); ok {
		s.authEvent("token_expiring", exp.(time.Time))
	}
}

// Closed implements ws.Protocol.
func (pr *Protocol) Closed(c *ws.Conn, code int, reason string) {
	pr.early.Delete(c)
	s := sessionOf(c)
	if s == nil {
		return
	}
	s.shutdown()
	pr.cfg.Hub.Unregister(s)
}

// Expiring implements ws.Protocol: a MESSAGE on /user/queue/auth (event
// token_expiring) once the socket is connected.
func (pr *Protocol) Expiring(c *ws.Conn, exp time.Time) {
	if s := sessionOf(c); s != nil {
		s.authEvent("token_expiring", exp)
		return
	}
	// Before Open: leave it for Open, unless Open ran meanwhile.
	pr.early.Store(c, exp)
	if s := sessionOf(c); s != nil {
		if exp, ok := pr.early.LoadAndDelete(c); ok {
			s.authEvent("token_expiring", exp.(time.Time))
		}
	}
}

// Message implements ws.Protocol. It feeds the frame's bytes to the
// connection's decoder and handles every complete STOMP frame in order. A
// returned error closes the socket; an ERROR frame has been queued before.
func (pr *Protocol) Message(c *ws.Conn, data []byte) error {
	s := sessionOf(c)
	if s == nil {
		return tollgate.NewError(tollgate.CodeInternal)
	}
	s.touchRead()
	s.dec.Write(data)
	for {
		f, err := s.dec.Next()
		if err != nil {
			var fe *FrameError
			e := tollgate.Errorf(tollgate.CodeInvalidRequest, "Malformed frame: %s.", err.Error())
			if errors.As(err, &fe) {
				if fe.TooLarge {
					e = tollgate.Errorf(tollgate.CodeMessageTooBig, "Frame larger than %d bytes.", pr.cfg.Limits.MaxFrameBytes)
				} else {
					e = tollgate.Errorf(tollgate.CodeInvalidRequest, "Malformed frame: %s.", fe.Reason)
				}
			}
			return s.fatal(e, nil)
		}
		if f == nil {
			return nil
		}
		if err := pr.handle(s, f); err != nil {
			return err
		}
	}
}
