package auth

import (
	"crypto/sha256"
	"sync"
)

// maxVerifiedTokens bounds the verified-token cache: when it is full it
// starts over empty (a few hundred bytes per entry, so at most ~20 MB).
const maxVerifiedTokens = 65536

// tokenCache remembers tollgate's own access tokens whose signature and
// claims verified, keyed by the SHA-256 of the whole token, so that the same
// token presented again (a reconnect, a ticket request and then its socket, a
// client's many tabs) skips the base64 and JSON decoding and the HMAC
// (docs/benchmarks.md: 11–15% of a Bearer handshake's CPU).
//
// What a hit skips can only come out the same way: the token is the same
// bytes, so its signature, header and claims are those verified, and iat and
// nbf, once passed, stay passed. What can change is checked on every hit or
// makes the entry miss: exp against the clock (with the same leeway as the
// parser), and the key set, since an entry counts only with the very KeySet
// it was verified with ([Service.SetKeys] makes every entry miss). The
// session behind the token is checked after the cache, on every use, so
// revocation is unaffected. Failures are never cached, so input that did not
// verify cannot fill it.
type tokenCache struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]verifiedToken
}

type verifiedToken struct {
	claims *accessClaims // never modified after it is stored
	keys   *KeySet
}

func newTokenCache() *tokenCache {
	return &tokenCache{m: make(map[[sha256.Size]byte]verifiedToken)}
}

// get returns the claims stored under h when they were verified with keys.
func (c *tokenCache) get(h [sha256.Size]byte, keys *KeySet) (*accessClaims, bool) {
	c.mu.RLock()
	e, ok := c.m[h]
	c.mu.RUnlock()
	if !ok || e.keys != keys {
		return nil, false
	}
	return e.claims, true
}

// put stores claims verified with keys under h.
func (c *tokenCache) put(h [sha256.Size]byte, claims *accessClaims, keys *KeySet) {
	c.mu.Lock()
	if len(c.m) >= maxVerifiedTokens {
		clear(c.m)
	}
	c.m[h] = verifiedToken{claims: claims, keys: keys}
	c.mu.Unlock()
}

// parseAccess verifies one of tollgate's own access tokens (signature, type,
// key id, iss, aud, exp, nbf, iat and the required claims), through the
// cache of tokens verified before. It does not look at the session.
func (s *Service) parseAccess(raw string) (*accessClaims, error) {
	keys := s.signingKeys()
	h := sha256.Sum256([]byte(raw))
	if c, ok := s.verified.get(h, keys); ok && s.now().Before(c.ExpiresAt.Add(s.cfg.Leeway)) {
		return c, nil
	}
	claims := &accessClaims{}
	if _, err := s.access.ParseWithClaims(raw, claims, s.accessKeyfunc); err != nil {
		return nil, classify(err)
	}
	// keys was read before the parse: if SetKeys ran in between, the entry
	// names the old set and simply misses.
	s.verified.put(h, claims, keys)
	return claims, nil
}
