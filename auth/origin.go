package auth

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// maxOriginLen bounds an Origin header compared against the allowlist; longer
// values are never allowed (no real origin is that long).
const maxOriginLen = 512

// Origins is the Origin allowlist (docs/api.md, "Opening a socket"): exact
// scheme://host[:port] entries, compared byte for byte with the request's
// Origin header. There is no wildcard, no suffix or prefix matching, no
// default-port folding on the request side and no "null".
//
// An Origins is immutable after [NewOrigins] and safe for concurrent use. The
// zero value allows nothing.
type Origins struct {
	set map[string]struct{}
}

// NewOrigins validates and normalizes list and returns the allowlist. Each
// entry must be an http or https origin as a browser serializes it: a scheme,
// a host and an optional port, with no user info, path, query or fragment.
// Scheme and host are lower-cased and a default port (:80 for http, :443 for
// https) is dropped, because browsers never send those. "null", "*" and empty
// entries are errors.
func NewOrigins(list []string) (Origins, error) {
	o := Origins{set: make(map[string]struct{}, len(list))}
	for _, s := range list {
		n, err := normalizeOrigin(s)
		if err != nil {
			return Origins{}, err
		}
		o.set[n] = struct{}{}
	}
	return o, nil
}

func normalizeOrigin(s string) (string, error) {
	if s == "" || s == "null" || strings.Contains(s, "*") || len(s) > maxOriginLen {
		return "", fmt.Errorf("auth: allowed origin %q: not an exact scheme://host[:port]", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("auth: allowed origin %q: %w", s, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Opaque != "" || u.User != nil || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(s, "#") {
		return "", fmt.Errorf("auth: allowed origin %q: not an exact scheme://host[:port]", s)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" || strings.ContainsAny(host, " %") || strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("auth: allowed origin %q: bad host", s)
	}
	host = strings.ToLower(host)
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	hostport := host
	if strings.Contains(host, ":") { // IPv6 literal
		hostport = "[" + host + "]"
	}
	if port != "" {
		hostport = net.JoinHostPort(host, port)
	}
	return scheme + "://" + hostport, nil
}

// Allowed reports whether origin, the value of a request's Origin header, is
// exactly one of the allowlist's entries. "null" and anything longer than 512
// bytes are never allowed.
func (o Origins) Allowed(origin string) bool {
	if origin == "" || origin == "null" || len(origin) > maxOriginLen {
		return false
	}
	_, ok := o.set[origin]
	return ok
}

// Len is the number of allowed origins.
func (o Origins) Len() int { return len(o.set) }
