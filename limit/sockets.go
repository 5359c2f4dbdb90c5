package limit

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// ErrTooManySockets is the log-only cause (Err) of a socket refused by a cap;
// errors.Is tells it from other rate_limited refusals, e.g. for a metric.
var ErrTooManySockets = errors.New("limit: too many sockets")

// Sockets counts one node's concurrent sockets and caps them per user, per
// IP and in total (docs/api.md, "Limits and blocks": concurrent sockets).
//
// The counts are node-local: a socket lives on one node, and its count must
// be given back even when the node loses its stores, so they are not shared.
// In a cluster of N nodes a user may thus hold up to N × MaxSocketsPerUser
// sockets; the load balancer spreads them, and each node's memory is what the
// caps protect.
//
// Sockets is safe for concurrent use. Its maps hold one entry per user and
// IP with a live socket, so its memory is bounded by MaxSockets.
type Sockets struct {
	perUser, perIP, total int
	retryAfter            time.Duration
	metrics               Metrics

	mu    sync.Mutex
	users map[string]int
	ips   map[string]int
	n     int
}

// NewSockets returns a counter with cfg's MaxSocketsPerUser,
// MaxSocketsPerIP, MaxSockets and SocketRetryAfter (zero: the defaults).
// Unauthenticated sockets (--first-message-auth) can have their own counter:
// NewSockets(Config{MaxSocketsPerIP: cfg.MaxUnauthenticatedPerIP,
// MaxSockets: cfg.MaxUnauthenticated}), acquired with an empty userID.
func NewSockets(cfg Config) *Sockets {
	cfg = cfg.withDefaults()
	return &Sockets{
		perUser: cfg.MaxSocketsPerUser, perIP: cfg.MaxSocketsPerIP, total: cfg.MaxSockets,
		retryAfter: cfg.SocketRetryAfter, metrics: cfg.Metrics,
		users: make(map[string]int), ips: make(map[string]int),
	}
}

// Acquire counts one more socket of userID from ip, or refuses it with an
// *[tollgate.Error] rate_limited (the contract's "429 too many", with
// Retry-After SocketRetryAfter; its Err wraps [ErrTooManySockets] and says
// which cap) when the node, the user or the IP is at its cap. An empty
// userID or ip is not capped on that count (e.g. a socket not yet
// authenticated has no user).
//
// On success the caller must call release exactly once when the socket
// closes (or the upgrade fails); further calls do nothing. Call Acquire
// before answering 101, so a refused socket never opens. Safe for concurrent
// use.
func (s *Sockets) Acquire(userID, ip string) (release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var which string
	var limit int
	switch {
	case s.n >= s.total:
		which, limit = "on this node", s.total
	case userID != "" && s.users[userID] >= s.perUser:
		which, limit = "for the user", s.perUser
	case ip != "" && s.ips[ip] >= s.perIP:
		which, limit = "for the IP", s.perIP
	}
	if which != "" {
		if s.metrics != nil {
			s.metrics.RateLimited("sockets")
		}
		return nil, &tollgate.Error{Code: tollgate.CodeRateLimited, Message: "Too many open connections.",
			RetryAfter: s.retryAfter, Err: fmt.Errorf("%w %s (cap %d)", ErrTooManySockets, which, limit)}
	}
	s.n++
	if userID != "" {
		s.users[userID]++
	}
	if ip != "" {
		s.ips[ip]++
	}
	var done atomic.Bool
	return func() {
		if done.Swap(true) {
			return
		}
		s.release(userID, ip)
	}, nil
}

func (s *Sockets) release(userID, ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n--
	if userID != "" {
		if s.users[userID] <= 1 {
			delete(s.users, userID)
		} else {
			s.users[userID]--
		}
	}
	if ip != "" {
		if s.ips[ip] <= 1 {
			delete(s.ips, ip)
		} else {
			s.ips[ip]--
		}
	}
}

// Count returns the sockets counted for userID, for ip and in total. Safe
// for concurrent use.
func (s *Sockets) Count(userID, ip string) (user, perIP, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[userID], s.ips[ip], s.n
}
