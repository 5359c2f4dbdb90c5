package jsonproto

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/ws"
)

// Name is the subprotocol name of the JSON protocol.
const Name = "tollgate.v1"

// Verifier checks credentials that arrive inside the socket: a refreshed
// access token, or the first-message credential. auth.Service implements it.
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
	// FirstMessageTimeout is how long an unauthenticated socket (opened
	// with first-message auth) has to send its auth frame. Default 5s.
	FirstMessageTimeout time.Duration
	// RequestTimeout bounds the store and verifier calls of one frame.
	// Default 10s.
	RequestTimeout time.Duration
	// Auditor records token_refreshed; nil discards.
	Auditor tollgate.Auditor
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// OnAuthenticated, if set, runs when a first-message socket has
	// authenticated (for counting unauthenticated sockets).
	OnAuthenticated func(c *ws.Conn)
}

// Protocol implements ws.Protocol for tollgate.v1. It is safe for concurrent use.
type Protocol struct{ cfg Config }

// New returns the protocol.
func New(cfg Config) *Protocol {
	if cfg.FirstMessageTimeout <= 0 {
		cfg.FirstMessageTimeout = 5 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
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
	return &Protocol{cfg: cfg}
}

// session is one socket as the hub sees it.
type session struct {
	c *ws.Conn

	mu      sync.Mutex
	pending bool        // first-message auth not yet done
	timer   *time.Timer // first-message deadline
}

func (s *session) ID() string                    { return s.c.ID() }
func (s *session) Principal() tollgate.Principal { return s.c.Principal() }
func (s *session) Client() tollgate.ClientInfo   { return s.c.Client() }
func (s *session) Close(err *tollgate.Error)     { s.c.Close(err) }

// sharedKey is the Delivery cache slot of this protocol's encoding.
type sharedKey struct{}

type sharedFrame struct{ *ws.Shared }

func (s *session) Deliver(d *hub.Delivery) bool {
	f := d.Encoded(sharedKey{}, func(m tollgate.Message) any {
		return sharedFrame{ws.NewShared(encode(messageFrame(m)))}
	}).(sharedFrame)
	return s.c.SendShared(f.Shared)
}

func sessionOf(c *ws.Conn) *session {
	s, _ := c.State().(*session)
	return s
}

// pendingPrincipal reports whether p is the placeholder of a socket opened
// with first-message auth that has not authenticated yet.
func pendingPrincipal(p tollgate.Principal) bool {
	return p.Credential == tollgate.CredentialFirstMessage && p.UserID == ""
}

// Open implements ws.Protocol.
func (pr *Protocol) Open(c *ws.Conn) {
	s := &session{c: c}
	c.SetState(s)
	if pendingPrincipal(c.Principal()) {
		s.mu.Lock()
		s.pending = true
		s.timer = time.AfterFunc(pr.cfg.FirstMessageTimeout, func() {
			s.mu.Lock()
			still := s.pending
			s.mu.Unlock()
			if still {
				c.Close(tollgate.NewError(tollgate.CodeAuthTimeout))
			}
		})
		s.mu.Unlock()
		return
	}
	pr.cfg.Hub.Register(s)
	c.Send(pr.welcome(c))
}

func (pr *Protocol) welcome(c *ws.Conn) []byte {
	p := c.Principal()
	f := welcomeFrame{Type: "welcome", Protocol: Name, ConnID: c.ID(),
		User: userJSON{ID: p.UserID, Name: p.Name, Anonymous: p.Anonymous}}
	if !p.ExpiresAt.IsZero() {
		t := p.ExpiresAt.UTC()
		f.ExpiresAt = &t
	}
	return encode(f)
}

// Closed implements ws.Protocol.
func (pr *Protocol) Closed(c *ws.Conn, code int, reason string) {
	if s := sessionOf(c); s != nil {
		s.mu.Lock()
		if s.timer != nil {
			s.timer.Stop()
		}
		s.mu.Unlock()
		pr.cfg.Hub.Unregister(s)
	}
}

// Expiring implements ws.Protocol.
func (pr *Protocol) Expiring(c *ws.Conn, exp time.Time) {
	c.Send(encode(expiringFrame{Type: "token_expiring", ExpiresAt: exp.UTC()}))
}

// Message implements ws.Protocol. Errors that keep the socket open are sent
// as error frames here; a returned error closes the socket.
func (pr *Protocol) Message(c *ws.Conn, data []byte) error {
	s := sessionOf(c)
	req, err := Decode(data)
	s.mu.Lock()
	pending := s.pending
	s.mu.Unlock()
	if pending {
		// The first frame must authenticate; nothing else is accepted before.
		if err != nil || req.Type != "auth" {
			return tollgate.NewError(tollgate.CodeUnauthenticated)
		}
		return pr.authenticate(c, s, req)
	}
	if err != nil {
		c.Send(errorFrameOf(tollgate.AsError(err), ""))
		return nil
	}
	// The connection id rides along so that what the request causes (a
	// rate_limited or blocked audit line) names the socket.
	ctx, cancel := context.WithTimeout(tollgate.NewContextWithConnID(context.Background(), c.ID()), pr.cfg.RequestTimeout)
	defer cancel()
	out, err := pr.dispatch(ctx, c, s, req)
	if err != nil {
		e := tollgate.AsError(err)
		if e.Code.CloseCode() != 0 && closesSocket(e.Code) {
			return e
		}
		if e.Code == tollgate.CodeInternal || e.Code == tollgate.CodeUnavailable {
			pr.cfg.Logger.Error("request failed", "conn_id", c.ID(), "type", req.Type, "error", e.Err)
		}
		c.Send(errorFrameOf(e, req.ClientID))
		return nil
	}
	if out != nil {
		c.Send(out)
	}
	return nil
}

// closesSocket lists the codes that end a socket when a request meets them;
// every other code is answered with an error frame (docs/api.md, "JSON
// protocol": refused requests keep the socket open).
func closesSocket(c tollgate.Code) bool {
	switch c {
	case tollgate.CodeBlocked, tollgate.CodeSessionRevoked, tollgate.CodeUserDisabled,
		tollgate.CodeTokenExpired, tollgate.CodeUnauthenticated:
		return true
	}
	return false
}

func (pr *Protocol) dispatch(ctx context.Context, c *ws.Conn, s *session, req Request) ([]byte, error) {
	h := pr.cfg.Hub
	switch req.Type {
	case "join":
		// The joined frame is queued inside Join so that it precedes every
		// message the socket receives live in this room.
		return nil, h.Join(ctx, s, req.Room, func(last int64) {
			c.Send(encode(joinedFrame{Type: "joined", Room: req.Room, LastID: last}))
		})
	case "leave":
		if err := h.Leave(s, req.Room); err != nil {
			return nil, err
		}
		return encode(leftFrame{Type: "left", Room: req.Room}), nil
	case "publish":
		m, _, err := h.Publish(ctx, s, req.Room, req.Text, req.ClientID)
		if err != nil {
			return nil, err
		}
		return encode(ackFrame{Type: "ack", ClientID: req.ClientID, ID: m.ID, Room: m.Room}), nil
	case "history":
		msgs, err := h.History(ctx, s, req.Room, req.Since, req.Limit)
		if err != nil {
			return nil, err
		}
		f := historyFrame{Type: "history", Room: req.Room, Messages: make([]MessageFrame, len(msgs))}
		for i, m := range msgs {
			f.Messages[i] = messageFrame(m)
		}
		return encode(f), nil
	case "ping":
		return encode(simpleFrame{Type: "pong"}), nil
	case "refresh":
		return pr.refresh(ctx, c, s, req)
	case "auth":
		return nil, tollgate.Errorf(tollgate.CodeInvalidRequest, "Already authenticated.")
	default:
		return nil, tollgate.Errorf(tollgate.CodeInvalidRequest, "Unknown frame type.")
	}
}

// refresh extends the socket with a new access token for the same user and
// a live session (docs/api.md, "refresh"); anything else closes it 1008.
func (pr *Protocol) refresh(ctx context.Context, c *ws.Conn, s *session, req Request) ([]byte, error) {
	old := c.Principal()
	if req.Token.Empty() {
		return nil, tollgate.Errorf(tollgate.CodeInvalidRequest, `refresh needs a "token".`)
	}
	if old.Anonymous {
		return nil, tollgate.Errorf(tollgate.CodeForbidden, "Anonymous sockets have nothing to refresh.")
	}
	p, err := pr.cfg.Verifier.VerifyAccess(ctx, req.Token)
	if err != nil {
		e := tollgate.AsError(err)
		if e.Code == tollgate.CodeUnavailable {
			return nil, e // keep the socket: the store is down, not the client's fault
		}
		if !closesSocket(e.Code) {
			e = tollgate.NewError(tollgate.CodeUnauthenticated)
		}
		return nil, e
	}
	if p.UserID != old.UserID {
		// A connection can never switch principal.
		return nil, tollgate.NewError(tollgate.CodeUnauthenticated)
	}
	p.Credential = old.Credential
	// refreshed goes out before the new expiry timers start: a token that
	// lives less than the warning period gets its token_expiring after it.
	c.SetPrincipalThen(p, encode(expiringFrame{Type: "refreshed", ExpiresAt: p.ExpiresAt.UTC()}))
	pr.cfg.Hub.UpdatePrincipal(s)
	pr.cfg.Auditor.Record(ctx, tollgate.AuditEvent{TS: pr.cfg.Now().UTC(), Event: tollgate.AuditTokenRefreshed,
		User: p.Name, IP: c.Client().IP, ConnID: c.ID(), Credential: p.Credential, Reason: "in_band"})
	return nil, nil
}

// authenticate handles the first frame of a first-message socket.
func (pr *Protocol) authenticate(c *ws.Conn, s *session, req Request) error {
	ctx, cancel := context.WithTimeout(context.Background(), pr.cfg.RequestTimeout)
	defer cancel()
	var (
		p   tollgate.Principal
		err error
	)
	switch {
	case !req.Ticket.Empty() && req.Token.Empty():
		p, err = pr.cfg.Verifier.RedeemTicket(ctx, req.Ticket, c.Client())
	case !req.Token.Empty() && req.Ticket.Empty():
		p, err = pr.cfg.Verifier.VerifyAccess(ctx, req.Token)
	default:
		err = tollgate.NewError(tollgate.CodeUnauthenticated)
	}
	if err != nil {
		e := tollgate.AsError(err)
		if e.Code.CloseCode() == 0 {
			e = tollgate.NewError(tollgate.CodeUnauthenticated)
		}
		return e
	}
	s.mu.Lock()
	if !s.pending { // the deadline fired meanwhile
		s.mu.Unlock()
		return tollgate.NewError(tollgate.CodeAuthTimeout)
	}
	s.pending = false
	s.timer.Stop()
	s.mu.Unlock()
	c.SetPrincipal(p)
	pr.cfg.Hub.Register(s)
	if pr.cfg.OnAuthenticated != nil {
		pr.cfg.OnAuthenticated(c)
	}
	c.Send(pr.welcome(c))
	return nil
}
