package limit

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Defaults of [Config] (docs/api.md, "Limits and blocks"; the same as the
// config package's defaults for the matching flags).
const (
	DefaultPublishRate       = 10
	DefaultPublishWindow     = 60 * time.Second
	DefaultAnonPublishRate   = 5
	DefaultBlockViolations   = 5
	DefaultBlockWindow       = 10 * time.Minute
	DefaultBlockDuration     = time.Hour
	DefaultFailedAuthBlock   = 20
	DefaultLoginRate         = 10
	DefaultLoginWindow       = time.Minute
	DefaultHandshakeRate     = 60
	DefaultHandshakeWindow   = time.Minute
	DefaultMaxSocketsPerUser = 32
	DefaultMaxSocketsPerIP   = 512
	DefaultMaxSockets        = 100_000
	DefaultSocketRetryAfter  = 5 * time.Second
	DefaultStoreTimeout      = 5 * time.Second
)

// Block reasons the Limiter writes into [tollgate.Block.Reason] and the audit
// log. They are a closed set, apart from the reason an admin gives.
const (
	ReasonViolations = "rate_limit_violations" // BlockViolations refused publishes
	ReasonFailedAuth = "failed_auth"           // FailedAuthBlock failed logins or handshakes
	ReasonAdmin      = "admin"                 // Block without a reason
)

// Metrics receives refusals and blocks for monitoring (package metrics
// implements it). Arguments come from fixed sets: what is "publish",
// "login", "handshake" or "sockets"; reason is one of the Reason constants.
// Implementations are safe for concurrent use and never block.
type Metrics interface {
	// RateLimited counts one request refused by a rate limit or a socket cap.
	RateLimited(what string)
	// Blocked counts one block stored, automatic or by an admin.
	Blocked(kind tollgate.BlockKind, reason string)
}

// Config configures a [Limiter] and [Sockets]. Zero (or negative) fields take
// the documented defaults; cmd/tollgate copies them from the flags of the
// same names.
type Config struct {
	// PublishRate is how many messages a user may publish per PublishWindow.
	// Default 10.
	PublishRate int
	// PublishWindow is the window of PublishRate and AnonPublishRate.
	// Default 60s.
	PublishWindow time.Duration
	// AnonPublishRate is PublishRate for anonymous principals, counted per IP
	// (an anonymous identity costs nothing to renew). Default 5.
	AnonPublishRate int
	// BlockViolations refused publishes within BlockWindow block the user
	// (an anonymous principal: its IP) for BlockDuration. Default 5.
	BlockViolations int
	// BlockWindow is the window of BlockViolations and FailedAuthBlock.
	// Default 10m.
	BlockWindow time.Duration
	// BlockDuration is how long an automatic block lasts, and an admin block
	// given no duration. Default 1h.
	BlockDuration time.Duration
	// FailedAuthBlock failed logins or handshakes from one IP within
	// BlockWindow block the IP for BlockDuration. Default 20.
	FailedAuthBlock int
	// LoginRate is how many login attempts an IP, and separately a username,
	// may make per LoginWindow. Default 10.
	LoginRate int
	// LoginWindow is the window of LoginRate. Default 1m.
	LoginWindow time.Duration
	// HandshakeRate is how many WebSocket handshakes an IP may make per
	// HandshakeWindow. Default 60.
	HandshakeRate int
	// HandshakeWindow is the window of HandshakeRate. Default 1m.
	HandshakeWindow time.Duration

	// MaxSocketsPerUser caps one user's concurrent sockets on this node
	// ([Sockets]). Default 32.
	MaxSocketsPerUser int
	// MaxSocketsPerIP caps one IP's concurrent sockets on this node. Default 512.
	MaxSocketsPerIP int
	// MaxSockets caps this node's concurrent sockets. Default 100000.
	MaxSockets int
	// SocketRetryAfter is the Retry-After of a socket refused by a cap: when
	// a socket closes cannot be known, so this is a hint. Default 5s.
	SocketRetryAfter time.Duration

	// StoreTimeout bounds the store calls of each Limiter method together.
	// Default 5s.
	StoreTimeout time.Duration
	// Logger receives what cannot be returned (a control event or an audit
	// counter that failed); nil discards it.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics counts refusals and blocks; nil counts nothing.
	Metrics Metrics
}

func (c Config) withDefaults() Config {
	posInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	posDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	posInt(&c.PublishRate, DefaultPublishRate)
	posDur(&c.PublishWindow, DefaultPublishWindow)
	posInt(&c.AnonPublishRate, DefaultAnonPublishRate)
	posInt(&c.BlockViolations, DefaultBlockViolations)
	posDur(&c.BlockWindow, DefaultBlockWindow)
	posDur(&c.BlockDuration, DefaultBlockDuration)
	posInt(&c.FailedAuthBlock, DefaultFailedAuthBlock)
	posInt(&c.LoginRate, DefaultLoginRate)
	posDur(&c.LoginWindow, DefaultLoginWindow)
	posInt(&c.HandshakeRate, DefaultHandshakeRate)
	posDur(&c.HandshakeWindow, DefaultHandshakeWindow)
	posInt(&c.MaxSocketsPerUser, DefaultMaxSocketsPerUser)
	posInt(&c.MaxSocketsPerIP, DefaultMaxSocketsPerIP)
	posInt(&c.MaxSockets, DefaultMaxSockets)
	posDur(&c.SocketRetryAfter, DefaultSocketRetryAfter)
	posDur(&c.StoreTimeout, DefaultStoreTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ControlPublisher asks every node to close the live sockets a control event
// names. [tollgate.Broker] satisfies it.
type ControlPublisher interface {
	PublishControl(ctx context.Context, e tollgate.ControlEvent) error
}

// Limiter applies the contract's rate limits and blocks (docs/api.md,
// "Limits and blocks"): publishes per user (anonymous: per IP), logins per
// IP and per username, handshakes per IP; refused publishes and failed
// authentications turn into temporary blocks. Its state lives in a
// [tollgate.RateCounter] and a [tollgate.Blocklist], so a cluster that shares
// them (Redis) shares its limits; the Limiter itself holds none.
//
// Rate limits are sliding-window estimates over the counter's fixed windows.
// A refused attempt is taken back from its count (it was not served), so a
// client that waits the RetryAfter it was given is let through.
//
// A Limiter fails closed: when a store cannot be reached, every check
// answers unavailable (503, or 1011 on a socket) rather than let traffic
// through unchecked.
//
// A Limiter is safe for concurrent use. It implements hub.PublishLimiter.
type Limiter struct {
	cfg     Config
	counter tollgate.RateCounter
	blocks  tollgate.Blocklist
	control ControlPublisher
	audit   tollgate.Auditor
	log     *slog.Logger
}

// New returns a Limiter. counter and blocks are required (New panics without
// them: a limiter without state would let everything through). control may
// be nil: blocks then close no live sockets until their next publish.
// auditor may be nil: nothing is audited.
func New(cfg Config, counter tollgate.RateCounter, blocks tollgate.Blocklist, control ControlPublisher, auditor tollgate.Auditor) *Limiter {
	if counter == nil || blocks == nil {
		panic("limit: New needs a RateCounter and a Blocklist")
	}
	if auditor == nil {
		auditor = tollgate.NopAuditor{}
	}
	cfg = cfg.withDefaults()
	return &Limiter{cfg: cfg, counter: counter, blocks: blocks, control: control, audit: auditor, log: cfg.Logger}
}

// Config returns the configuration in use, defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }

// storeCtx bounds the store calls of one method.
func (l *Limiter) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.cfg.StoreTimeout)
}

// maxAuditOrigin bounds the client-supplied Origin written to the audit log.
const maxAuditOrigin = 512

func (l *Limiter) record(ctx context.Context, e tollgate.AuditEvent) {
	if len(e.Origin) > maxAuditOrigin {
		e.Origin = e.Origin[:maxAuditOrigin]
	}
	if e.ConnID == "" {
		e.ConnID = tollgate.ConnIDFromContext(ctx)
	}
	l.audit.Record(ctx, e)
}

// unavailable is the fail-closed answer to a store failure.
func unavailable(what string, err error) *tollgate.Error {
	return tollgate.WrapError(tollgate.CodeUnavailable, fmt.Errorf("limit: %s: %w", what, err))
}

// rateLimited is a refusal that may be retried after wait.
func rateLimited(what string, wait time.Duration) *tollgate.Error {
	return &tollgate.Error{Code: tollgate.CodeRateLimited, RetryAfter: retryAfter(wait),
		Err: fmt.Errorf("limit: %s rate exceeded", what)}
}

// blockedError is the answer while b is in force; RetryAfter is when it ends.
func blockedError(b tollgate.Block, now time.Time) *tollgate.Error {
	return &tollgate.Error{Code: tollgate.CodeBlocked, RetryAfter: retryAfter(b.Until.Sub(now)),
		Err: fmt.Errorf("limit: %s blocked (%s) until %s", b.Kind, b.Reason, b.Until.UTC().Format(time.RFC3339))}
}

// limitCheck is one rate limit applied to one key.
type limitCheck struct {
	key   string
	rate  int
	w     time.Duration
	what  string // "publish", "login", "handshake": audit reason and log text
	audit tollgate.AuditEvent
}

// take counts one attempt against c at now and returns 0 if it is let
// through, or how long until it would be. A refused attempt is taken back
// from the count. The error is a store failure.
func (l *Limiter) take(ctx context.Context, c limitCheck, now time.Time) (time.Duration, error) {
	cur, prev, err := l.counter.Incr(ctx, c.key, 1, c.w, now)
	if err != nil {
		return 0, err
	}
	e := elapsed(now, c.w)
	if compareEstimate(prev, cur, int64(c.rate), c.w, e) <= 0 {
		return 0, nil
	}
	if l.cfg.Metrics != nil {
		l.cfg.Metrics.RateLimited(c.what)
	}
	// Refused: not served, so not counted. The same now lands the take-back
	// in the window the attempt was counted in.
	if _, _, err := l.counter.Incr(ctx, c.key, -1, c.w, now); err != nil {
		l.log.Warn("limit: taking back a refused attempt failed; the count stays one high",
			"what", c.what, "error", err)
	}
	return max(retryWait(prev, cur-1, int64(c.rate), c.w, e), time.Nanosecond), nil
}

// giveBack takes back an attempt that take let through, when a later check
// of the same request refused it.
func (l *Limiter) giveBack(ctx context.Context, c limitCheck, now time.Time) {
	if _, _, err := l.counter.Incr(ctx, c.key, -1, c.w, now); err != nil {
		l.log.Warn("limit: taking back an attempt failed; the count stays one high", "what", c.what, "error", err)
	}
}

// publishControl asks every node to close the sockets of a new block.
func (l *Limiter) publishControl(ctx context.Context, b tollgate.Block, now time.Time) error {
	if l.control == nil {
		return nil
	}
	kind := tollgate.ControlBlockUser
	if b.Kind == tollgate.BlockIP {
		kind = tollgate.ControlBlockIP
	}
	err := l.control.PublishControl(ctx, tollgate.ControlEvent{Kind: kind, Target: b.Target, Code: tollgate.CodeBlocked, At: now})
	if err != nil {
		l.log.Error("limit: publishing a block failed; live sockets close at their next publish",
			"kind", string(b.Kind), "error", err)
	}
	return err
}

// block stores b, audits it and asks every node to close its sockets. e
// carries the audit fields of the request that caused it. The error is the
// store's; a failed control event is logged and returned as controlErr.
func (l *Limiter) block(ctx context.Context, b tollgate.Block, e tollgate.AuditEvent, now time.Time) (controlErr, err error) {
	if err := l.blocks.Block(ctx, b); err != nil {
		return nil, err
	}
	if l.cfg.Metrics != nil {
		reason := b.Reason // an admin's own words never become a label
		if reason != ReasonViolations && reason != ReasonFailedAuth {
			reason = ReasonAdmin
		}
		l.cfg.Metrics.Blocked(b.Kind, reason)
	}
	e.TS, e.Event, e.Reason = now, tollgate.AuditBlocked, b.Reason
	switch b.Kind {
	case tollgate.BlockUser:
		e.User = b.Target
	case tollgate.BlockIP:
		e.IP = b.Target
	}
	l.record(ctx, e)
	return l.publishControl(ctx, b, now), nil
}
