package auth

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/memory"
)

// countingSessions counts Session reads and can hold one read until
// released, to stage a revocation while a lookup is in flight.
type countingSessions struct {
	*memory.SessionStore
	reads atomic.Int64

	mu      sync.Mutex
	hold    chan struct{} // when set, the next read waits on it
	reading chan struct{} // closed when a held read has read the store
}

func (c *countingSessions) Session(ctx context.Context, id string) (tollgate.Session, error) {
	c.reads.Add(1)
	s, err := c.SessionStore.Session(ctx, id)
	c.mu.Lock()
	hold, reading := c.hold, c.reading
	c.hold, c.reading = nil, nil
	c.mu.Unlock()
	if hold != nil {
		close(reading)
		<-hold
	}
	return s, err
}

// holdNextRead makes the next Session read stop after reading the store; it
// returns a channel closed when that has happened and a func that lets it go
// on.
func (c *countingSessions) holdNextRead() (read <-chan struct{}, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold, c.reading = make(chan struct{}), make(chan struct{})
	h := c.hold
	return c.reading, func() { close(h) }
}

// newCachedEnv is newEnv with a session cache of ttl over a counting store.
func newCachedEnv(t *testing.T, ttl time.Duration) (*env, *countingSessions) {
	t.Helper()
	store := &countingSessions{SessionStore: memory.NewSessionStore()}
	e := newEnv(t, func(c *Config) { c.SessionCacheTTL = ttl })
	svc, err := New(e.svc.cfg, e.users, store, e.tickets)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	e.svc = svc
	e.sessions = store.SessionStore // what another node would write
	return e, store
}

func TestSessionCacheServesRepeatedChecks(t *testing.T) {
	e, store := newCachedEnv(t, time.Second)
	tok := e.login(t, "alice")
	ctx := context.Background()
	base := store.reads.Load()
	for range 10 {
		e.principal(t, tok)
	}
	if got := store.reads.Load() - base; got != 1 {
		t.Fatalf("10 checks within the TTL read the store %d times, want 1", got)
	}
	// Tickets redeemed within the TTL use the same entry.
	ticket, _, err := e.svc.IssueTicket(ctx, e.principal(t, tok), tollgate.ClientInfo{IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RedeemTicket(ctx, ticket, tollgate.ClientInfo{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	if got := store.reads.Load() - base; got != 1 {
		t.Fatalf("a ticket redeem within the TTL read the store (%d reads), want the cached session", got)
	}
	e.clock.Advance(time.Second)
	e.principal(t, tok)
	if got := store.reads.Load() - base; got != 2 {
		t.Fatalf("a check after the TTL read the store %d times in all, want 2", got)
	}
}

func TestSessionCacheNoCacheWithZeroTTL(t *testing.T) {
	e, store := newCachedEnv(t, 0)
	tok := e.login(t, "alice")
	base := store.reads.Load()
	for range 3 {
		e.principal(t, tok)
	}
	if got := store.reads.Load() - base; got != 3 {
		t.Fatalf("without a cache 3 checks read the store %d times", got)
	}
}

// Every way a session ends on this node or on another refuses the next check
// at once, though the session was cached a moment before.
func TestSessionCacheRevocationIsImmediate(t *testing.T) {
	ctx := context.Background()
	c := tollgate.ClientInfo{IP: "192.0.2.1"}
	for _, tc := range []struct {
		name   string
		revoke func(t *testing.T, e *env, p tollgate.Principal)
	}{
		{"logout", func(t *testing.T, e *env, p tollgate.Principal) {
			if err := e.svc.Logout(ctx, p, c); err != nil {
				t.Fatal(err)
			}
		}},
		{"disable user", func(t *testing.T, e *env, p tollgate.Principal) {
			if err := e.svc.DisableUser(ctx, p.UserID, c); err != nil {
				t.Fatal(err)
			}
		}},
		{"admin revokes the user's sessions", func(t *testing.T, e *env, p tollgate.Principal) {
			if n, err := e.svc.RevokeUserSessions(ctx, p.UserID, c); err != nil || n != 1 {
				t.Fatalf("RevokeUserSessions = %d, %v", n, err)
			}
		}},
		{"another node revokes the session", func(t *testing.T, e *env, p tollgate.Principal) {
			// The other node writes the shared store and publishes the event
			// that this node's broker delivers.
			if err := e.sessions.RevokeSession(ctx, p.SessionID, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			e.svc.ForgetRevoked(tollgate.ControlEvent{Kind: tollgate.ControlRevokeSession, Target: p.SessionID})
		}},
		{"another node disables the user", func(t *testing.T, e *env, p tollgate.Principal) {
			if _, err := e.sessions.RevokeUserSessions(ctx, p.UserID, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			e.svc.ForgetRevoked(tollgate.ControlEvent{Kind: tollgate.ControlDisableUser, Target: p.UserID})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newCachedEnv(t, MaxSessionCacheTTL)
			tok := e.login(t, "alice")
			other := e.login(t, "bob")
			p := e.principal(t, tok)
			e.principal(t, other)
			ticket, _, err := e.svc.IssueTicket(ctx, p, c)
			if err != nil {
				t.Fatal(err)
			}
			tc.revoke(t, e, p)
			_, err = e.svc.VerifyAccess(ctx, tok.Access)
			wantCode(t, err, tollgate.CodeUnauthenticated)
			_, err = e.svc.RedeemTicket(ctx, ticket, c)
			wantCode(t, err, tollgate.CodeInvalidTicket)
			// Another user's cached session is untouched.
			e.principal(t, other)
		})
	}
}

// A control event that never arrives is what the TTL bounds: the revoked
// session passes on this node until its entry is stale, then never again.
func TestSessionCacheLostEventBoundedByTTL(t *testing.T) {
	e, _ := newCachedEnv(t, time.Second)
	tok := e.login(t, "alice")
	p := e.principal(t, tok)
	if err := e.sessions.RevokeSession(context.Background(), p.SessionID, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.principal(t, tok) // still cached: no event reached this node
	e.clock.Advance(time.Second)
	_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
}

// A lookup that read the store before a revocation must not put what it read
// into the cache after the revocation dropped the entry.
func TestSessionCacheLookupRacingRevocationStoresNothing(t *testing.T) {
	e, store := newCachedEnv(t, MaxSessionCacheTTL)
	tok := e.login(t, "alice")
	p := e.principal(t, tok)
	e.clock.Advance(MaxSessionCacheTTL) // the entry is stale: the next check reads the store

	read, release := store.holdNextRead()
	done := make(chan error, 1)
	go func() {
		_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
		done <- err
	}()
	<-read // it has read the session while live
	if err := e.svc.Logout(context.Background(), p, tollgate.ClientInfo{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("the check that read before the logout: %v", err) // it raced and won, as without a cache
	}
	_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
}

func TestSessionCacheTTLBounds(t *testing.T) {
	for _, ttl := range []time.Duration{-time.Second, MaxSessionCacheTTL + time.Millisecond} {
		ks, _ := NewKeySet(testKey)
		_, err := New(Config{Keys: ks, Argon2: fastArgon, SessionCacheTTL: ttl},
			memory.NewUserStore(), memory.NewSessionStore(), memory.NewTicketStore())
		if err == nil {
			t.Fatalf("SessionCacheTTL %s accepted", ttl)
		}
	}
}

// The cache stays bounded: past maxCachedSessions it starts over.
func TestSessionCacheBounded(t *testing.T) {
	now := time.Now()
	store := memory.NewSessionStore()
	c := newSessionCache(store, time.Minute, func() time.Time { return now })
	ctx := context.Background()
	for i := range maxCachedSessions + 10 {
		s := tollgate.Session{ID: "s" + strconv.Itoa(i), UserID: "u", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := store.CreateSession(ctx, s, tollgate.RefreshToken{Hash: "h" + strconv.Itoa(i), SessionID: s.ID, ExpiresAt: s.ExpiresAt}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Session(ctx, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.RLock()
	n := len(c.m)
	c.mu.RUnlock()
	if n > maxCachedSessions {
		t.Fatalf("cache holds %d entries, bound %d", n, maxCachedSessions)
	}
}
