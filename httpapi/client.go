package httpapi

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/tollgate-ws/tollgate"
)

// maxForwardedHops bounds how many X-Forwarded-For entries are examined.
const maxForwardedHops = 32

// clientInfo is what the edge knows about the peer of r: its IP (see
// clientIP) and its Origin header. Several Origin headers are joined, which
// never matches an allowlist entry, so they are refused rather than guessed
// at; an empty Origin header is present and refused too.
func (s *Server) clientInfo(r *http.Request) tollgate.ClientInfo {
	vals := r.Header.Values("Origin")
	return tollgate.ClientInfo{
		IP:        clientIP(r.RemoteAddr, r.Header.Values("X-Forwarded-For"), s.cfg.TrustedProxies),
		Origin:    strings.Join(vals, ", "),
		HasOrigin: len(vals) > 0,
	}
}

// clientIP returns the client address of a request whose peer is
// remoteAddr (docs/api.md, "Operations"). X-Forwarded-For is believed only
// when the peer is a trusted proxy; then the entries are read from the right
// (the one the trusted peer appended) and the first address that is not
// itself a trusted proxy is the client. An unparsable entry stops the walk:
// whatever is left of it was written by someone untrusted, so the nearest
// trusted hop is returned. IPv4-mapped IPv6 addresses are unmapped.
func clientIP(remoteAddr string, xff []string, trusted []netip.Prefix) string {
	peer, ok := parseAddr(remoteAddr)
	if !ok {
		return remoteAddr // not an IP (e.g. a unix socket); nothing to believe
	}
	if len(xff) == 0 || !isTrusted(peer, trusted) {
		return peer.String()
	}
	var hops []string
	for _, v := range xff {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i, n := len(hops)-1, 0; i >= 0 && n < maxForwardedHops; i, n = i-1, n+1 {
		a, ok := parseAddr(strings.TrimSpace(hops[i]))
		if !ok {
			break
		}
		client = a
		if !isTrusted(a, trusted) {
			break
		}
	}
	return client.String()
}

// parseAddr parses "ip", "ip:port" or "[ipv6]:port".
func parseAddr(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
