package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-ws/tollgate"
)

// Defaults and bounds of [Config] (docs/api.md, "Names").
const (
	DefaultIssuer       = "tollgate"
	DefaultAudience     = "tollgate"
	DefaultAccessTTL    = 15 * time.Minute
	DefaultRefreshTTL   = 720 * time.Hour
	DefaultTicketTTL    = 30 * time.Second
	MinTicketTTL        = 5 * time.Second
	MaxTicketTTL        = 5 * time.Minute
	DefaultLeeway       = 5 * time.Second
	MaxLeeway           = 30 * time.Second
	DefaultAnonymousTTL = 24 * time.Hour
	DefaultStoreTimeout = 5 * time.Second
)

// ControlPublisher hands a control event to every node, which closes the
// matching live sockets. [tollgate.Broker] implements it.
type ControlPublisher interface {
	PublishControl(ctx context.Context, e tollgate.ControlEvent) error
}

// Metrics receives ticket and legacy-credential events for monitoring
// (package metrics implements it). A [tollgate.TicketHash] is what the
// stores index tickets by, never the ticket itself; implementations must not
// use it as a label. Implementations are safe for concurrent use and never
// block.
type Metrics interface {
	// TicketIssued counts a ticket stored until expiresAt.
	TicketIssued(h tollgate.TicketHash, expiresAt time.Time)
	// TicketRedeemed counts a ticket spent by a redeem (whether or not its
	// Origin and session checks then passed).
	TicketRedeemed(h tollgate.TicketHash)
	// TicketNotFound counts a redeem at now that found no ticket: unknown,
	// expired or already redeemed (the store does not say which).
	TicketNotFound(h tollgate.TicketHash, now time.Time)
	// LegacyTokenUsed counts a ?token= credential: accepted, or refused
	// because its sunset date has passed.
	LegacyTokenUsed(accepted bool)
}

// Config configures a [Service]. Every field's comment says what its zero
// value means; the zero Config (plus Keys) is a working single-node setup.
type Config struct {
	// Keys signs and verifies tollgate's own JWTs (access tokens, anonymous
	// sessions). Required; see [LoadKeySet] and [NewKeySet].
	// [Service.SetKeys] replaces them at run time.
	Keys *KeySet
	// Issuer is the iss of access tokens and the only one accepted. Zero
	// means "tollgate".
	Issuer string
	// Audience is the aud of access tokens and the only one accepted. Zero
	// means "tollgate".
	Audience string
	// AccessTTL is the lifetime of access tokens. Zero means 15 minutes.
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a login session and so the horizon of its
	// refresh tokens. Zero means 720 hours.
	RefreshTTL time.Duration
	// TicketTTL is the lifetime of a WebSocket ticket, 5 s to 5 min. Zero
	// means 30 seconds.
	TicketTTL time.Duration
	// Leeway is the clock skew allowed when checking exp and nbf, at most
	// 30 s (docs/api.md, "Accounts and tokens"). Zero means 5 seconds.
	Leeway time.Duration
	// AllowedOrigins is the Origin allowlist (see [NewOrigins]). Empty means
	// no Origin is allowed: browsers cannot use cookies or open sockets, and
	// non-browser clients (which send no Origin) still can.
	AllowedOrigins []string
	// SecureCookies selects the cookie names of the secure mode
	// (__Host-auth_token, __Secure-refresh_token); false selects the plain
	// names. Only the names of the current mode are read (see [CookieNamesFor]).
	SecureCookies bool
	// RegistrationClosed refuses [Service.Register] with forbidden. Zero
	// means registration is open, the contract's default.
	RegistrationClosed bool
	// Argon2 sets the password hashing parameters; zero fields mean the
	// defaults documented on [Argon2].
	Argon2 Argon2
	// StoreTimeout bounds every store call. Zero means 5 seconds.
	StoreTimeout time.Duration
	// SessionCacheTTL is how long a live session read for a token or ticket
	// check is remembered, at most [MaxSessionCacheTTL]. Revocations on this
	// node and those [Service.ForgetRevoked] hears of drop it at once; only
	// a control event lost between nodes can leave a revoked session usable
	// for this long. Zero means no cache: every check reads the store.
	SessionCacheTTL time.Duration

	// Anonymous enables anonymous sessions: [Service.IssueAnonymous] and the
	// anon_session cookie on GET /ws. Zero means off.
	Anonymous bool
	// AnonymousTTL is the lifetime of an anonymous session. Zero means 24 hours.
	AnonymousTTL time.Duration
	// LegacyQueryToken accepts an access JWT in ?token= on GET /ws until
	// LegacyQueryTokenUntil. Zero means off.
	LegacyQueryToken bool
	// LegacyQueryTokenUntil is the instant from which ?token= is refused; it
	// is also the Sunset header of each accepted use. Required (non-zero)
	// when LegacyQueryToken is on.
	LegacyQueryTokenUntil time.Time
	// FirstMessageAuth opens a socket without a credential as pending: the
	// socket must authenticate with its first message. Zero means off: no
	// credential is 401.
	FirstMessageAuth bool
	// OIDC accepts the JWTs of an external identity provider. The zero
	// value means none.
	OIDC OIDCConfig

	// Now is the clock. Nil means time.Now.
	Now func() time.Time
	// Logger receives operational logs, never a secret. Nil discards them.
	Logger *slog.Logger
	// Auditor records audit events. Nil means tollgate.NopAuditor{}.
	Auditor tollgate.Auditor
	// Control closes live sockets on revocation. Nil means none: revoked
	// sessions are still refused at once by every check, but their open
	// sockets live until the next revalidation.
	Control ControlPublisher
	// Metrics counts tickets and legacy credentials. Nil counts nothing.
	Metrics Metrics
}

// Service is tollgate's authentication: accounts, login sessions, access
// tokens, refresh tokens, WebSocket tickets and the handshake's credential
// decision. It is safe for concurrent use. Every error it returns is a
// *tollgate.Error with a contract code; store failures become unavailable
// (fail closed).
type Service struct {
	cfg Config
	// keys are the signing and verifying keys: cfg.Keys until SetKeys.
	keys     atomic.Pointer[KeySet]
	users    tollgate.UserStore
	sessions tollgate.SessionStore // cache when there is one, else the store
	cache    *sessionCache         // nil without Config.SessionCacheTTL
	tickets  tollgate.TicketStore
	hasher   *hasher
	dummy    string // PHC hash checked for unknown users
	origins  Origins
	cookies  CookieNames
	access   *jwt.Parser
	verified *tokenCache // access tokens verified before
	anon     *jwt.Parser
	// accessKeyfunc and anonKeyfunc look keys up for the two token types.
	accessKeyfunc jwt.Keyfunc
	anonKeyfunc   jwt.Keyfunc
	oidc          *oidcVerifier
	log           *slog.Logger
	audit         tollgate.Auditor
	now           func() time.Time
}

// New returns a Service over the given stores. It computes the dummy password
// hash used for unknown users (one argon2id run), and with cfg.OIDC set it
// fetches the provider's discovery document and keys (bounded by
// cfg.OIDC.HTTPTimeout). Call [Service.Close] when done with it.
func New(cfg Config, users tollgate.UserStore, sessions tollgate.SessionStore, tickets tollgate.TicketStore) (*Service, error) {
	if cfg.Keys == nil {
		return nil, errors.New("auth: Config.Keys is required")
	}
	if users == nil || sessions == nil || tickets == nil {
		return nil, errors.New("auth: the user, session and ticket stores are required")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = DefaultIssuer
	}
	if cfg.Audience == "" {
		cfg.Audience = DefaultAudience
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = DefaultAccessTTL
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	if cfg.TicketTTL == 0 {
		cfg.TicketTTL = DefaultTicketTTL
	}
	if cfg.TicketTTL < MinTicketTTL || cfg.TicketTTL > MaxTicketTTL {
		return nil, fmt.Errorf("auth: --ticket-ttl %s is outside %s to %s", cfg.TicketTTL, MinTicketTTL, MaxTicketTTL)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway {
		return nil, fmt.Errorf("auth: leeway %s is outside 0 to %s", cfg.Leeway, MaxLeeway)
	}
	if cfg.AnonymousTTL <= 0 {
		cfg.AnonymousTTL = DefaultAnonymousTTL
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = DefaultStoreTimeout
	}
	if cfg.SessionCacheTTL < 0 || cfg.SessionCacheTTL > MaxSessionCacheTTL {
		return nil, fmt.Errorf("auth: --session-cache-ttl %s is outside 0 to %s", cfg.SessionCacheTTL, MaxSessionCacheTTL)
	}
	if cfg.LegacyQueryToken && cfg.LegacyQueryTokenUntil.IsZero() {
		return nil, errors.New("auth: --legacy-query-token requires --legacy-query-token-until")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = discardLogger()
	}
	if cfg.Auditor == nil {
		cfg.Auditor = tollgate.NopAuditor{}
	}
	origins, err := NewOrigins(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("--allowed-origins: %w", err)
	}
	h, err := newHasher(cfg.Argon2)
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:      cfg,
		users:    users,
		sessions: sessions,
		tickets:  tickets,
		hasher:   h,
		origins:  origins,
		cookies:  CookieNamesFor(cfg.SecureCookies),
		verified: newTokenCache(),
		log:      cfg.Logger,
		audit:    cfg.Auditor,
		now:      cfg.Now,
	}
	if cfg.SessionCacheTTL > 0 {
		s.cache = newSessionCache(sessions, cfg.SessionCacheTTL, cfg.Now)
		s.sessions = s.cache
	}
	s.keys.Store(cfg.Keys)
	s.access = s.newOwnParser()
	s.anon = s.newOwnParser()
	s.accessKeyfunc = s.ownKeyfunc(typAccess)
	s.anonKeyfunc = s.ownKeyfunc(typAnon)
	// Unknown users cost one verify against this hash, so that login takes
	// the same time and code path whether the user exists or not (API.md,
	// "Errors").
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if s.dummy, err = h.hash(ctx, tollgate.Secret(randomHex(16))); err != nil {
		return nil, fmt.Errorf("auth: computing the dummy password hash: %w", err)
	}
	if cfg.OIDC.enabled() {
		if s.oidc, err = newOIDCVerifier(cfg.OIDC, s.now, cfg.Leeway, s.log); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close stops background work (the OIDC key refresh). It is safe to call
// more than once; the Service must not be used afterwards.
func (s *Service) Close() {
	if s.oidc != nil {
		s.oidc.close()
	}
}

// Origins returns the Origin allowlist the Service enforces.
func (s *Service) Origins() Origins { return s.origins }

// CookieNames returns the cookie names of the Service's secure mode.
func (s *Service) CookieNames() CookieNames { return s.cookies }

// SecureCookies reports whether cookies use the secure mode (Secure
// attribute, __Host-/__Secure- names).
func (s *Service) SecureCookies() bool { return s.cfg.SecureCookies }

// AccessTTL is the configured lifetime of access tokens.
func (s *Service) AccessTTL() time.Duration { return s.cfg.AccessTTL }

// TicketTTL is the configured lifetime of WebSocket tickets.
func (s *Service) TicketTTL() time.Duration { return s.cfg.TicketTTL }

// storeCtx bounds one store call (STYLE.md: every wait has a deadline).
func (s *Service) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.StoreTimeout)
}

// storeError turns a store failure into the contract error a client sees:
// unavailable when the store is down or too slow (fail closed), internal
// otherwise; the cause (which never holds a secret) stays for the log.
func storeError(op string, err error) *tollgate.Error {
	if errors.Is(err, tollgate.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return tollgate.WrapError(tollgate.CodeUnavailable, fmt.Errorf("auth: %s: %w", op, err))
	}
	return tollgate.WrapError(tollgate.CodeInternal, fmt.Errorf("auth: %s: %w", op, err))
}

// record writes an audit event stamped with the Service's clock. Origin is
// client input: it is bounded before it reaches the audit log.
func (s *Service) record(ctx context.Context, e tollgate.AuditEvent) {
	e.TS = s.now()
	if len(e.Origin) > maxOriginLen {
		e.Origin = e.Origin[:maxOriginLen]
	}
	s.audit.Record(ctx, e)
}

// revoke revokes a session and asks every node to close its sockets
// (docs/api.md, "Accounts and tokens": logout, refresh-token reuse).
func (s *Service) revoke(ctx context.Context, sid string, kind tollgate.AuditKind, reason string, c tollgate.ClientInfo, userID string) error {
	now := s.now()
	sctx, cancel := s.storeCtx(ctx)
	err := s.sessions.RevokeSession(sctx, sid, now)
	cancel()
	if err != nil && !errors.Is(err, tollgate.ErrNotFound) {
		return storeError("revoke session", err)
	}
	s.closeSockets(ctx, tollgate.ControlEvent{Kind: tollgate.ControlRevokeSession, Target: sid, Code: tollgate.CodeSessionRevoked, At: now})
	s.record(ctx, tollgate.AuditEvent{Event: kind, User: userID, IP: c.IP, Origin: c.Origin, Reason: reason})
	return nil
}

// closeSockets publishes e. A failure is logged, not returned: the
// revocation itself is already in the store, so every new request is refused;
// only sockets already open wait for the next revalidation.
func (s *Service) closeSockets(ctx context.Context, e tollgate.ControlEvent) {
	if s.cfg.Control == nil {
		return
	}
	cctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if err := s.cfg.Control.PublishControl(cctx, e); err != nil {
		s.log.Error("publishing a control event failed; live sockets close at the next revalidation",
			"kind", string(e.Kind), "error", err)
	}
}

// randomHex returns n random bytes from crypto/rand, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	randRead(b)
	return hex.EncodeToString(b)
}

// randRead fills b from crypto/rand, which never fails (Go 1.24+: it
// crashes the program rather than return predictable bytes).
func randRead(b []byte) { _, _ = rand.Read(b) }

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// CookieNames are the names of tollgate's cookies in one secure-cookie mode
// (docs/api.md, "Accounts and tokens").
type CookieNames struct {
	// Access holds the access token: "__Host-auth_token" when secure, else
	// "auth_token" (Path=/).
	Access string
	// Refresh holds the refresh token: "__Secure-refresh_token" when secure,
	// else "refresh_token" (Path=/api/auth).
	Refresh string
	// Anonymous holds an anonymous session: "anon_session" in both modes.
	Anonymous string
}

// CookieNamesFor returns the cookie names of the given secure mode.
func CookieNamesFor(secure bool) CookieNames {
	if secure {
		return CookieNames{Access: "__Host-auth_token", Refresh: "__Secure-refresh_token", Anonymous: "anon_session"}
	}
	return CookieNames{Access: "auth_token", Refresh: "refresh_token", Anonymous: "anon_session"}
}

// Handshake is the outcome of [Service.AuthenticateHandshake].
type Handshake struct {
	// Principal is who the socket acts for. With Credential first_message
	// and an empty UserID it is pending: the socket must authenticate with
	// its first message.
	Principal tollgate.Principal
	// Header holds extra headers for the 101 response (Deprecation and
	// Sunset for a legacy ?token=); nil when none.
	Header http.Header
}
