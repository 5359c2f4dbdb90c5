package auth

import (
	"context"
	"crypto/sha256"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-ws/tollgate"
)

// countParses makes e's Service count the access tokens it fully parses (the
// key lookup runs once per parse that got as far as the signature).
func countParses(e *env) *atomic.Int64 {
	var n atomic.Int64
	inner := e.svc.accessKeyfunc
	e.svc.accessKeyfunc = func(t *jwt.Token) (any, error) {
		n.Add(1)
		return inner(t)
	}
	return &n
}

func TestTokenCacheSkipsTheParseOfAVerifiedToken(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, "alice")
	parses := countParses(e)
	first := e.principal(t, tok)
	for range 5 {
		if p := e.principal(t, tok); p != first {
			t.Fatalf("cached principal %+v, first %+v", p, first)
		}
	}
	if got := parses.Load(); got != 1 {
		t.Fatalf("6 checks of one token parsed it %d times, want 1", got)
	}
	// Another token of the same session is its own entry.
	other := e.login(t, "alice")
	e.principal(t, other)
	if got := parses.Load(); got != 2 {
		t.Fatalf("a second token parsed %d times in all, want 2", got)
	}
}

func TestTokenCacheHitStillExpires(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, "alice")
	e.principal(t, tok)
	// exp plus the leeway, as the parser counts it.
	e.clock.Advance(e.svc.cfg.AccessTTL + e.svc.cfg.Leeway)
	_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeTokenExpired)
}

func TestTokenCacheHitStillChecksTheSession(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, "alice")
	p := e.principal(t, tok)
	if err := e.svc.Logout(context.Background(), p, tollgate.ClientInfo{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
}

func TestTokenCacheMissesAfterSetKeys(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, "alice")
	e.principal(t, tok)
	ks, err := NewKeySet([]byte("fedcba9876543210fedcba9876543210"))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetKeys(ks) // the token's key is gone
	_, err = e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
}

func TestTokenCacheNeverHoldsFailures(t *testing.T) {
	e := newEnv(t)
	tok := e.login(t, "alice")
	raw := tok.Access.Reveal()
	// The same claims MACed with another key: verifies nowhere.
	forged := raw[:len(raw)-4] + "AAAA"
	if forged == raw {
		forged = raw[:len(raw)-4] + "BBBB"
	}
	parses := countParses(e)
	for range 3 {
		_, err := e.svc.VerifyAccess(context.Background(), tollgate.Secret(forged))
		wantCode(t, err, tollgate.CodeUnauthenticated)
	}
	if got := parses.Load(); got != 3 {
		t.Fatalf("a forged token was parsed %d times in 3 checks, want 3 (never cached)", got)
	}
	if len(e.svc.verified.m) != 0 {
		t.Fatalf("the cache holds %d entries after failures only", len(e.svc.verified.m))
	}
	e.principal(t, tok)
}

func TestTokenCacheBounded(t *testing.T) {
	c := newTokenCache()
	ks, err := NewKeySet(testKey)
	if err != nil {
		t.Fatal(err)
	}
	claims := &accessClaims{RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now())}}
	for i := range maxVerifiedTokens + 10 {
		c.put(sha256.Sum256([]byte(strconv.Itoa(i))), claims, ks)
	}
	if n := len(c.m); n > maxVerifiedTokens {
		t.Fatalf("cache holds %d entries, bound %d", n, maxVerifiedTokens)
	}
}
