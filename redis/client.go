package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/tollgate-ws/tollgate"
)

var (
	_ tollgate.TicketStore = (*Client)(nil)
	_ tollgate.Broker      = (*Client)(nil)
	_ tollgate.RateCounter = (*Client)(nil)
	_ tollgate.Blocklist   = (*Client)(nil)
)

// DefaultPrefix is the key and channel prefix when [Options.Prefix] is empty.
const DefaultPrefix = "tollgate:"

// DefaultTimeout bounds a call whose context has no deadline, and Open when
// its context has none.
const DefaultTimeout = 5 * time.Second

// Options configures a [Client]. The zero value is valid.
type Options struct {
	// Prefix is put before every key and channel name, so that several
	// clusters, or parallel tests, can share one Redis. Every node of a
	// cluster must use the same prefix. Empty means [DefaultPrefix].
	Prefix string
	// Logger receives the broker's connection warnings (never a URL or a
	// secret). Nil discards them.
	Logger *slog.Logger
	// Now is the clock from which TTLs are computed (a ticket's, a block's,
	// a rate window's); nil means time.Now. Expiry decisions use the times
	// callers pass in; the TTLs only let Redis forget what has expired.
	Now func() time.Time
	// ReconnectMin and ReconnectMax bound the backoff of [Client.Run]
	// between resubscription attempts: it starts at ReconnectMin and
	// doubles up to ReconnectMax. Zero means 100 ms and 5 s.
	ReconnectMin, ReconnectMax time.Duration
}

// Client is a connection pool to one Redis server plus the broker's
// subscription. It implements [tollgate.TicketStore], [tollgate.Broker],
// [tollgate.RateCounter] and [tollgate.Blocklist] and is safe for
// concurrent use. Create it with [Open]; Close it when done.
type Client struct {
	rdb    *goredis.Client
	prefix string
	log    *slog.Logger
	now    func() time.Time

	reconnectMin, reconnectMax time.Duration

	running atomic.Bool // Run in progress
	closed  atomic.Bool
}

// Open connects to the Redis server at rawURL (redis://[user:password@]host[:port][/db][?options],
// rediss:// for TLS, or unix://; the options are go-redis's, e.g.
// dial_timeout, pool_size, client_name) and checks it with a PING within
// ctx (or [DefaultTimeout] when ctx has no deadline). An unreachable server
// gives an error wrapping [tollgate.ErrUnavailable]. No error of Open or of
// the Client quotes the URL or its password.
func Open(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	// url.Parse and go-redis quote the URL (password and all) in their
	// errors: report a fixed message, or the error with the password cut out.
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("redis: open: the URL cannot be parsed")
	}
	o, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis: open: %s", redact(err.Error(), u))
	}
	// Deadlines of the caller's context bound socket reads and writes, not
	// only the wait for a pooled connection.
	o.ContextTimeoutEnabled = true
	// Maintenance notifications are a Redis Enterprise/Cloud feature; auto
	// mode probes for it on every new connection.
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	c := &Client{
		rdb:          goredis.NewClient(o),
		prefix:       opts.Prefix,
		log:          opts.Logger,
		now:          opts.Now,
		reconnectMin: opts.ReconnectMin,
		reconnectMax: opts.ReconnectMax,
	}
	if c.prefix == "" {
		c.prefix = DefaultPrefix
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.reconnectMin <= 0 {
		c.reconnectMin = 100 * time.Millisecond
	}
	if c.reconnectMax <= 0 {
		c.reconnectMax = 5 * time.Second
	}
	c.reconnectMax = max(c.reconnectMax, c.reconnectMin)

	if err := c.Ping(ctx); err != nil {
		c.rdb.Close()
		return nil, fmt.Errorf("redis: open: %w", errors.Unwrap(err))
	}
	return c, nil
}

// redact removes the URL's password from an error message.
func redact(msg string, u *url.URL) string {
	if u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// Prefix returns the key and channel prefix in use. Safe for concurrent use.
func (c *Client) Prefix() string { return c.prefix }

// Ping checks that Redis answers within ctx (or [DefaultTimeout]). It
// returns nil or an error wrapping [tollgate.ErrUnavailable]; /readyz uses
// it. Safe for concurrent use.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", unavailable(err))
	}
	return nil
}

// Close closes the connection pool. A running [Client.Run] fails over to
// its backoff loop and returns when its context ends; every other call after
// Close fails with an error wrapping [tollgate.ErrUnavailable]. Close is
// idempotent and safe for concurrent use.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if err := c.rdb.Close(); err != nil {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

// bound returns ctx, with DefaultTimeout when it has no deadline.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// fail wraps err for the operation op, mapping goredis.Nil onto
// [tollgate.ErrNotFound] and connection trouble onto
// [tollgate.ErrUnavailable].
func (c *Client) fail(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, goredis.Nil):
		return fmt.Errorf("redis: %s: %w", op, tollgate.ErrNotFound)
	case c.closed.Load() || isUnavailable(err):
		return fmt.Errorf("redis: %s: %w", op, unavailable(err))
	}
	return fmt.Errorf("redis: %s: %w", op, err)
}

// unavailable marks err as ErrUnavailable.
func unavailable(err error) error {
	if errors.Is(err, tollgate.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", tollgate.ErrUnavailable, err)
}

// unavailableReplies are the prefixes of Redis error replies that mean the
// server cannot serve now (loading, a replica, out of memory, a failed
// persistence, a long script, …) or will not serve this client (auth).
var unavailableReplies = []string{
	"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "MISCONF", "OOM",
	"NOREPLICAS", "NOAUTH", "WRONGPASS", "NOPERM",
}

// isUnavailable reports whether err means Redis cannot be used right now,
// rather than that the request was wrong.
func isUnavailable(err error) bool {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, goredis.ErrClosed), errors.Is(err, goredis.ErrPoolTimeout),
		errors.Is(err, goredis.ErrPoolExhausted),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, net.ErrClosed), errors.As(err, &ne):
		return true
	}
	var re goredis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range unavailableReplies {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
	}
	return false
}

// SilenceLibraryLogs stops go-redis's own log lines (connection-pool dial
// retries, printed to stderr): every failure they describe also reaches
// the caller as an error, which tollgate logs once, in its own format.
// go-redis keeps its logger in a package variable, so this is process-wide:
// call it once, from main, before any client exists.
func SilenceLibraryLogs() { goredis.SetLogger(silentLogger{}) }

type silentLogger struct{}

func (silentLogger) Printf(context.Context, string, ...any) {}
