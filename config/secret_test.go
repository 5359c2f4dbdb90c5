package config_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ws/tollgate/config"
)

const (
	pgPassword    = "pg-Hunter2-s3cret"
	redisPassword = "redis-Hunter2-s3cret"
	queryPassword = "q-Hunter2-s3cret"
)

// leaked returns the first test password found in out, or "".
func leaked(out string) string {
	for _, s := range []string{pgPassword, redisPassword, queryPassword} {
		if strings.Contains(out, s) {
			return s
		}
	}
	return ""
}

func TestSecretURLRedacted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"postgres://tollgate:" + pgPassword + "@db:5432/tg?sslmode=require", "postgres://tollgate:xxxxx@db:5432/tg?sslmode=require"},
		{"postgres://db/tg?password=" + queryPassword + "&sslmode=disable", "postgres://db/tg?password=xxxxx&sslmode=disable"},
		{"postgres://db/tg?sslpassword=" + queryPassword, "postgres://db/tg?sslpassword=xxxxx"},
		{"rediss://:" + redisPassword + "@cache:6380/0", "rediss://:xxxxx@cache:6380/0"},
		{"redis://default:" + redisPassword + "@cache", "redis://default:xxxxx@cache"},
		{"redis://cache:6379/0", "redis://cache:6379/0"},
		{"redis://user@cache", "redis://user@cache"},
		{"postgres://u:" + pgPassword + "@db/x#frag", "postgres://u:xxxxx@db/x"},
		{"postgres://u:%zz" + pgPassword + "@db", "[redacted]"},
		{"postgres:u:" + pgPassword + "@db", "[redacted]"},
		{"postgres://db/x?password=%zz" + queryPassword, "postgres://db/x?[redacted]"},
	} {
		got := config.SecretURL(tc.in).Redacted()
		if got != tc.want {
			t.Errorf("Redacted(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if s := config.SecretURL("postgres://u:" + pgPassword + "@db"); s.Reveal() != "postgres://u:"+pgPassword+"@db" {
		t.Errorf("Reveal lost the value: %q", s.Reveal())
	}
}

// TestConfigNeverPrintsPasswords prints and logs a whole loaded Config in
// every way a caller might, and checks no store password shows.
func TestConfigNeverPrintsPasswords(t *testing.T) {
	t.Parallel()
	c := mustLoad(t, []string{
		"--postgres-url=postgres://tollgate:" + pgPassword + "@db:5432/tg?sslmode=require&password=" + queryPassword,
	}, map[string]string{"TOLLGATE_REDIS_URL": "rediss://:" + redisPassword + "@cache:6380/0"}, nil)
	if !strings.Contains(c.PostgresURL.Reveal(), pgPassword) || !strings.Contains(c.RedisURL.Reveal(), redisPassword) {
		t.Fatal("the loaded URLs lost their passwords")
	}

	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		outs = append(outs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, &c), fmt.Sprintf(verb, c.PostgresURL), fmt.Sprintf(verb, c.RedisURL))
	}
	outs = append(outs, fmt.Sprint(c), fmt.Sprintln(c.PostgresURL, c.RedisURL), c.PostgresURL.String())

	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		l := slog.New(h)
		l.Info("config", "cfg", c, "pg", c.PostgresURL, "redis", c.RedisURL)
		l.Info("config", slog.Any("cfg", &c), slog.Group("stores", "pg", c.PostgresURL))
	}
	outs = append(outs, buf.String())

	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(j), string(y))

	for _, out := range outs {
		if s := leaked(out); s != "" {
			t.Errorf("password %q printed in:\n%s", s, out)
		}
	}
	if !strings.Contains(buf.String(), "postgres://tollgate:xxxxx@db:5432/tg") {
		t.Errorf("the log does not show the redacted URL:\n%s", buf.String())
	}
}

// TestErrorsNeverShowPasswords checks that a bad store URL's error, from any
// source, does not echo it.
func TestErrorsNeverShowPasswords(t *testing.T) {
	t.Parallel()
	bad := []string{
		"mysql://u:" + pgPassword + "@db",
		"postgres://u:" + pgPassword + "@db:port",
		"host=db password=" + pgPassword,
		"postgres://u:%zz" + pgPassword + "@db",
	}
	for _, v := range bad {
		for _, src := range []struct {
			args  []string
			env   map[string]string
			files map[string]string
		}{
			{args: []string{"--postgres-url=" + v}},
			{args: []string{"--postgres-url", v}},
			{env: map[string]string{"TOLLGATE_POSTGRES_URL": v}},
			{args: []string{"--config=t.yaml"}, files: map[string]string{"t.yaml": "postgres-url: '" + v + "'\n"}},
			{args: []string{"--redis-url=" + v}},
			// A stray space after "=" leaves the URL as a positional argument.
			{args: []string{"--postgres-url=", "postgres://u:" + pgPassword + "@db"}},
			// Malformed flag syntax: the flag package would quote the argument.
			{args: []string{"---postgres-url=" + v}},
		} {
			_, err := load(src.args, src.env, src.files)
			if err == nil {
				t.Errorf("%v %v: no error", src.args, src.env)
				continue
			}
			if s := leaked(err.Error()); s != "" {
				t.Errorf("error shows the password: %v", err)
			}
		}
	}
}
