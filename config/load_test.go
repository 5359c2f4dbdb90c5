package config_test

import (
	"errors"
	"flag"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate/config"
)

// load runs LoadWith with an environment and files held in maps.
func load(args []string, env, files map[string]string) (config.Config, error) {
	return config.LoadWith(args, func(k string) string { return env[k] }, func(name string) ([]byte, error) {
		if data, ok := files[name]; ok {
			return []byte(data), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	})
}

func mustLoad(t *testing.T, args []string, env, files map[string]string) config.Config {
	t.Helper()
	c, err := load(args, env, files)
	if err != nil {
		t.Fatalf("load(%q): %v", args, err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("a loaded config does not validate: %v", err)
	}
	return c
}

// wantErr checks that err is non-nil and holds every one of parts.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q\ndoes not contain %q", err, p)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	d := config.Defaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("Defaults do not validate: %v", err)
	}
	got := mustLoad(t, nil, nil, nil)
	if !reflect.DeepEqual(got, d) {
		t.Errorf("Load with nothing = %+v\nDefaults = %+v", got, d)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"addr", d.Addr, "127.0.0.1:8080"},
		{"data-dir", d.DataDir, "./tollgate-data"},
		{"allowed-origins", d.AllowedOrigins, []string{"http://localhost:8080", "http://127.0.0.1:8080"}},
		{"derived", d.AllowedOriginsDerived, true},
		{"secure-cookies", d.SecureCookies, "auto"},
		{"cookie secure", d.CookieSecure, false},
		{"server", d.Server, "http://127.0.0.1:8080"},
		{"registration", d.Registration, "open"},
		{"anonymous", d.Anonymous, false},
		{"anonymous-rooms", d.AnonymousRooms, []string{"lobby"}},
		{"log-format", d.LogFormat, "text"},
		{"log-level", d.LogLevel.String(), "INFO"},
		{"access-token-ttl", d.AccessTokenTTL, 15 * time.Minute},
		{"refresh-token-ttl", d.RefreshTokenTTL, 720 * time.Hour},
		{"ticket-ttl", d.TicketTTL, 30 * time.Second},
		{"max-message-bytes", d.MaxMessageBytes, 65536},
		{"max-sockets-per-user", d.MaxSocketsPerUser, 32},
		{"max-sockets-per-ip", d.MaxSocketsPerIP, 512},
		{"max-sockets", d.MaxSockets, 100000},
		{"read-header-timeout", d.ReadHeaderTimeout, 10 * time.Second},
		{"idle-timeout", d.IdleTimeout, 60 * time.Second},
		{"ping-interval", d.PingInterval, 25 * time.Second},
		{"write-timeout", d.WriteTimeout, 10 * time.Second},
		{"shutdown-timeout", d.ShutdownTimeout, 10 * time.Second},
		{"send-queue", d.SendQueue, 256},
		{"first-message-timeout", d.FirstMessageTimeout, 5 * time.Second},
		{"max-unauthenticated-per-ip", d.MaxUnauthenticatedPerIP, 16},
		{"max-unauthenticated", d.MaxUnauthenticated, 1024},
		{"oidc-name-claim", d.OIDCNameClaim, "preferred_username"},
		{"revalidate-interval", d.RevalidateInterval, 5 * time.Minute},
		{"session-cache-ttl", d.SessionCacheTTL, time.Second},
		{"publish-rate", d.PublishRate, 10},
		{"publish-window", d.PublishWindow, 60 * time.Second},
		{"anon-publish-rate", d.AnonPublishRate, 5},
		{"block-violations", d.BlockViolations, 5},
		{"block-window", d.BlockWindow, 10 * time.Minute},
		{"block-duration", d.BlockDuration, time.Hour},
		{"login-rate", d.LoginRate, 10},
		{"login-window", d.LoginWindow, time.Minute},
		{"handshake-rate", d.HandshakeRate, 60},
		{"handshake-window", d.HandshakeWindow, time.Minute},
		{"failed-auth-block", d.FailedAuthBlock, 20},
		{"audit-fsync", d.AuditFsync, "interval"},
		{"stomp-heartbeat", d.StompHeartbeat, 10 * time.Second},
		{"stomp-send-token", d.StompSendToken, "optional"},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("default %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	const file = "t.yaml"
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		yaml  string
		check func(c config.Config) any
		want  any
	}{
		{"default", nil, nil, "", ticket, 30 * time.Second},
		{"file beats default", nil, nil, "ticket-ttl: 40s", ticket, 40 * time.Second},
		{"env beats file", nil, map[string]string{"TOLLGATE_TICKET_TTL": "50s"}, "ticket-ttl: 40s", ticket, 50 * time.Second},
		{"flag beats env and file", []string{"--ticket-ttl=60s"}, map[string]string{"TOLLGATE_TICKET_TTL": "50s"}, "ticket-ttl: 40s", ticket, 60 * time.Second},
		{"flag beats default", []string{"--ticket-ttl", "1m"}, nil, "", ticket, time.Minute},
		{"single dash flag", []string{"-ticket-ttl=1m"}, nil, "", ticket, time.Minute},
		{"empty env is unset", nil, map[string]string{"TOLLGATE_TICKET_TTL": ""}, "ticket-ttl: 40s", ticket, 40 * time.Second},
		{"only the winner is parsed", []string{"--ticket-ttl=60s"}, map[string]string{"TOLLGATE_TICKET_TTL": "bogus"}, "ticket-ttl: 1s", ticket, 60 * time.Second},
		{"bool flag beats env", []string{"--anonymous=false"}, map[string]string{"TOLLGATE_ANONYMOUS": "1"}, "anonymous: true", anon, false},
		{"bool env beats file", nil, map[string]string{"TOLLGATE_ANONYMOUS": "0"}, "anonymous: true", anon, false},
		{"bool file", nil, nil, "anonymous: true", anon, true},
		{"bool bare flag", []string{"--anonymous"}, map[string]string{"TOLLGATE_ANONYMOUS": "false"}, "", anon, true},
		{"list flag beats env", []string{"--anonymous-rooms=a,b"}, map[string]string{"TOLLGATE_ANONYMOUS_ROOMS": "c"}, "anonymous-rooms: [d]", rooms, []string{"a", "b"}},
		{"list env beats file", nil, map[string]string{"TOLLGATE_ANONYMOUS_ROOMS": "c, e"}, "anonymous-rooms: [d]", rooms, []string{"c", "e"}},
		{"list file sequence", nil, nil, "anonymous-rooms: [d, f]", rooms, []string{"d", "f"}},
		{"list file comma string", nil, nil, "anonymous-rooms: d,f", rooms, []string{"d", "f"}},
		{"list flag repeated", []string{"--anonymous-rooms=a", "--anonymous-rooms", "b,c"}, nil, "", rooms, []string{"a", "b", "c"}},
		{"list deduplicated", []string{"--anonymous-rooms=a,b,a"}, nil, "", rooms, []string{"a", "b"}},
		{"last scalar flag wins", []string{"--ticket-ttl=10s", "--ticket-ttl=20s"}, nil, "", ticket, 20 * time.Second},
		{"file data-dir", nil, nil, "data-dir: /var/lib/tollgate", dataDir, "/var/lib/tollgate"},
		{"env data-dir", nil, map[string]string{"TOLLGATE_DATA_DIR": "/srv/tg"}, "data-dir: /var/lib/tollgate", dataDir, "/srv/tg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			files := map[string]string{}
			if tc.yaml != "" {
				args = append([]string{"--config", file}, args...)
				files[file] = tc.yaml
			}
			c := mustLoad(t, args, tc.env, files)
			if got := tc.check(c); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func ticket(c config.Config) any  { return c.TicketTTL }
func anon(c config.Config) any    { return c.Anonymous }
func rooms(c config.Config) any   { return c.AnonymousRooms }
func dataDir(c config.Config) any { return c.DataDir }

func TestConfigFileSource(t *testing.T) {
	t.Parallel()
	files := map[string]string{"a.yaml": "ticket-ttl: 11s", "b.yaml": "ticket-ttl: 12s"}
	c := mustLoad(t, nil, map[string]string{"TOLLGATE_CONFIG": "a.yaml"}, files)
	if c.TicketTTL != 11*time.Second || c.ConfigFile != "a.yaml" {
		t.Errorf("TOLLGATE_CONFIG: ticket %v, file %q", c.TicketTTL, c.ConfigFile)
	}
	c = mustLoad(t, []string{"--config=b.yaml"}, map[string]string{"TOLLGATE_CONFIG": "a.yaml"}, files)
	if c.TicketTTL != 12*time.Second || c.ConfigFile != "b.yaml" {
		t.Errorf("--config beats TOLLGATE_CONFIG: ticket %v, file %q", c.TicketTTL, c.ConfigFile)
	}
	_, err := load([]string{"--config=missing.yaml"}, nil, files)
	wantErr(t, err, "--config: open missing.yaml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file's error does not wrap fs.ErrNotExist: %v", err)
	}
	_, err = load(nil, map[string]string{"TOLLGATE_CONFIG": "missing.yaml"}, files)
	wantErr(t, err, "TOLLGATE_CONFIG: open missing.yaml")
}

// TestRealFile reads the config file from disk through Load, and the sample
// in testdata.
func TestRealFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tollgate.yaml")
	if err := os.WriteFile(path, []byte("addr: 127.0.0.1:9999\nallowed-origins: https://a.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load([]string{"--config", path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9999" || !slices.Equal(c.AllowedOrigins, []string{"https://a.example"}) || c.AllowedOriginsDerived {
		t.Errorf("from disk: addr %q origins %q derived %v", c.Addr, c.AllowedOrigins, c.AllowedOriginsDerived)
	}

	c, err = config.Load([]string{"--config", "testdata/full.yaml", "--ticket-ttl=25s"}, func(k string) string {
		if k == "TOLLGATE_LOG_LEVEL" {
			return "debug"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"addr", c.Addr, "0.0.0.0:9000"},
		{"origins", c.AllowedOrigins, []string{"https://chat.example.com", "https://admin.example.com:8443"}},
		{"cookie secure", c.CookieSecure, true},
		{"server", c.Server, "http://127.0.0.1:9000"},
		{"proxies", c.TrustedProxies, []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("fd00::/8")}},
		{"postgres", c.PostgresURL.Reveal(), "postgres://tollgate:pg-s3cret@db.internal:5432/tollgate?sslmode=verify-full"},
		{"log level from env", c.LogLevel.String(), "DEBUG"},
		{"ticket from flag", c.TicketTTL, 25 * time.Second},
		{"until", c.LegacyQueryTokenUntil, until},
		{"rooms", c.AnonymousRooms, []string{"lobby", "help-desk"}},
		{"registration", c.Registration, "closed"},
		{"stomp", c.StompSendToken, "required"},
		{"handshake-window", c.HandshakeWindow, 30 * time.Second},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("full.yaml %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// boundRow is a bounded setting with values at, below and above its bounds
// (as the error prints them), plus the settings a value at a bound needs to
// pass the checks across settings.
type boundRow struct {
	name         string
	lo, hi       string
	below, above string
	extra        []string
}

// boundsTable lists every bounded setting.
func boundsTable() []boundRow {
	return []boundRow{
		{"access-token-ttl", "10s", "24h", "9s", "24h1s", nil},
		{"refresh-token-ttl", "1m", "8760h", "59s", "8761h", []string{"--access-token-ttl=10s"}},
		{"ticket-ttl", "5s", "5m", "4s", "5m1s", nil},
		{"revalidate-interval", "10s", "24h", "9s", "25h", nil},
		{"session-cache-ttl", "0s", "10s", "-1s", "11s", nil},
		{"first-message-timeout", "1s", "1m", "999ms", "1m1s", nil},
		{"max-unauthenticated-per-ip", "1", "10000", "0", "10001", nil},
		{"max-unauthenticated", "1", "1000000", "-1", "1000001", nil},
		{"max-message-bytes", "1024", "1048576", "1023", "1048577", nil},
		{"send-queue", "8", "65536", "7", "65537", nil},
		{"max-sockets-per-user", "1", "10000", "0", "10001", nil},
		{"max-sockets-per-ip", "1", "100000", "0", "100001", nil},
		{"max-sockets", "1", "10000000", "0", "10000001", nil},
		{"read-header-timeout", "1s", "2m", "0s", "2m1s", nil},
		{"idle-timeout", "5s", "1h", "4s", "1h1s", []string{"--ping-interval=1s"}},
		// At its maximum, ping-interval cannot be below idle-timeout (whose
		// maximum is the same): the lo row and the cross test cover the rest.
		{"ping-interval", "1s", "", "500ms", "1h1s", nil},
		{"write-timeout", "1s", "2m", "-1s", "2m1s", nil},
		{"shutdown-timeout", "1s", "5m", "0s", "5m1s", nil},
		{"stomp-heartbeat", "1s", "5m", "0s", "5m1s", nil},
		{"publish-rate", "1", "10000", "0", "10001", nil},
		{"publish-window", "1s", "24h", "0s", "24h1s", nil},
		{"anon-publish-rate", "1", "10000", "0", "10001", nil},
		{"block-violations", "1", "1000", "0", "1001", nil},
		{"block-window", "1s", "24h", "0s", "24h1s", nil},
		{"block-duration", "1s", "720h", "0s", "721h", nil},
		{"failed-auth-block", "1", "100000", "0", "100001", nil},
		{"login-rate", "1", "10000", "0", "10001", nil},
		{"login-window", "1s", "24h", "0s", "24h1s", nil},
		{"handshake-rate", "1", "100000", "0", "100001", nil},
		{"handshake-window", "1s", "24h", "0s", "24h1s", nil},
	}
}

func TestBoundsTableComplete(t *testing.T) {
	t.Parallel()
	var inTable []string
	for _, b := range boundsTable() {
		inTable = append(inTable, b.name)
	}
	for _, name := range config.BoundedSettings() {
		if !slices.Contains(inTable, name) {
			t.Errorf("setting %s has bounds but no row in boundsTable", name)
		}
	}
}

func TestBounds(t *testing.T) {
	t.Parallel()
	for _, b := range boundsTable() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			flagName := "--" + b.name
			for _, v := range []string{b.lo, b.hi} {
				if v == "" {
					continue
				}
				mustLoad(t, append([]string{flagName + "=" + v}, b.extra...), nil, nil)
			}
			_, err := load([]string{flagName + "=" + b.below}, nil, nil)
			wantErr(t, err, flagName+": "+b.below+" is below the minimum "+b.lo)
			_, err = load([]string{flagName + "=" + b.above}, nil, nil)
			wantErr(t, err, flagName+": "+b.above+" is above the maximum ")

			// The same value from the environment names the variable.
			env := config.EnvName(b.name)
			_, err = load(nil, map[string]string{env: b.below}, nil)
			wantErr(t, err, env+": "+b.below+" is below the minimum "+b.lo)
		})
	}
}

// TestSourceNamed checks that an error names where the bad value came from.
func TestSourceNamed(t *testing.T) {
	t.Parallel()
	files := map[string]string{"t.yaml": "# comment\naddr: 127.0.0.1:1\nticket-ttl: 2s\n"}
	_, err := load([]string{"--ticket-ttl=2s"}, nil, nil)
	wantErr(t, err, "--ticket-ttl: 2s is below the minimum 5s")
	_, err = load(nil, map[string]string{"TOLLGATE_TICKET_TTL": "2s"}, nil)
	wantErr(t, err, "TOLLGATE_TICKET_TTL: 2s is below the minimum 5s")
	_, err = load([]string{"--config=t.yaml"}, nil, files)
	wantErr(t, err, "t.yaml:3: ticket-ttl: 2s is below the minimum 5s")
	_, err = load(nil, map[string]string{"TOLLGATE_ADDR": "localhost"}, nil)
	wantErr(t, err, `TOLLGATE_ADDR: "localhost" is not host:port`)
	// A default in conflict with a given value is named as the default.
	_, err = load([]string{"--idle-timeout=20s"}, nil, nil)
	wantErr(t, err, "--ping-interval (default): 25s must be below --idle-timeout (20s)")
}

func TestAllErrorsReported(t *testing.T) {
	t.Parallel()
	_, err := load([]string{"--ticket-ttl=2s", "--log-format=xml", "--addr=nope", "--send-queue=many"},
		map[string]string{"TOLLGATE_MAX_SOCKETS": "0"}, nil)
	wantErr(t, err,
		"--ticket-ttl: 2s is below the minimum 5s",
		`--log-format: "xml" is not one of text, json`,
		`--addr: "nope" is not host:port`,
		`--send-queue: "many" is not an integer`,
		"TOLLGATE_MAX_SOCKETS: 0 is below the minimum 1")
	if strings.Contains(err.Error(), "--send-queue: 0") {
		t.Errorf("a value that did not parse was also checked against its bounds: %v", err)
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		arg  string
		want string
	}{
		{"--secure-cookies=yes", `--secure-cookies: "yes" is not one of auto, true, false`},
		{"--registration=invite", `--registration: "invite" is not one of open, closed`},
		{"--log-format=xml", `--log-format: "xml" is not one of text, json`},
		{"--log-level=verbose", `--log-level: "verbose" is not one of debug, info, warn, error`},
		{"--log-level=INFO", `--log-level: "INFO" is not one of`},
		{"--audit-fsync=sometimes", `--audit-fsync: "sometimes" is not one of always, interval, never`},
		{"--stomp-send-token=maybe", `--stomp-send-token: "maybe" is not one of optional, required`},
		{"--anonymous=yes", `--anonymous: "yes" is not a boolean`},
		{"--audit-stdout=2", `--audit-stdout: "2" is not a boolean`},
		{"--ticket-ttl=30", `--ticket-ttl: "30" is not a duration`},
		{"--ticket-ttl=", `--ticket-ttl: "" is not a duration`},
		{"--max-sockets=1e6", `--max-sockets: "1e6" is not an integer`},
		{"--max-message-bytes=64KiB", `--max-message-bytes: "64KiB" is not an integer`},
		{"--max-sockets=99999999999999999999", `--max-sockets: "99999999999999999999" is not an integer`},
		{"--legacy-query-token-until=31/12/2026", `--legacy-query-token-until: "31/12/2026" is not a date`},
		{"--addr=localhost", `--addr: "localhost" is not host:port`},
		{"--addr=localhost:http", `--addr: "localhost:http": the port must be a number`},
		{"--addr=:70000", `the port must be a number from 0 to 65535`},
		{"--metrics-addr=9100", `--metrics-addr: "9100" is not host:port`},
		{"--metrics-addr=127.0.0.1:8080", `--metrics-addr: "127.0.0.1:8080" is also --addr`},
		{"--data-dir=", `--data-dir: must not be empty`},
		{"--oidc-name-claim=", `--oidc-name-claim: must not be empty`},
		{"--public-url=chat.example.com", `--public-url: "chat.example.com" is not an absolute URL`},
		{"--public-url=ftp://chat.example.com", `--public-url: "ftp://chat.example.com": the scheme must be http or https`},
		{"--public-url=https://chat.example.com/?a=1", `--public-url: "https://chat.example.com/?a=1" must not have a query`},
		{"--public-url=https://chat.example.com/#x", `must not have a fragment`},
		{"--public-url=https://u:p@chat.example.com", `must not contain user info`},
		{"--public-url=https:///path", `has no host`},
		{"--server=127.0.0.1:8080", `--server: "127.0.0.1:8080"`},
		{"--oidc-issuer=http://id.example.com", `--oidc-issuer: "http://id.example.com" must use https`},
		{"--jwks-url=http://id.example.com/jwks", `--jwks-url: "http://id.example.com/jwks" must use https`},
		{"--redis-url=http://cache:6379", `--redis-url: the scheme must be redis or rediss or unix`},
		{"--postgres-url=mysql://db", `--postgres-url: the scheme must be postgres or postgresql`},
		{"--postgres-url=host=db user=x", `--postgres-url: not an absolute URL`},
		{"--anonymous-rooms=Lobby", `--anonymous-rooms: "Lobby" is not a valid room name`},
		{"--anonymous-rooms=a,,b", `--anonymous-rooms: has an empty entry in its list`},
		{"--trusted-proxies=10.0.0.0/33", `--trusted-proxies: "10.0.0.0/33" is not a CIDR prefix`},
		{"--trusted-proxies=proxy.local", `--trusted-proxies: "proxy.local" is not an IP address or CIDR prefix`},
		{"--trusted-proxies=fe80::1%eth0", `is not an IP address or CIDR prefix`},
		{"--allowed-origins=", `--allowed-origins: is empty; leave it unset for the default allowlist`},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			t.Parallel()
			_, err := load([]string{tc.arg}, nil, nil)
			wantErr(t, err, tc.want)
		})
	}
}

func TestOrigins(t *testing.T) {
	t.Parallel()
	good := []struct{ in, want string }{
		{"https://chat.example.com", "https://chat.example.com"},
		{"HTTPS://Chat.Example.COM", "https://chat.example.com"},
		{"https://chat.example.com:443", "https://chat.example.com"},
		{"http://localhost:80", "http://localhost"},
		{"http://localhost:3000", "http://localhost:3000"},
		{"https://chat.example.com:8443", "https://chat.example.com:8443"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example"},
	}
	for _, tc := range good {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			c := mustLoad(t, []string{"--allowed-origins=" + tc.in}, nil, nil)
			if !slices.Equal(c.AllowedOrigins, []string{tc.want}) {
				t.Errorf("got %q, want %q", c.AllowedOrigins, tc.want)
			}
		})
	}
	bad := []struct{ in, want string }{
		{"https://chat.example.com/", "has a path"},
		{"https://chat.example.com/chat", "has a path"},
		{"https://*.example.com", "wildcards are not supported"},
		{"*", "wildcards are not supported"},
		{"null", `"null" is never an allowed origin`},
		{"ftp://files.example.com", "the scheme must be http or https"},
		{"ws://chat.example.com", "the scheme must be http or https"},
		{"https://chat.example.com?x=1", "has a query"},
		{"https://chat.example.com?", "has a query"},
		{"https://chat.example.com#top", "has a fragment"},
		{"https://user:pw@chat.example.com", "must not contain user info"},
		{"chat.example.com", "is not an origin"},
		{"https://", "is not an origin"},
		{"https://:8080", "has no host"},
		{"https://chat.example.com:0", "the port must be a number from 1 to 65535"},
		{"https://chat.example.com:99999", "the port must be a number from 1 to 65535"},
		{"https://bücher.example", "punycode"},
		{"mailto:x@example.com", "is not an origin"},
	}
	for _, tc := range bad {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			_, err := load([]string{"--allowed-origins=https://ok.example," + tc.in}, nil, nil)
			wantErr(t, err, "--allowed-origins: ", tc.want)
		})
	}
}

func TestDerived(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name         string
		args         []string
		origins      []string
		derived      bool
		cookieSecure bool
		server       string
	}{
		{"defaults", nil, []string{"http://localhost:8080", "http://127.0.0.1:8080"}, true, false, "http://127.0.0.1:8080"},
		{"https public url", []string{"--public-url=https://Chat.Example.com:443/app/", "--addr=0.0.0.0:9000"},
			[]string{"https://chat.example.com", "http://localhost:9000", "http://127.0.0.1:9000"}, true, true, "http://127.0.0.1:9000"},
		{"http public url", []string{"--public-url=http://chat.example.com:8000"},
			[]string{"http://chat.example.com:8000", "http://localhost:8080", "http://127.0.0.1:8080"}, true, false, "http://127.0.0.1:8080"},
		{"public url is localhost", []string{"--public-url=http://localhost:8080"},
			[]string{"http://localhost:8080", "http://127.0.0.1:8080"}, true, false, "http://127.0.0.1:8080"},
		{"secure cookies forced on", []string{"--secure-cookies=true"},
			[]string{"http://localhost:8080", "http://127.0.0.1:8080"}, true, true, "http://127.0.0.1:8080"},
		{"secure cookies forced off", []string{"--secure-cookies=false", "--public-url=https://chat.example.com"},
			[]string{"https://chat.example.com", "http://localhost:8080", "http://127.0.0.1:8080"}, true, false, "http://127.0.0.1:8080"},
		{"explicit origins", []string{"--allowed-origins=https://a.example,https://b.example:8443", "--public-url=https://c.example"},
			[]string{"https://a.example", "https://b.example:8443"}, false, true, "http://127.0.0.1:8080"},
		{"port 0", []string{"--addr=127.0.0.1:0"}, nil, true, false, "http://127.0.0.1:0"},
		{"port 0 with public url", []string{"--addr=127.0.0.1:0", "--public-url=https://c.example"}, []string{"https://c.example"}, true, true, "http://127.0.0.1:0"},
		{"all interfaces", []string{"--addr=:8081"}, []string{"http://localhost:8081", "http://127.0.0.1:8081"}, true, false, "http://127.0.0.1:8081"},
		{"ipv6 any", []string{"--addr=[::]:8081"}, []string{"http://localhost:8081", "http://127.0.0.1:8081"}, true, false, "http://127.0.0.1:8081"},
		{"ipv6 loopback", []string{"--addr=[::1]:8081"}, []string{"http://localhost:8081", "http://127.0.0.1:8081"}, true, false, "http://[::1]:8081"},
		{"named host", []string{"--addr=chat.internal:80"}, []string{"http://localhost", "http://127.0.0.1"}, true, false, "http://chat.internal:80"},
		{"explicit server", []string{"--server=https://chat.example.com"}, []string{"http://localhost:8080", "http://127.0.0.1:8080"}, true, false, "https://chat.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustLoad(t, tc.args, nil, nil)
			if !slices.Equal(c.AllowedOrigins, tc.origins) || c.AllowedOriginsDerived != tc.derived {
				t.Errorf("origins %q (derived %v), want %q (derived %v)", c.AllowedOrigins, c.AllowedOriginsDerived, tc.origins, tc.derived)
			}
			if c.CookieSecure != tc.cookieSecure {
				t.Errorf("CookieSecure = %v, want %v", c.CookieSecure, tc.cookieSecure)
			}
			if c.Server != tc.server {
				t.Errorf("Server = %q, want %q", c.Server, tc.server)
			}
		})
	}
	if got := config.DefaultAllowedOrigins("https://c.example/x", "127.0.0.1:43210"); !slices.Equal(got,
		[]string{"https://c.example", "http://localhost:43210", "http://127.0.0.1:43210"}) {
		t.Errorf("DefaultAllowedOrigins = %q", got)
	}
}

func TestCrossChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string // "" = valid
	}{
		{"legacy without until", []string{"--legacy-query-token"}, "--legacy-query-token: requires --legacy-query-token-until"},
		{"legacy with until", []string{"--legacy-query-token", "--legacy-query-token-until=2026-12-31"}, ""},
		{"until alone is harmless", []string{"--legacy-query-token-until=2026-12-31T12:00:00+02:00"}, ""},
		{"oidc issuer without audience", []string{"--oidc-issuer=https://id.example.com"}, "--oidc-audience (default): is required with --oidc-issuer or --jwks-url"},
		{"jwks without audience", []string{"--jwks-url=https://id.example.com/jwks.json"}, "--oidc-audience (default): is required"},
		{"oidc with audience", []string{"--oidc-issuer=https://id.example.com/realms/x", "--oidc-audience=tollgate"}, ""},
		{"oidc http loopback", []string{"--oidc-issuer=http://127.0.0.1:5556", "--jwks-url=http://localhost:5556/keys?x=1", "--oidc-audience=a"}, ""},
		{"oidc issuer with query", []string{"--oidc-issuer=https://id.example.com?x=1", "--oidc-audience=a"}, "must not have a query"},
		{"ping equals idle", []string{"--ping-interval=60s"}, "--ping-interval: 1m must be below --idle-timeout (1m)"},
		{"ping below idle", []string{"--ping-interval=59s"}, ""},
		{"access longer than refresh", []string{"--access-token-ttl=2h", "--refresh-token-ttl=1h"}, "--access-token-ttl: 2h is longer than --refresh-token-ttl (1h)"},
		{"anonymous without rooms", []string{"--anonymous", "--anonymous-rooms="}, "--anonymous-rooms: is empty, but --anonymous is on"},
		{"no rooms without anonymous", []string{"--anonymous-rooms="}, ""},
		{"metrics on another port", []string{"--metrics-addr=127.0.0.1:9100"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(tc.args, nil, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Validate(); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}
}

func TestLegacyUntil(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, []string{"--legacy-query-token", "--legacy-query-token-until=2026-12-31"}, nil, nil)
	if want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC); !c.LegacyQueryTokenUntil.Equal(want) {
		t.Errorf("a date means the end of that day UTC: got %v, want %v", c.LegacyQueryTokenUntil, want)
	}
	c = mustLoad(t, []string{"--legacy-query-token", "--legacy-query-token-until=2026-12-31T12:00:00+02:00"}, nil, nil)
	if want := time.Date(2026, 12, 31, 10, 0, 0, 0, time.UTC); !c.LegacyQueryTokenUntil.Equal(want) {
		t.Errorf("RFC 3339: got %v, want %v", c.LegacyQueryTokenUntil, want)
	}
}

func TestTrustedProxies(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, []string{"--trusted-proxies=10.1.2.3/8, 192.168.0.1,2001:db8::1, 2001:db8::/32,10.0.0.0/8"}, nil, nil)
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.0.1/32"),
		netip.MustParsePrefix("2001:db8::1/128"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	if !slices.Equal(c.TrustedProxies, want) {
		t.Errorf("got %v, want %v", c.TrustedProxies, want)
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--adr=x"}, "flag provided but not defined: -adr"},
		{"missing value", []string{"--addr"}, "flag needs an argument: -addr"},
		{"positional", []string{"extra"}, `unexpected argument "extra"`},
		{"bool takes no separate value", []string{"--anonymous", "false"}, `unexpected argument "false"`},
		{"after terminator", []string{"--", "--addr=x"}, `unexpected argument "--addr=x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(tc.args, nil, nil)
			wantErr(t, err, tc.want)
		})
	}
	for _, h := range []string{"-h", "--help", "-help"} {
		if _, err := load([]string{"--addr=127.0.0.1:1", h}, nil, nil); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: err = %v, want flag.ErrHelp", h, err)
		}
	}
	c := mustLoad(t, []string{"--anonymous", "--audit-stdout=true", "--first-message-auth=1"}, map[string]string{"TOLLGATE_LEGACY_QUERY_TOKEN": "0"}, nil)
	if !c.Anonymous || !c.AuditStdout || !c.FirstMessageAuth || c.LegacyQueryToken {
		t.Errorf("bools: %+v", c)
	}
}

func TestFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		yaml string
		want string // "" = valid
	}{
		{"empty", "", ""},
		{"comments only", "# nothing\n", ""},
		{"null document", "~\n", ""},
		{"unknown key", "addr: 127.0.0.1:1\nregistraton: closed\n", `t.yaml:2: "registraton": unknown setting`},
		{"env-style key", "TOLLGATE_ADDR: 127.0.0.1:1\n", `"TOLLGATE_ADDR": unknown setting`},
		{"underscore key", "data_dir: /x\n", `"data_dir": unknown setting`},
		{"config key", "config: other.yaml\n", "t.yaml:1: config: cannot be set inside the config file"},
		{"malformed", "addr: [1, 2\n", "t.yaml: yaml:"},
		{"tab indentation", "addr:\n\t- x\n", "t.yaml: yaml:"},
		{"not a mapping", "- addr\n- data-dir\n", "t.yaml:1: the file must be a mapping"},
		{"scalar document", "addr\n", "the file must be a mapping"},
		{"two documents", "addr: 127.0.0.1:1\n---\naddr: 127.0.0.1:2\n", "more than one YAML document"},
		{"duplicate key", "addr: 127.0.0.1:1\naddr: 127.0.0.1:2\n", "t.yaml:2: addr: set twice"},
		{"mapping value", "addr:\n  host: x\n", "t.yaml:1: addr: must be a value or a list, not a mapping"},
		{"list for scalar", "addr: [a, b]\n", "t.yaml:1: addr: takes one value, not a list"},
		{"nested list", "allowed-origins: [[a]]\n", "allowed-origins: list entries must be single values"},
		{"null entry", "anonymous-rooms: [a, ~]\n", "anonymous-rooms: list entries must be single values"},
		{"complex key", "? [a]\n: b\n", "keys must be setting names"},
		{"merge key", "base: &b {addr: x}\n<<: *b\n", `"base": unknown setting`},
		{"yaml int for duration", "ticket-ttl: 30\n", `t.yaml:1: ticket-ttl: "30" is not a duration`},
		{"yaml yes is not a bool", "anonymous: yes\n", `t.yaml:1: anonymous: "yes" is not a boolean`},
		{"null duration", "ticket-ttl:\n", `t.yaml:1: ticket-ttl: "" is not a duration`},
		{"null string", "public-url: ~\n", ""},
		{"null list", "allowed-origins:\n", "t.yaml:1: allowed-origins: is empty"},
		{"empty sequence", "trusted-proxies: []\n", ""},
		{"alias", "ticket-ttl: &t 40s\nfirst-message-timeout: *t\n", ""},
		{"quoted", "ticket-ttl: \"40s\"\nallowed-origins: 'https://a.example, https://b.example'\n", ""},
		{"bad origin", "allowed-origins:\n  - https://a.example/\n", `t.yaml:1: allowed-origins: "https://a.example/" has a path`},
		{"bound", "max-sockets: 0\n", "t.yaml:1: max-sockets: 0 is below the minimum 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := load([]string{"--config=t.yaml"}, nil, map[string]string{"t.yaml": tc.yaml})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Validate(); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantErr(t, err, tc.want)
		})
	}
	_, err := load([]string{"--config=big.yaml"}, nil, map[string]string{"big.yaml": "# " + strings.Repeat("x", 1<<20)})
	wantErr(t, err, "big.yaml: the file is larger than")
}

func TestValidate(t *testing.T) {
	t.Parallel()
	err := config.Config{}.Validate()
	wantErr(t, err, "--addr:", "--ticket-ttl: 0s is below the minimum 5s", "--registration:", "--allowed-origins: is empty")

	c := config.Defaults()
	c.AllowedOrigins = []string{"https://Chat.example.com:443"}
	wantErr(t, c.Validate(), `--allowed-origins: "https://Chat.example.com:443" never matches an Origin header; write it as "https://chat.example.com"`)

	c = config.Defaults()
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.1.2.3/8")}
	wantErr(t, c.Validate(), "--trusted-proxies:", "not a masked CIDR prefix")

	c = config.Defaults()
	c.LogLevel = 3
	wantErr(t, c.Validate(), "--log-level:")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	u := config.Usage()
	for _, name := range config.SettingNames() {
		if !strings.Contains(u, "  --"+name+" ") && !strings.Contains(u, "  --"+name+"\n") {
			t.Errorf("Usage lacks --%s", name)
		}
		if want := "env " + config.EnvName(name) + ")"; !strings.Contains(u, want) {
			t.Errorf("Usage lacks %q", want)
		}
	}
	for _, want := range []string{
		"--addr host:port", "default 127.0.0.1:8080", "env TOLLGATE_DATA_DIR",
		"--ticket-ttl duration", "default 30s; 5s to 5m; env TOLLGATE_TICKET_TTL",
		"--max-message-bytes n", "default 65536; 1024 to 1048576",
		"--secure-cookies auto|true|false", "default auto",
		"--anonymous\n", "default lobby",
		"default http://127.0.0.1:8080",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("Usage lacks %q", want)
		}
	}
	for i, line := range strings.Split(u, "\n") {
		if len(line) > 80 {
			t.Errorf("Usage line %d is %d columns: %q", i+1, len(line), line)
		}
	}
}
