// Package testenv gives integration tests the URLs of the external services
// they need: Redis and PostgreSQL.
//
// Each helper takes the URL from an environment variable or falls back to the
// local default, and checks that the service answers a TCP dial. When it does
// not, the test is skipped on a developer machine but fails under CI=true, so
// that a CI job without its services cannot pass by skipping everything
// (STYLE.md, "Tests": never a build tag that keeps a test out of CI).
//
// The package only dials; it never logs or prints a URL with its password.
package testenv

import (
	"context"
	"crypto/rand"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables read by the helpers.
const (
	// RedisURLEnv names the variable holding the Redis URL for tests.
	RedisURLEnv = "TOLLGATE_TEST_REDIS_URL"
	// PostgresURLEnv names the variable holding the PostgreSQL URL for tests.
	PostgresURLEnv = "TOLLGATE_TEST_POSTGRES_URL"
)

// Defaults used when the variables are unset or empty: the services of a
// developer machine or a CI job, on loopback, without passwords.
const (
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

// dialTimeout bounds the reachability check.
const dialTimeout = 2 * time.Second

// Redis returns the URL of the Redis server for tests: $TOLLGATE_TEST_REDIS_URL
// or [DefaultRedisURL]. If the server does not accept a TCP connection, it
// skips the test, or fails it when the environment has CI=true.
func Redis(tb testing.TB) string {
	tb.Helper()
	return service(tb, "Redis", RedisURLEnv, DefaultRedisURL, "6379")
}

// Postgres returns the URL of the PostgreSQL server for tests:
// $TOLLGATE_TEST_POSTGRES_URL or [DefaultPostgresURL]. If the server does not
// accept a TCP connection, it skips the test, or fails it when the
// environment has CI=true.
func Postgres(tb testing.TB) string {
	tb.Helper()
	return service(tb, "PostgreSQL", PostgresURLEnv, DefaultPostgresURL, "5432")
}

// InCI reports whether the environment says it is a CI run (CI=true), where
// a missing service fails the test instead of skipping it.
func InCI() bool {
	v := strings.TrimSpace(os.Getenv("CI"))
	return strings.EqualFold(v, "true") || v == "1"
}

func service(tb testing.TB, name, env, def, defaultPort string) string {
	tb.Helper()
	raw := strings.TrimSpace(os.Getenv(env))
	source := "$" + env
	if raw == "" {
		raw, source = def, "default"
	}
	addr, shown, err := address(raw, defaultPort)
	if err == nil {
		err = dial(addr)
	}
	if err != nil {
		// shown never holds a password: see address.
		msg := name + " at " + shown + " (" + source + ") is unreachable: " + err.Error()
		if InCI() {
			tb.Fatalf("%s; CI=true, so this is a failure, not a skip", msg)
		}
		tb.Skipf("%s; set %s or start the service (under CI=true this fails)", msg, env)
	}
	return raw
}

// address returns the host:port to dial for a URL, and a form of the URL
// safe to print (password redacted). A key=value connection string (libpq
// style, PostgreSQL only) is read for host and port.
func address(raw, defaultPort string) (addr, shown string, err error) {
	if !strings.Contains(raw, "://") {
		return keywordAddress(raw, defaultPort)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error quotes the whole URL, password included.
		return "", "(unparsable URL)", errUnparsable
	}
	host, port := u.Hostname(), u.Port()
	if i := strings.IndexByte(u.Host, ','); i >= 0 { // multi-host PostgreSQL URL: check the first
		h, p, splitErr := net.SplitHostPort(u.Host[:i])
		if splitErr != nil {
			h, p = strings.Trim(u.Host[:i], "[]"), ""
		}
		host, port = h, p
	}
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = defaultPort
	}
	return net.JoinHostPort(host, port), u.Redacted(), nil
}

// keywordAddress reads host and port from "host=H port=P …".
func keywordAddress(raw, defaultPort string) (addr, shown string, err error) {
	host, port := "localhost", defaultPort
	for _, f := range strings.Fields(raw) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			continue
		}
		switch k {
		case "host":
			host = v
		case "port":
			port = v
		}
	}
	if strings.HasPrefix(host, "/") { // a Unix socket directory
		return "", "(Unix socket)", nil
	}
	return net.JoinHostPort(host, port), "host=" + host + " port=" + port, nil
}

type testenvError string

func (e testenvError) Error() string { return string(e) }

const errUnparsable = testenvError("the URL cannot be parsed")

func dial(addr string) error {
	if addr == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// PostgresSchema creates a schema of its own for one test on the test server and
// returns a URL whose connections use it (search_path); the schema is
// dropped when the test ends.
func PostgresSchema(t testing.TB) string {
	t.Helper()
	base := Postgres(t)
	schema := "tollgate_test_" + strings.ToLower(rand.Text()[:16])
	admin(t, base, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { admin(t, base, "DROP SCHEMA "+schema+" CASCADE") })
	return WithSearchPath(t, base, schema)
}

// admin runs one statement on a connection of its own.
func admin(t testing.TB, rawURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		t.Fatalf("connect to the test database: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// WithSearchPath sets the search_path run-time parameter in a URL or a
// key=value connection string; pgx sends it when it connects.
func WithSearchPath(t testing.TB, rawURL, schema string) string {
	t.Helper()
	if !strings.Contains(rawURL, "://") {
		return rawURL + " search_path=" + schema
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal("cannot parse the test database URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
