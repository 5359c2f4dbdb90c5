package httpapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
)

// Defaults of [Config].
const (
	DefaultMaxBodyBytes = 64 << 10
	DefaultReadyTimeout = 2 * time.Second
)

// SocketAcceptor upgrades an authenticated GET /ws request and serves the
// socket. It is implemented by package ws. AcceptSlot is called only after
// the handshake was authenticated and admitted, and only for a request that
// is a WebSocket upgrade; headers already set on w (Deprecation, Sunset)
// belong in the 101 response. It writes its own answer when the upgrade
// fails. release frees the socket's slot (SocketSlots): the acceptor calls
// it exactly once, when the socket has ended or the upgrade failed.
type SocketAcceptor interface {
	AcceptSlot(w http.ResponseWriter, r *http.Request, p tollgate.Principal, c tollgate.ClientInfo, release func())
}

// Pinger reports whether a backing store is reachable. Ping must return
// when ctx ends.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Check is one named readiness check of GET /readyz.
type Check struct {
	// Name says which store is down in the 503 answer ("sqlite", "redis").
	// It comes from server code, never from input.
	Name   string
	Pinger Pinger
}

// Metrics receives the edge's handshake outcomes for monitoring (package
// metrics implements it). Implementations are safe for concurrent use and
// never block.
type Metrics interface {
	// Handshake counts one GET /ws upgrade request and how long it took until
	// the 101 was written or the refusal decided. code is "" for an accepted
	// socket, else the contract code it was refused with; credential is the
	// kind that opened the socket (none for a refusal).
	Handshake(code tollgate.Code, credential tollgate.CredentialKind, d time.Duration)
}

// Config configures a [Server]. Every field's comment says what zero means.
type Config struct {
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (docs/api.md, "Operations"). Empty means none: the client IP is always
	// the peer address.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes bounds a request body. Zero means 64 KiB.
	MaxBodyBytes int64
	// ReadyTimeout bounds all readiness checks of one GET /readyz together.
	// Zero means 2 seconds.
	ReadyTimeout time.Duration
	// Logger receives the access log and errors, never a secret or a query
	// string. Nil discards them.
	Logger *slog.Logger
	// Now is the clock for expires_in and cookie Max-Age. Nil means time.Now;
	// it should be the clock the auth.Service uses.
	Now func() time.Time
	// Metrics counts handshakes; nil counts nothing.
	Metrics Metrics
}

// Deps are the services a [Server] serves.
type Deps struct {
	// Auth authenticates every request. Required.
	Auth *auth.Service
	// Sockets accepts authenticated upgrades. Nil answers GET /ws with 503.
	Sockets SocketAcceptor
	// Ready are the checks of GET /readyz; none means always ready.
	Ready []Check
	// Guard rate-limits logins and handshakes and refuses blocked users and
	// IPs. Nil allows everything.
	Guard Guard
	// Slots caps concurrent sockets. Nil means no cap.
	Slots SocketSlots
	// PendingSlots caps sockets opened unauthenticated for first-message
	// auth, per IP and in total (they are acquired with an empty user id).
	// The socket gives its slot back when it authenticates or closes. Nil
	// means no cap.
	PendingSlots SocketSlots
	// Admin serves the admin API under /api/admin/. Nil answers it 404.
	Admin *Admin
	// Pages, if set, serves every GET or HEAD request that no API route
	// takes: the chat page at / and the SDK at /sdk/. It sets its own
	// Content-Type and Content-Security-Policy. Nil answers them 404.
	Pages http.Handler
	// Metrics, if set, serves GET /metrics (Prometheus). Nil answers it
	// 404: the metrics are then served on another listener, or not at all.
	Metrics http.Handler
}

// Server is tollgate's HTTP edge: the REST API of docs/api.md, the
// authentication of GET /ws before the upgrade, uniform JSON errors, cookies,
// the client IP and a redacted access log. It is safe for concurrent use and
// holds no global state: its routes live on a private ServeMux.
type Server struct {
	cfg     Config
	auth    *auth.Service
	sockets SocketAcceptor
	ready   []Check
	log     *slog.Logger
	now     func() time.Time
	handler http.Handler
	pages   http.Handler
	guard   Guard
	slots   SocketSlots
	pending SocketSlots
	admin   *Admin
	metrics http.Handler
}

// New returns a Server. It fails when deps.Auth is nil.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Auth == nil {
		return nil, errors.New("httpapi: Deps.Auth is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, c := range deps.Ready {
		if c.Name == "" || c.Pinger == nil {
			return nil, errors.New("httpapi: every readiness check needs a name and a pinger")
		}
	}
	s := &Server{cfg: cfg, auth: deps.Auth, sockets: deps.Sockets, ready: deps.Ready, pages: deps.Pages,
		guard: deps.Guard, slots: deps.Slots, pending: deps.PendingSlots, admin: deps.Admin, metrics: deps.Metrics, log: cfg.Logger, now: cfg.Now}
	if s.guard == nil {
		s.guard = noGuard{}
	}
	if s.slots == nil {
		s.slots = noSlots{}
	}
	if s.pending == nil {
		s.pending = noSlots{}
	}
	s.handler = s.middleware(s.routes())
	return s, nil
}

// Handler returns the root handler: every route of the API plus GET /ws,
// wrapped in the access log, panic recovery and security headers.
func (s *Server) Handler() http.Handler { return s.handler }

// routes registers every endpoint on a private mux. Each path also gets a
// method-less pattern answering 405 in JSON, and "/" answers 404 in JSON, so
// that no answer of the API is the mux's plain text.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	route := func(method, path string, h http.HandlerFunc) {
		mux.HandleFunc(method+" "+path, h)
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			allow := method
			if method == http.MethodGet {
				allow = "GET, HEAD"
			}
			w.Header().Set("Allow", allow)
			s.writeError(w, r, tollgate.NewError(tollgate.CodeMethodNotAllowed))
		})
	}
	route(http.MethodPost, "/api/auth/register", s.handleRegister)
	route(http.MethodPost, "/api/auth/login", s.handleLogin)
	route(http.MethodPost, "/api/auth/refresh", s.handleRefresh)
	route(http.MethodPost, "/api/auth/logout", s.handleLogout)
	route(http.MethodPost, "/api/auth/ws-ticket", s.handleTicket)
	route(http.MethodGet, "/api/auth/anon", s.handleAnonymous)
	route(http.MethodGet, "/api/me", s.handleMe)
	route(http.MethodGet, "/healthz", s.handleHealth)
	route(http.MethodGet, "/readyz", s.handleReady)
	route(http.MethodGet, "/ws", s.handleWS)
	if s.metrics != nil {
		route(http.MethodGet, "/metrics", s.metrics.ServeHTTP)
	}
	if s.admin != nil {
		s.adminRoutes(mux)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.pages != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.HasPrefix(r.URL.Path, "/api/") {
			s.pages.ServeHTTP(w, r)
			return
		}
		s.writeError(w, r, tollgate.NewError(tollgate.CodeNotFound))
	})
	return mux
}
