package config_test

import (
	"os"
	"strings"
	"testing"
)

// FuzzLoadYAML feeds arbitrary bytes as the config file: Load must not
// panic, and either fail or return a Config that passes Validate.
func FuzzLoadYAML(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	for _, s := range []string{
		"",
		"~",
		"addr: 127.0.0.1:1\n",
		"allowed-origins: [https://a.example, 'http://[::1]:8080']\n",
		"allowed-origins: https://a.example, https://b.example\n",
		"trusted-proxies: 10.0.0.0/8,::1\n",
		"ticket-ttl: &t 40s\nfirst-message-timeout: *t\n",
		"idle-timeout: 10s\nping-interval: 5s\n",
		"legacy-query-token: true\nlegacy-query-token-until: 2026-01-02\n",
		"oidc-issuer: http://localhost:1\noidc-audience: x\n",
		"a: &a [*a]\n",
		"- x\n",
		"addr: [1, 2\n",
		"? [a]\n: b\n",
		"anonymous-rooms: []\nanonymous: true\n",
		"postgres-url: postgres://u:p@h/db?password=x\n",
		"---\n---\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := load([]string{"--config=f.yaml"}, nil, map[string]string{"f.yaml": string(data)})
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted a config that Validate rejects: %v\nfile:\n%s", err, data)
		}
	})
}

// FuzzLoadArgs feeds arbitrary arguments (one per line) and one environment
// variable: same property as FuzzLoadYAML.
func FuzzLoadArgs(f *testing.F) {
	f.Add("--addr=127.0.0.1:0\n--anonymous", "TOLLGATE_ANONYMOUS_ROOMS", "lobby,help")
	f.Add("--allowed-origins=https://a.example\n--allowed-origins\nhttp://b.example:81", "TOLLGATE_PUBLIC_URL", "https://c.example/x")
	f.Add("--idle-timeout=20s", "TOLLGATE_PING_INTERVAL", "19s")
	f.Add("--legacy-query-token", "TOLLGATE_LEGACY_QUERY_TOKEN_UNTIL", "2026-12-31T00:00:00Z")
	f.Add("--trusted-proxies=10.1.2.3/8", "TOLLGATE_TRUSTED_PROXIES", "::1")
	f.Add("-h", "TOLLGATE_SECURE_COOKIES", "true")
	f.Add("---x=1\n--\nrest", "TOLLGATE_ADDR", ":99999")
	f.Fuzz(func(t *testing.T, args, envName, envValue string) {
		var argv []string
		if args != "" {
			argv = strings.Split(args, "\n")
		}
		c, err := load(argv, map[string]string{envName: envValue}, nil)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Load accepted a config that Validate rejects: %v\nargs %q env %s=%q", err, argv, envName, envValue)
		}
	})
}
