package auth

import (
	"context"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// MaxSessionCacheTTL bounds [Config.SessionCacheTTL]: past a few seconds a
// lost control event would leave a revoked session usable for handshakes on
// other nodes for too long (docs/api.md, project notes on revocation).
const MaxSessionCacheTTL = 10 * time.Second

// maxCachedSessions bounds the cache's memory: when it is full, it starts
// over empty (a few hundred bytes per entry, so at most ~20 MB).
const maxCachedSessions = 65536

// sessionCache is the SessionStore seen by the token and ticket checks: it
// remembers each live session that Session returned for at most ttl, so a
// reconnect storm does not read the same session from the store once per
// handshake (docs/benchmarks.md: the lookup was 17% of a Bearer handshake's
// CPU on SQLite).
//
// Revocation stays immediate on this node: RevokeSession and
// RevokeUserSessions drop what they revoke once the store has it, and
// forget, called for every control event the broker delivers, drops what
// another node revoked. A lookup that read the store before such a drop
// stores nothing (the generation moved), so a revoked session is never
// cached again. What the cache can miss is a control event that never
// arrives (a broker outage): then a revoked session may still pass for up
// to ttl on this node, and the sockets it opens meet the periodic
// revalidation, which reads the store itself.
//
// Only live sessions are cached; errors and not-found answers never are.
// Everything else passes through to the store.
type sessionCache struct {
	tollgate.SessionStore
	ttl time.Duration
	now func() time.Time

	mu  sync.RWMutex
	gen uint64 // moves on every drop
	m   map[string]cachedSession
}

type cachedSession struct {
	s     tollgate.Session
	until time.Time
}

func newSessionCache(store tollgate.SessionStore, ttl time.Duration, now func() time.Time) *sessionCache {
	return &sessionCache{SessionStore: store, ttl: ttl, now: now, m: make(map[string]cachedSession)}
}

// Session returns the cached session while it is fresh, else the store's.
func (c *sessionCache) Session(ctx context.Context, id string) (tollgate.Session, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.m[id]
	gen := c.gen
	c.mu.RUnlock()
	if ok && now.Before(e.until) {
		return e.s, nil
	}
	s, err := c.SessionStore.Session(ctx, id)
	if err != nil || !s.Live(now) {
		return s, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= maxCachedSessions {
			clear(c.m)
		}
		c.m[id] = cachedSession{s: s, until: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return s, nil
}

// RevokeSession revokes in the store, then drops the session, whatever the
// store answered (a timeout may still have committed).
func (c *sessionCache) RevokeSession(ctx context.Context, id string, at time.Time) error {
	defer c.drop(id, "")
	return c.SessionStore.RevokeSession(ctx, id, at)
}

// RevokeUserSessions revokes in the store, then drops every session of the
// user.
func (c *sessionCache) RevokeUserSessions(ctx context.Context, userID string, at time.Time) ([]string, error) {
	defer c.drop("", userID)
	return c.SessionStore.RevokeUserSessions(ctx, userID, at)
}

// forget drops what a control event revokes: the session of a
// revoke_session, every session of a disable_user's user. Other kinds (blocks)
// are not about sessions; the handshake checks them elsewhere.
func (c *sessionCache) forget(e tollgate.ControlEvent) {
	switch e.Kind {
	case tollgate.ControlRevokeSession:
		c.drop(e.Target, "")
	case tollgate.ControlDisableUser:
		c.drop("", e.Target)
	}
}

// drop deletes the session id (when not empty) and every session of userID
// (when not empty), and moves the generation, so that no lookup in flight
// stores what it read before.
func (c *sessionCache) drop(id, userID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if id != "" {
		delete(c.m, id)
	}
	if userID != "" {
		for k, e := range c.m {
			if e.s.UserID == userID {
				delete(c.m, k)
			}
		}
	}
}

// ForgetRevoked drops from the session cache whatever control event e
// revokes (a session, or every session of a disabled user). Wire it to run
// for every control event the broker delivers, before the hub closes the
// matching sockets; without a cache ([Config.SessionCacheTTL] zero) it does
// nothing. Safe for concurrent use.
func (s *Service) ForgetRevoked(e tollgate.ControlEvent) {
	if s.cache != nil {
		s.cache.forget(e)
	}
}
