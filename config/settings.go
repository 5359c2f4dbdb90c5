package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// setting is one row of the settings table: the one place that knows a
// setting's name, help, parser and bounds. Flags, environment variables,
// file keys, Validate and Usage are all driven by it.
type setting struct {
	name  string // flag name and file key; the env name is envName(name)
	arg   string // placeholder in the help; "" for a boolean
	usage string // help text: what it does (bounds and default are added)
	// bounds is the help's range note, e.g. "5s to 5m"; "" when none.
	bounds string
	// list settings take a comma list (or a YAML sequence) and use parseList.
	list      bool
	parse     func(c *Config, v string) error
	parseList func(c *Config, items []string) error
	// check reports a stored value that is invalid on its own; nil: none.
	check func(c *Config) error
	// show formats the value for the help's default; "" shows no default.
	show func(c *Config) string
}

// envName is the environment variable of a setting: --data-dir -> TOLLGATE_DATA_DIR.
func envName(name string) string {
	return "TOLLGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (s *setting) isBool() bool { return s.arg == "" }

func durationSetting(name, usage string, field func(*Config) *time.Duration, lo, hi time.Duration) setting {
	return setting{
		name: name, arg: "duration", usage: usage,
		bounds: fmtDuration(lo) + " to " + fmtDuration(hi),
		parse: func(c *Config, v string) (err error) {
			*field(c), err = parseDuration(v)
			return err
		},
		check: func(c *Config) error { return inRange(*field(c), lo, hi, fmtDuration) },
		show:  func(c *Config) string { return fmtDuration(*field(c)) },
	}
}

func intSetting(name, usage string, field func(*Config) *int, lo, hi int) setting {
	return setting{
		name: name, arg: "n", usage: usage,
		bounds: strconv.Itoa(lo) + " to " + strconv.Itoa(hi),
		parse: func(c *Config, v string) (err error) {
			*field(c), err = parseInt(v)
			return err
		},
		check: func(c *Config) error { return inRange(*field(c), lo, hi, strconv.Itoa) },
		show:  func(c *Config) string { return strconv.Itoa(*field(c)) },
	}
}

func boolSetting(name, usage string, field func(*Config) *bool) setting {
	return setting{
		name: name, usage: usage,
		parse: func(c *Config, v string) (err error) {
			*field(c), err = parseBool(v)
			return err
		},
		show: func(c *Config) string { return strconv.FormatBool(*field(c)) },
	}
}

func enumSetting(name, usage string, field func(*Config) *string, values ...string) setting {
	return setting{
		name: name, arg: strings.Join(values, "|"), usage: usage,
		parse: func(c *Config, v string) error {
			*field(c) = v
			return oneOf(v, values)
		},
		check: func(c *Config) error { return oneOf(*field(c), values) },
		show:  func(c *Config) string { return *field(c) },
	}
}

// stringSetting is a free-form string; check (may be nil) judges it.
func stringSetting(name, arg, usage string, field func(*Config) *string, check func(string) error) setting {
	s := setting{
		name: name, arg: arg, usage: usage,
		parse: func(c *Config, v string) error { *field(c) = v; return nil },
		show:  func(c *Config) string { return *field(c) },
	}
	if check != nil {
		s.check = func(c *Config) error { return check(*field(c)) }
	}
	return s
}

func secretURLSetting(name, usage string, field func(*Config) *SecretURL, schemes ...string) setting {
	return setting{
		name: name, arg: "url", usage: usage,
		parse: func(c *Config, v string) error { *field(c) = SecretURL(v); return nil },
		check: func(c *Config) error { return checkSecretURL(field(c).Reveal(), schemes...) },
		show:  func(c *Config) string { return field(c).Redacted() },
	}
}

// optional wraps a check so that "" is accepted.
func optional(check func(string) error) func(string) error {
	return func(v string) error {
		if v == "" {
			return nil
		}
		return check(v)
	}
}

func nonEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// eachItem checks every item of a list with check, reporting all failures.
func eachItem[T any](items []T, check func(T) error) error {
	var errs []error
	for _, it := range items {
		errs = append(errs, check(it))
	}
	return errors.Join(errs...)
}

// settings returns the settings table, in the order of the help text. It is
// built on each call: the package keeps no globals.
func settings() []setting {
	httpURL := urlRules{schemes: []string{"http", "https"}}
	oidcURL := urlRules{schemes: []string{"https"}, httpLoopback: true}
	jwksURL := urlRules{schemes: []string{"https"}, httpLoopback: true, allowQuery: true}
	return []setting{
		{
			name: "config", arg: "file",
			usage: "YAML file of settings; its keys are the flag names (data-dir: /var/lib/tollgate). Flags and environment win over it.",
			parse: func(c *Config, v string) error { c.ConfigFile = v; return nil },
			show:  func(c *Config) string { return c.ConfigFile },
		},

		// Listener and deployment.
		stringSetting("addr", "host:port", "Listen address for HTTP and WebSocket.",
			func(c *Config) *string { return &c.Addr }, checkHostPort),
		stringSetting("public-url", "url", "URL browsers use to reach this server (http or https, no query or fragment); https turns secure cookies on.",
			func(c *Config) *string { return &c.PublicURL }, optional(func(v string) error { return checkURL(v, httpURL) })),
		{
			name: "allowed-origins", arg: "origins", list: true,
			usage: "Comma list of exact scheme://host[:port] origins allowed to open sockets and use cookies. " +
				"Default: the origin of --public-url, http://localhost:<port> and http://127.0.0.1:<port> for the port of --addr.",
			parseList: func(c *Config, items []string) error {
				c.AllowedOrigins, c.AllowedOriginsDerived = nil, false
				var errs []error
				for _, it := range items {
					o, err := normalizeOrigin(it)
					errs = append(errs, err)
					c.AllowedOrigins = append(c.AllowedOrigins, o)
				}
				c.AllowedOrigins = dedupe(c.AllowedOrigins)
				return errors.Join(errs...)
			},
			check: func(c *Config) error {
				if len(c.AllowedOrigins) == 0 && !c.AllowedOriginsDerived {
					return errors.New("is empty; leave it unset for the default allowlist")
				}
				return eachItem(c.AllowedOrigins, checkOrigin)
			},
		},
		enumSetting("secure-cookies", "Secure cookies with __Host-/__Secure- names; auto: on when --public-url is https.",
			func(c *Config) *string { return &c.SecureCookies }, SecureCookiesAuto, SecureCookiesTrue, SecureCookiesFalse),
		{
			name: "trusted-proxies", arg: "cidrs", list: true,
			usage: "Comma list of CIDR prefixes (a bare IP is a /32 or /128) whose X-Forwarded-For is believed.",
			parseList: func(c *Config, items []string) error {
				c.TrustedProxies = nil
				var errs []error
				for _, it := range items {
					p, err := parsePrefix(it)
					errs = append(errs, err)
					c.TrustedProxies = append(c.TrustedProxies, p)
				}
				c.TrustedProxies = dedupe(c.TrustedProxies)
				return errors.Join(errs...)
			},
			check: func(c *Config) error { return eachItem(c.TrustedProxies, checkPrefix) },
			show:  func(c *Config) string { return joinPrefixes(c.TrustedProxies) },
		},
		stringSetting("data-dir", "dir", "Directory of the SQLite database, the generated signing key and the audit log.",
			func(c *Config) *string { return &c.DataDir }, nonEmpty),
		secretURLSetting("redis-url", "Redis for tickets, broker, limits and blocks (redis://, rediss:// or unix://); empty: in memory, one node.",
			func(c *Config) *SecretURL { return &c.RedisURL }, "redis", "rediss", "unix"),
		stringSetting("redis-prefix", "prefix", "Prefix of every Redis key and channel; the nodes of one cluster share it.",
			func(c *Config) *string { return &c.RedisPrefix }, checkRedisPrefix),
		secretURLSetting("postgres-url", "PostgreSQL for users, sessions and messages (postgres:// or postgresql://); empty: SQLite in --data-dir.",
			func(c *Config) *SecretURL { return &c.PostgresURL }, "postgres", "postgresql"),
		stringSetting("metrics-addr", "host:port", "Separate listener for /metrics and pprof; empty: /metrics on the main listener, no pprof.",
			func(c *Config) *string { return &c.MetricsAddr }, optional(checkHostPort)),
		stringSetting("server", "url", "Base URL of a running server, for CLI commands that call its admin API. Default: http:// and --addr.",
			func(c *Config) *string { return &c.Server }, optional(func(v string) error { return checkURL(v, httpURL) })),

		// Logs and audit.
		enumSetting("log-format", "Log line format.",
			func(c *Config) *string { return &c.LogFormat }, LogFormatText, LogFormatJSON),
		{
			name: "log-level", arg: "debug|info|warn|error", usage: "Minimum level logged.",
			parse: func(c *Config, v string) error {
				levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
				l, ok := levels[v]
				if !ok {
					return fmt.Errorf("%q is not one of debug, info, warn, error", v)
				}
				c.LogLevel = l
				return nil
			},
			check: func(c *Config) error {
				switch c.LogLevel {
				case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
					return nil
				}
				return fmt.Errorf("%s is not one of debug, info, warn, error", c.LogLevel)
			},
			show: func(c *Config) string { return strings.ToLower(c.LogLevel.String()) },
		},
		boolSetting("audit-stdout", "Also write audit lines to stdout.",
			func(c *Config) *bool { return &c.AuditStdout }),
		enumSetting("audit-fsync", "When the audit log is synced to disk.",
			func(c *Config) *string { return &c.AuditFsync }, AuditFsyncAlways, AuditFsyncInterval, AuditFsyncNever),

		// Accounts and credentials.
		enumSetting("registration", "Whether POST /api/auth/register creates accounts.",
			func(c *Config) *string { return &c.Registration }, RegistrationOpen, RegistrationClosed),
		boolSetting("anonymous", "Allow anonymous sockets (anon_session cookie) in --anonymous-rooms.",
			func(c *Config) *bool { return &c.Anonymous }),
		{
			name: "anonymous-rooms", arg: "rooms", list: true,
			usage: "Comma list of the rooms anonymous sockets may join.",
			parseList: func(c *Config, items []string) error {
				c.AnonymousRooms = dedupe(items)
				return eachItem(c.AnonymousRooms, checkRoom)
			},
			check: func(c *Config) error { return eachItem(c.AnonymousRooms, checkRoom) },
			show:  func(c *Config) string { return strings.Join(c.AnonymousRooms, ",") },
		},
		stringSetting("jwt-secret-file", "file", "File holding the HS256 key (at least 32 bytes after trimming whitespace); empty: generated into <data-dir>/jwt.key.",
			func(c *Config) *string { return &c.JWTSecretFile }, nil),
		stringSetting("admin-token-file", "file", "File holding the admin API token.",
			func(c *Config) *string { return &c.AdminTokenFile }, nil),
		durationSetting("access-token-ttl", "Lifetime of access tokens (at most --refresh-token-ttl).",
			func(c *Config) *time.Duration { return &c.AccessTokenTTL }, 10*time.Second, 24*time.Hour),
		durationSetting("refresh-token-ttl", "Lifetime of refresh tokens.",
			func(c *Config) *time.Duration { return &c.RefreshTokenTTL }, time.Minute, 8760*time.Hour),
		durationSetting("ticket-ttl", "Lifetime of one-time WebSocket tickets.",
			func(c *Config) *time.Duration { return &c.TicketTTL }, 5*time.Second, 5*time.Minute),
		durationSetting("revalidate-interval", "How often live sockets' users and sessions are checked again.",
			func(c *Config) *time.Duration { return &c.RevalidateInterval }, 10*time.Second, 24*time.Hour),
		durationSetting("session-cache-ttl", "How long a live session read for a token or ticket check is remembered; revocations drop it at once (0s: no cache).",
			func(c *Config) *time.Duration { return &c.SessionCacheTTL }, 0, 10*time.Second),
		boolSetting("legacy-query-token", "Accept ?token=<JWT> on GET /ws (deprecated; requires --legacy-query-token-until).",
			func(c *Config) *bool { return &c.LegacyQueryToken }),
		{
			name: "legacy-query-token-until", arg: "date",
			usage: "Date (YYYY-MM-DD, through the end of that day UTC, or RFC 3339) after which ?token= is refused.",
			parse: func(c *Config, v string) (err error) {
				c.LegacyQueryTokenUntil, err = parseDate(v)
				return err
			},
			show: func(c *Config) string { return fmtDate(c.LegacyQueryTokenUntil) },
		},
		boolSetting("first-message-auth", "Let sockets without a credential open and authenticate with their first message.",
			func(c *Config) *bool { return &c.FirstMessageAuth }),
		durationSetting("first-message-timeout", "Time a socket has to authenticate with its first message.",
			func(c *Config) *time.Duration { return &c.FirstMessageTimeout }, time.Second, time.Minute),
		intSetting("max-unauthenticated-per-ip", "Unauthenticated sockets per IP.",
			func(c *Config) *int { return &c.MaxUnauthenticatedPerIP }, 1, 10000),
		intSetting("max-unauthenticated", "Unauthenticated sockets in total.",
			func(c *Config) *int { return &c.MaxUnauthenticated }, 1, 1000000),
		stringSetting("oidc-issuer", "url", "Issuer of external OIDC tokens to accept (https; http only for localhost). Requires --oidc-audience.",
			func(c *Config) *string { return &c.OIDCIssuer }, optional(func(v string) error { return checkURL(v, oidcURL) })),
		stringSetting("jwks-url", "url", "JWKS of the external issuer (https; http only for localhost); empty: discovered. Requires --oidc-audience.",
			func(c *Config) *string { return &c.JWKSURL }, optional(func(v string) error { return checkURL(v, jwksURL) })),
		stringSetting("oidc-audience", "aud", "Audience external tokens must carry.",
			func(c *Config) *string { return &c.OIDCAudience }, nil),
		stringSetting("oidc-name-claim", "claim", "Claim of external tokens that holds the display name.",
			func(c *Config) *string { return &c.OIDCNameClaim }, nonEmpty),

		// Connections.
		intSetting("max-message-bytes", "Largest WebSocket frame read, in bytes; larger ones close the socket 1009.",
			func(c *Config) *int { return &c.MaxMessageBytes }, 1024, 1048576),
		intSetting("send-queue", "Frames queued for one socket before a slow consumer is cut.",
			func(c *Config) *int { return &c.SendQueue }, 8, 65536),
		intSetting("max-sockets-per-user", "Concurrent sockets per user.",
			func(c *Config) *int { return &c.MaxSocketsPerUser }, 1, 10000),
		intSetting("max-sockets-per-ip", "Concurrent sockets per IP.",
			func(c *Config) *int { return &c.MaxSocketsPerIP }, 1, 100000),
		intSetting("max-sockets", "Concurrent sockets on this node.",
			func(c *Config) *int { return &c.MaxSockets }, 1, 10000000),
		durationSetting("read-header-timeout", "Time to read a request's headers.",
			func(c *Config) *time.Duration { return &c.ReadHeaderTimeout }, time.Second, 2*time.Minute),
		durationSetting("idle-timeout", "A socket silent this long (pongs included) is closed.",
			func(c *Config) *time.Duration { return &c.IdleTimeout }, 5*time.Second, time.Hour),
		durationSetting("ping-interval", "How often sockets are pinged; must be below --idle-timeout.",
			func(c *Config) *time.Duration { return &c.PingInterval }, time.Second, time.Hour),
		durationSetting("write-timeout", "Deadline of each write to a socket.",
			func(c *Config) *time.Duration { return &c.WriteTimeout }, time.Second, 2*time.Minute),
		durationSetting("shutdown-timeout", "Deadline of the graceful shutdown on SIGTERM.",
			func(c *Config) *time.Duration { return &c.ShutdownTimeout }, time.Second, 5*time.Minute),
		durationSetting("stomp-heartbeat", "STOMP heart-beat period offered and expected; a peer silent for twice the period is cut.",
			func(c *Config) *time.Duration { return &c.StompHeartbeat }, time.Second, 5*time.Minute),
		enumSetting("stomp-send-token", "required: every STOMP SEND carries a same-user JWT in Authorization.",
			func(c *Config) *string { return &c.StompSendToken }, StompSendTokenOptional, StompSendTokenRequired),

		// Rate limits and blocks.
		intSetting("publish-rate", "Messages a user may publish per --publish-window.",
			func(c *Config) *int { return &c.PublishRate }, 1, 10000),
		durationSetting("publish-window", "Window of --publish-rate and --anon-publish-rate.",
			func(c *Config) *time.Duration { return &c.PublishWindow }, time.Second, 24*time.Hour),
		intSetting("anon-publish-rate", "Messages an anonymous IP may publish per --publish-window.",
			func(c *Config) *int { return &c.AnonPublishRate }, 1, 10000),
		intSetting("block-violations", "Rate-limit violations within --block-window that block the user for --block-duration.",
			func(c *Config) *int { return &c.BlockViolations }, 1, 1000),
		durationSetting("block-window", "Window of --block-violations and --failed-auth-block.",
			func(c *Config) *time.Duration { return &c.BlockWindow }, time.Second, 24*time.Hour),
		durationSetting("block-duration", "How long a block lasts.",
			func(c *Config) *time.Duration { return &c.BlockDuration }, time.Second, 720*time.Hour),
		intSetting("failed-auth-block", "Failed logins or handshakes from one IP within --block-window that block the IP.",
			func(c *Config) *int { return &c.FailedAuthBlock }, 1, 100000),
		intSetting("login-rate", "Login attempts per IP, and per username, per --login-window.",
			func(c *Config) *int { return &c.LoginRate }, 1, 10000),
		durationSetting("login-window", "Window of --login-rate.",
			func(c *Config) *time.Duration { return &c.LoginWindow }, time.Second, 24*time.Hour),
		intSetting("handshake-rate", "WebSocket handshakes per IP per --handshake-window.",
			func(c *Config) *int { return &c.HandshakeRate }, 1, 100000),
		durationSetting("handshake-window", "Window of --handshake-rate.",
			func(c *Config) *time.Duration { return &c.HandshakeWindow }, time.Second, 24*time.Hour),
	}
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
