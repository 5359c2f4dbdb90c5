package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Values of the enumerated settings.
const (
	// SecureCookiesAuto turns secure cookies on when --public-url is https.
	SecureCookiesAuto  = "auto"
	SecureCookiesTrue  = "true"
	SecureCookiesFalse = "false"

	RegistrationOpen   = "open"
	RegistrationClosed = "closed"

	LogFormatText = "text"
	LogFormatJSON = "json"

	// AuditFsyncAlways syncs the audit log after every line, AuditFsyncInterval
	// periodically, AuditFsyncNever leaves it to the operating system.
	AuditFsyncAlways   = "always"
	AuditFsyncInterval = "interval"
	AuditFsyncNever    = "never"

	StompSendTokenOptional = "optional"
	StompSendTokenRequired = "required"
)

// Config is every setting of `tollgate serve`, resolved and validated. Each
// field's comment gives its flag, its default and its bounds; the environment
// variable is TOLLGATE_ plus the flag name in upper snake case, and the
// config-file key is the flag name.
//
// A Config returned by [Load] or [Defaults] passes [Config.Validate]. The zero
// Config does not: start from Defaults when building one by hand. A Config is
// a value; it is safe to share read-only between goroutines. Printing or
// logging it never shows a store password (see [SecretURL]).
type Config struct {
	// ConfigFile is the YAML file the settings were read from (--config,
	// TOLLGATE_CONFIG); "" (the default) when there was none.
	ConfigFile string

	// --- Listener and deployment ---

	// Addr is the listen address of the HTTP and WebSocket server, host:port
	// (--addr, default "127.0.0.1:8080"). An empty host listens on every
	// interface; port 0 picks a free port.
	Addr string
	// DataDir holds the SQLite database, the generated signing key and the
	// audit log (--data-dir, default "./tollgate-data"; never empty).
	DataDir string
	// PublicURL is the URL browsers use to reach the server (--public-url,
	// default "" = unknown). When set: an absolute http or https URL without
	// user info, query or fragment; a path is allowed.
	PublicURL string
	// AllowedOrigins is the Origin allowlist, exact scheme://host[:port]
	// entries, lower case and without the scheme's default port, as browsers
	// send them (--allowed-origins, comma list). The default is derived: the
	// origin of PublicURL, plus http://localhost:<port> and
	// http://127.0.0.1:<port> for the port of Addr (none for port 0). Given
	// explicitly, the list must not be empty. "null" and wildcards are never
	// accepted.
	AllowedOrigins []string
	// AllowedOriginsDerived is true when AllowedOrigins is the derived default
	// rather than given. With port 0 in Addr the caller recomputes it with
	// [DefaultAllowedOrigins] once the listener has its real port.
	AllowedOriginsDerived bool
	// SecureCookies is the --secure-cookies setting as given: "auto" (the
	// default), "true" or "false". Read CookieSecure for the decision.
	SecureCookies string
	// CookieSecure is the resolved decision (derived, not a flag): cookies get
	// the Secure attribute and the __Host-/__Secure- name prefixes. It is
	// true when SecureCookies is "true", or "auto" and PublicURL is https.
	CookieSecure bool
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (--trusted-proxies, CIDR list; a bare IP is a /32 or /128; default none).
	// Prefixes are stored masked.
	TrustedProxies []netip.Prefix
	// MetricsAddr is a separate host:port listener for /metrics and pprof
	// (--metrics-addr, default "" = /metrics on the main listener and no
	// pprof). It must differ from Addr.
	MetricsAddr string
	// Server is the base URL of a running server for the CLI commands that
	// call its admin API (--server, an http or https URL). The default is
	// derived from Addr: "http://" + Addr, with an empty or unspecified host
	// (0.0.0.0, ::) replaced by 127.0.0.1.
	Server string

	// --- Stores ---

	// RedisURL selects Redis for tickets, the broker, limits and blocks
	// (--redis-url, redis://, rediss:// or unix://; default "" = in memory).
	// It may hold a password: use Reveal only to connect.
	RedisURL SecretURL
	// RedisPrefix is put before every Redis key and channel, so that several
	// clusters can share one Redis; every node of a cluster uses the same
	// (--redis-prefix, default "tollgate:", 1 to 64 of A-Z a-z 0-9 _ . : -).
	RedisPrefix string
	// PostgresURL selects PostgreSQL instead of SQLite (--postgres-url,
	// postgres:// or postgresql://; default "" = SQLite in DataDir). It may
	// hold a password: use Reveal only to connect.
	PostgresURL SecretURL

	// --- Logs and audit ---

	// LogFormat is "text" (the default) or "json" (--log-format).
	LogFormat string
	// LogLevel is the minimum level logged (--log-level debug, info, warn or
	// error; default info).
	LogLevel slog.Level
	// AuditStdout also writes audit lines to stdout (--audit-stdout, default false).
	AuditStdout bool
	// AuditFsync says when the audit log is synced to disk: "always",
	// "interval" (the default) or "never" (--audit-fsync).
	AuditFsync string

	// --- Accounts and credentials ---

	// Registration is "open" (the default) or "closed" (--registration):
	// whether POST /api/auth/register creates accounts.
	Registration string
	// Anonymous allows anonymous sockets through the anon_session cookie
	// (--anonymous, default false).
	Anonymous bool
	// AnonymousRooms are the only rooms anonymous sockets may join
	// (--anonymous-rooms, comma list of valid room names, default ["lobby"];
	// not empty when Anonymous is on).
	AnonymousRooms []string
	// JWTSecretFile holds the HS256 key (--jwt-secret-file, default "" = a
	// key generated into DataDir/jwt.key). Config does not read the file.
	JWTSecretFile string
	// AdminTokenFile holds the admin API token (--admin-token-file, default "").
	// Config does not read the file.
	AdminTokenFile string
	// AccessTokenTTL is the lifetime of access tokens (--access-token-ttl,
	// default 15m, 10s to 24h, at most RefreshTokenTTL).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of a login session's refresh tokens
	// (--refresh-token-ttl, default 720h, 1m to 8760h).
	RefreshTokenTTL time.Duration
	// TicketTTL is the lifetime of a WebSocket ticket (--ticket-ttl, default
	// 30s, 5s to 5m).
	TicketTTL time.Duration
	// RevalidateInterval is how often live sockets' users and sessions are
	// checked again in the store (--revalidate-interval, default 5m, 10s to 24h).
	RevalidateInterval time.Duration
	// SessionCacheTTL is how long a live login session read for a token or
	// ticket check is remembered (--session-cache-ttl, default 1s, 0s to
	// 10s; 0s: every check reads the store). Revocations drop it at once on
	// the node that makes them and on every node the control event reaches.
	SessionCacheTTL time.Duration
	// LegacyQueryToken accepts an access JWT in ?token= on GET /ws
	// (--legacy-query-token, default false). It requires LegacyQueryTokenUntil.
	LegacyQueryToken bool
	// LegacyQueryTokenUntil is the instant from which ?token= is refused
	// (--legacy-query-token-until, YYYY-MM-DD or RFC 3339; default none). A bare
	// date means the end of that day in UTC: ?token= works through that date.
	// Required when LegacyQueryToken is on.
	LegacyQueryTokenUntil time.Time
	// FirstMessageAuth lets a socket without a credential open and
	// authenticate with its first message (--first-message-auth, default false).
	FirstMessageAuth bool
	// FirstMessageTimeout is how long such a socket has to authenticate
	// (--first-message-timeout, default 5s, 1s to 60s).
	FirstMessageTimeout time.Duration
	// MaxUnauthenticatedPerIP caps not yet authenticated sockets per IP
	// (--max-unauthenticated-per-ip, default 16, 1 to 10000).
	MaxUnauthenticatedPerIP int
	// MaxUnauthenticated caps not yet authenticated sockets in total
	// (--max-unauthenticated, default 1024, 1 to 1000000).
	MaxUnauthenticated int
	// OIDCIssuer is an external identity provider whose JWTs are accepted
	// (--oidc-issuer, https URL, http only for localhost/127.0.0.1/::1; default
	// "" = none). Requires OIDCAudience.
	OIDCIssuer string
	// JWKSURL is where the provider's keys are fetched (--jwks-url, same
	// scheme rule as OIDCIssuer; default "" = discovered from the issuer).
	// Requires OIDCAudience.
	JWKSURL string
	// OIDCAudience is the aud the provider's tokens must carry
	// (--oidc-audience, default ""; required with OIDCIssuer or JWKSURL).
	OIDCAudience string
	// OIDCNameClaim is the claim that holds the display name
	// (--oidc-name-claim, default "preferred_username", never empty).
	OIDCNameClaim string

	// --- Connections ---

	// MaxMessageBytes is the largest WebSocket frame read; larger ones close
	// the socket 1009 (--max-message-bytes, default 65536, 1024 to 1048576).
	MaxMessageBytes int
	// SendQueue is how many frames may wait for a slow socket before it is
	// cut (--send-queue, default 256, 8 to 65536).
	SendQueue int
	// MaxSocketsPerUser caps a user's concurrent sockets
	// (--max-sockets-per-user, default 32, 1 to 10000).
	MaxSocketsPerUser int
	// MaxSocketsPerIP caps an IP's concurrent sockets (--max-sockets-per-ip,
	// default 512, 1 to 100000).
	MaxSocketsPerIP int
	// MaxSockets caps the node's concurrent sockets (--max-sockets, default
	// 100000, 1 to 10000000).
	MaxSockets int
	// ReadHeaderTimeout bounds reading request headers
	// (--read-header-timeout, default 10s, 1s to 2m).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes a socket that has been silent this long, pongs
	// included (--idle-timeout, default 60s, 5s to 1h).
	IdleTimeout time.Duration
	// PingInterval is how often the server pings a socket (--ping-interval,
	// default 25s, 1s to 1h, and below IdleTimeout).
	PingInterval time.Duration
	// WriteTimeout bounds each write to a socket (--write-timeout, default
	// 10s, 1s to 2m).
	WriteTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown on SIGTERM
	// (--shutdown-timeout, default 10s, 1s to 5m).
	ShutdownTimeout time.Duration
	// StompHeartbeat is the STOMP heart-beat period offered and expected
	// (--stomp-heartbeat, default 10s, 1s to 5m; heart-beats cannot be off).
	StompHeartbeat time.Duration
	// StompSendToken is "optional" (the default) or "required"
	// (--stomp-send-token): whether every STOMP SEND carries a same-user JWT.
	StompSendToken string

	// --- Rate limits and blocks ---

	// PublishRate is how many messages a user may publish per PublishWindow
	// (--publish-rate, default 10, 1 to 10000).
	PublishRate int
	// PublishWindow is the window of PublishRate and AnonPublishRate
	// (--publish-window, default 60s, 1s to 24h).
	PublishWindow time.Duration
	// AnonPublishRate is PublishRate for anonymous sockets, counted per IP
	// (--anon-publish-rate, default 5, 1 to 10000).
	AnonPublishRate int
	// BlockViolations rate-limit violations within BlockWindow block the user
	// (and, for anonymous sockets, the IP) for BlockDuration
	// (--block-violations, default 5, 1 to 1000).
	BlockViolations int
	// BlockWindow is the window of BlockViolations and FailedAuthBlock
	// (--block-window, default 10m, 1s to 24h).
	BlockWindow time.Duration
	// BlockDuration is how long a block lasts (--block-duration, default 1h,
	// 1s to 720h).
	BlockDuration time.Duration
	// FailedAuthBlock failed logins or handshakes from one IP within
	// BlockWindow block the IP for BlockDuration (--failed-auth-block, default
	// 20, 1 to 100000).
	FailedAuthBlock int
	// LoginRate is how many login attempts an IP (and a username) may make per
	// LoginWindow (--login-rate, default 10, 1 to 10000).
	LoginRate int
	// LoginWindow is the window of LoginRate (--login-window, default 1m, 1s to 24h).
	LoginWindow time.Duration
	// HandshakeRate is how many WebSocket handshakes an IP may make per
	// HandshakeWindow (--handshake-rate, default 60, 1 to 100000).
	HandshakeRate int
	// HandshakeWindow is the window of HandshakeRate (--handshake-window,
	// default 1m, 1s to 24h).
	HandshakeWindow time.Duration
}

// Defaults returns the configuration of `tollgate serve` with no flags, no
// environment and no file, derived values included. It passes Validate.
func Defaults() Config {
	c := base()
	derive(&c, nil)
	return c
}

// base is Defaults without the derived values.
func base() Config {
	return Config{
		Addr:                    "127.0.0.1:8080",
		RedisPrefix:             "tollgate:",
		DataDir:                 "./tollgate-data",
		SecureCookies:           SecureCookiesAuto,
		LogFormat:               LogFormatText,
		LogLevel:                slog.LevelInfo,
		AuditFsync:              AuditFsyncInterval,
		Registration:            RegistrationOpen,
		AnonymousRooms:          []string{"lobby"},
		AccessTokenTTL:          15 * time.Minute,
		RefreshTokenTTL:         720 * time.Hour,
		TicketTTL:               30 * time.Second,
		RevalidateInterval:      5 * time.Minute,
		SessionCacheTTL:         time.Second,
		FirstMessageTimeout:     5 * time.Second,
		MaxUnauthenticatedPerIP: 16,
		MaxUnauthenticated:      1024,
		OIDCNameClaim:           "preferred_username",
		MaxMessageBytes:         65536,
		SendQueue:               256,
		MaxSocketsPerUser:       32,
		MaxSocketsPerIP:         512,
		MaxSockets:              100000,
		ReadHeaderTimeout:       10 * time.Second,
		IdleTimeout:             60 * time.Second,
		PingInterval:            25 * time.Second,
		WriteTimeout:            10 * time.Second,
		ShutdownTimeout:         10 * time.Second,
		StompHeartbeat:          10 * time.Second,
		StompSendToken:          StompSendTokenOptional,
		PublishRate:             10,
		PublishWindow:           60 * time.Second,
		AnonPublishRate:         5,
		BlockViolations:         5,
		BlockWindow:             10 * time.Minute,
		BlockDuration:           time.Hour,
		FailedAuthBlock:         20,
		LoginRate:               10,
		LoginWindow:             time.Minute,
		HandshakeRate:           60,
		HandshakeWindow:         time.Minute,
	}
}

// derive fills the derived values that given (setting name -> source) does
// not name. It never fails: an invalid input is left for validate to report,
// and contributes nothing here.
func derive(c *Config, given map[string]string) {
	if _, ok := given["allowed-origins"]; !ok {
		c.AllowedOrigins = DefaultAllowedOrigins(c.PublicURL, c.Addr)
		c.AllowedOriginsDerived = true
	}
	if _, ok := given["server"]; !ok {
		c.Server = defaultServer(c.Addr)
	}
	c.CookieSecure = c.SecureCookies == SecureCookiesTrue ||
		c.SecureCookies == SecureCookiesAuto && isHTTPS(c.PublicURL)
}

func isHTTPS(publicURL string) bool {
	u, err := url.Parse(publicURL)
	return err == nil && strings.EqualFold(u.Scheme, "https")
}

// DefaultAllowedOrigins returns the default Origin allowlist for a public
// URL and a listen address (docs/api.md, "Opening a socket"): the origin of
// publicURL (when it is a valid http or https URL), then
// http://localhost:<port> and http://127.0.0.1:<port> for the port of addr
// (when addr is host:port with a port other than 0).
func DefaultAllowedOrigins(publicURL, addr string) []string {
	var out []string
	if u, err := url.Parse(publicURL); err == nil && publicURL != "" && u.Host != "" {
		if o, err := normalizeOrigin(u.Scheme + "://" + u.Host); err == nil {
			out = append(out, o)
		}
	}
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "0" && checkHostPort(addr) == nil {
		for _, h := range []string{"localhost", "127.0.0.1"} {
			if o, err := normalizeOrigin("http://" + h + ":" + port); err == nil {
				out = append(out, o)
			}
		}
	}
	return dedupe(out)
}

// defaultServer is the --server default for addr: "http://" + addr, with an
// empty or unspecified host replaced by 127.0.0.1; "" for a malformed addr.
func defaultServer(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if a, err := netip.ParseAddr(host); host == "" || err == nil && a.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Validate reports every setting that is out of bounds, malformed or in
// conflict with another, each as an error naming the setting by its flag
// ("--ticket-ttl: 2s is below the minimum 5s"), joined with errors.Join.
// It does not recompute derived values.
func (c Config) Validate() error {
	return errors.Join(c.validate(settings(), func(name string) string { return "--" + name }, nil)...)
}

// validate is Validate naming each setting with label(name), so that Load
// can name the source a value came from. Settings in failed did not parse:
// their checks, and the checks across settings, are skipped.
func (c *Config) validate(table []setting, label func(name string) string, failed map[string]bool) []error {
	var errs []error
	for _, s := range table {
		if s.check == nil || failed[s.name] {
			continue
		}
		errs = append(errs, labelled(label(s.name), s.check(c))...)
	}
	if len(failed) > 0 {
		return errs
	}
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", label(name), fmt.Sprintf(format, args...)))
	}
	if c.PingInterval >= c.IdleTimeout {
		bad("ping-interval", "%s must be below --idle-timeout (%s), or idle sockets are cut before they are pinged",
			fmtDuration(c.PingInterval), fmtDuration(c.IdleTimeout))
	}
	if c.AccessTokenTTL > c.RefreshTokenTTL {
		bad("access-token-ttl", "%s is longer than --refresh-token-ttl (%s)",
			fmtDuration(c.AccessTokenTTL), fmtDuration(c.RefreshTokenTTL))
	}
	if c.LegacyQueryToken && c.LegacyQueryTokenUntil.IsZero() {
		bad("legacy-query-token", "requires --legacy-query-token-until (YYYY-MM-DD or RFC 3339), the date after which ?token= is refused")
	}
	if (c.OIDCIssuer != "" || c.JWKSURL != "") && c.OIDCAudience == "" {
		bad("oidc-audience", "is required with --oidc-issuer or --jwks-url")
	}
	if c.Anonymous && len(c.AnonymousRooms) == 0 {
		bad("anonymous-rooms", "is empty, but --anonymous is on")
	}
	if c.MetricsAddr != "" && c.MetricsAddr == c.Addr {
		bad("metrics-addr", "%q is also --addr; use another port or leave it empty", c.MetricsAddr)
	}
	return errs
}
