package config

import (
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
)

// SecretURL is a store URL (--redis-url, --postgres-url) that may carry a
// password in its userinfo or query. Everywhere it is printed (every fmt verb,
// %#v included), logged through slog or marshalled as text, JSON or YAML, it
// shows [SecretURL.Redacted]: the password, and any query parameter whose name
// suggests a secret, replaced with "xxxxx". So a whole [Config] is safe to
// print or log.
//
// Call [SecretURL.Reveal] only to hand the URL to the store's driver.
type SecretURL string

// redactedMark replaces secret parts; the same mark as url.URL.Redacted.
const redactedMark = "xxxxx"

// Reveal returns the URL with its password. Call it only to open the store.
func (s SecretURL) Reveal() string { return string(s) }

// Empty reports whether no URL is set.
func (s SecretURL) Empty() bool { return s == "" }

// Redacted returns the URL with the userinfo password and the values of
// secret-looking query parameters (names containing "pass", "secret",
// "token", "key", "auth" or "credential") replaced with "xxxxx", and without
// a fragment. A value that does not parse as a URL is shown as "[redacted]".
func (s SecretURL) Redacted() string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(string(s))
	if err != nil || u.Opaque != "" {
		return "[redacted]"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redactedMark)
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			u.RawQuery = "[redacted]"
		} else {
			for k := range q {
				if secretParam(k) {
					q[k] = []string{redactedMark}
				}
			}
			u.RawQuery = q.Encode()
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String()
}

func secretParam(name string) bool {
	name = strings.ToLower(name)
	for _, w := range []string{"pass", "secret", "token", "key", "auth", "credential"} {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// String implements fmt.Stringer; it returns [SecretURL.Redacted].
func (s SecretURL) String() string { return s.Redacted() }

// Format implements fmt.Formatter, so that no verb (%d, %x, %#v, ...) prints
// the raw value; %q quotes the redacted URL, every other verb writes it.
func (s SecretURL) Format(f fmt.State, verb rune) {
	r := s.Redacted()
	if verb == 'q' {
		r = strconv.Quote(r)
	}
	_, _ = io.WriteString(f, r)
}

// LogValue implements slog.LogValuer.
func (s SecretURL) LogValue() slog.Value { return slog.StringValue(s.Redacted()) }

// MarshalText implements encoding.TextMarshaler (used by encoding/json and
// YAML encoders); it marshals the redacted URL.
func (s SecretURL) MarshalText() ([]byte, error) { return []byte(s.Redacted()), nil }
