package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate-ws/tollgate"
)

// This file holds the value parsers and checks. A parser turns text into a
// typed value and reports malformed text; a check reports a typed value that
// is out of bounds. Both return the problem only: the caller prefixes the
// source ("--ticket-ttl", "TOLLGATE_TICKET_TTL", "tollgate.yaml:3: ticket-ttl").

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, fmt.Errorf("%q is not a boolean (true, false, 1 or 0)", v)
	}
	return b, nil
}

func parseInt(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	return n, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (Go syntax, like 30s, 15m or 1h30m)", v)
	}
	return d, nil
}

// fmtDuration prints d as Go syntax without zero parts: 24h, 1h30m, 24h1s, 5m, 30s.
func fmtDuration(d time.Duration) string {
	s := strings.Replace(d.String(), "h0m", "h", 1)
	if strings.HasSuffix(s, "m0s") || strings.HasSuffix(s, "h0s") {
		s = s[:len(s)-2]
	}
	return s
}

// inRange reports v outside [lo, hi], printing values with show.
func inRange[T cmp.Ordered](v, lo, hi T, show func(T) string) error {
	switch {
	case v < lo:
		return fmt.Errorf("%s is below the minimum %s", show(v), show(lo))
	case v > hi:
		return fmt.Errorf("%s is above the maximum %s", show(v), show(hi))
	}
	return nil
}

func oneOf(v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", "))
}

// parseDate accepts YYYY-MM-DD, meaning the end of that day in UTC (the
// next midnight), or an RFC 3339 time. "" is the zero time (unset).
func parseDate(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t.AddDate(0, 0, 1), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD or RFC 3339)", v)
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// checkHostPort accepts host:port with a numeric port 0-65535; the host may
// be empty (all interfaces).
func checkHostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port", v)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", v)
	}
	return nil
}

// urlRules says what checkURL accepts besides an absolute URL with a host.
type urlRules struct {
	schemes        []string
	httpLoopback   bool // "http" only for localhost, 127.0.0.1, ::1 (schemes must hold https)
	allowQuery     bool
	allowEmptyHost bool
}

// checkURL reports a URL that breaks rules. It echoes v, so it must not be
// used for values that may hold a secret (see checkSecretURL).
func checkURL(v string, r urlRules) error {
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" || u.Scheme == "" {
		return fmt.Errorf("%q is not an absolute URL", v)
	}
	scheme := strings.ToLower(u.Scheme)
	if r.httpLoopback && scheme == "http" {
		if !loopbackHost(u.Hostname()) {
			return fmt.Errorf("%q must use https (http only for localhost, 127.0.0.1 or ::1)", v)
		}
	} else if oneOf(scheme, r.schemes) != nil {
		return fmt.Errorf("%q: the scheme must be %s", v, strings.Join(r.schemes, " or "))
	}
	switch {
	case u.Host == "" && !r.allowEmptyHost:
		return fmt.Errorf("%q has no host", v)
	case u.User != nil:
		return fmt.Errorf("%q must not contain user info", v)
	case !r.allowQuery && (u.RawQuery != "" || u.ForceQuery):
		return fmt.Errorf("%q must not have a query", v)
	case u.Fragment != "" || strings.Contains(v, "#"):
		return fmt.Errorf("%q must not have a fragment", v)
	}
	return nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// checkSecretURL is checkURL for store URLs: its messages never echo the
// value, which may hold a password.
func checkSecretURL(v string, schemes ...string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" || u.Scheme == "" {
		return fmt.Errorf("not an absolute URL (the value is not shown: it may hold a password)")
	}
	if oneOf(strings.ToLower(u.Scheme), schemes) != nil {
		return fmt.Errorf("the scheme must be %s (the value is not shown: it may hold a password)", strings.Join(schemes, " or "))
	}
	return nil
}

// normalizeOrigin checks that v is an exact origin, scheme://host[:port]
// with scheme http or https, and returns it as browsers send it in the
// Origin header: lower case, without the scheme's default port.
func normalizeOrigin(v string) (string, error) {
	const form = "an origin is scheme://host[:port]"
	switch {
	case v == "null" || v == "":
		return "", fmt.Errorf("%q is never an allowed origin", v)
	case strings.Contains(v, "*"):
		return "", fmt.Errorf("%q: wildcards are not supported; list each origin", v)
	case !utf8.ValidString(v):
		return "", fmt.Errorf("%q is not valid UTF-8", v)
	}
	u, err := url.Parse(v)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("%q is not an origin (%s)", v, form)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return "", fmt.Errorf("%q: the scheme must be http or https", v)
	case u.User != nil:
		return "", fmt.Errorf("%q must not contain user info (%s)", v, form)
	case u.Path != "" || u.RawPath != "":
		return "", fmt.Errorf("%q has a path, even if only a trailing / (%s)", v, form)
	case u.RawQuery != "" || u.ForceQuery:
		return "", fmt.Errorf("%q has a query (%s)", v, form)
	case u.Fragment != "" || strings.Contains(v, "#"):
		return "", fmt.Errorf("%q has a fragment (%s)", v, form)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", fmt.Errorf("%q has no host (%s)", v, form)
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= utf8.RuneSelf {
			return "", fmt.Errorf("%q: write a non-ASCII host in punycode (xn--...), as browsers send it", v)
		}
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: the port must be a number from 1 to 65535", v)
		}
		port = strconv.Itoa(n)
		if (scheme == "http" && n == 80) || (scheme == "https" && n == 443) {
			port = ""
		}
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// checkOrigin reports an allowlist entry that is not an exact, normalized origin.
func checkOrigin(v string) error {
	n, err := normalizeOrigin(v)
	if err != nil {
		return err
	}
	if n != v {
		return fmt.Errorf("%q never matches an Origin header; write it as %q", v, n)
	}
	return nil
}

func checkRoom(v string) error {
	if !tollgate.ValidRoom(v) {
		return fmt.Errorf("%q is not a valid room name (1 to %d of a-z 0-9 _ . -)", v, tollgate.MaxRoomLen)
	}
	return nil
}

// parsePrefix accepts a CIDR prefix or a bare IP address (a /32 or /128),
// and returns it masked.
func parsePrefix(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix (like 10.0.0.0/8 or fd00::/8)", v)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", v)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func checkPrefix(p netip.Prefix) error {
	if !p.IsValid() || p != p.Masked() {
		return fmt.Errorf("%q is not a masked CIDR prefix", p.String())
	}
	return nil
}

// dedupe returns items without repeats, in first-seen order.
func dedupe[T comparable](items []T) []T {
	out := make([]T, 0, len(items))
	seen := make(map[T]bool, len(items))
	for _, it := range items {
		if !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	return out
}

// checkRedisPrefix allows 1 to 64 of A-Z a-z 0-9 _ . : - (no glob or space
// characters, which would break key patterns).
func checkRedisPrefix(v string) error {
	if v == "" || len(v) > 64 {
		return errors.New("must be 1 to 64 characters")
	}
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == ':', r == '-':
		default:
			return fmt.Errorf("%q: only A-Z a-z 0-9 _ . : - are allowed", v)
		}
	}
	return nil
}
