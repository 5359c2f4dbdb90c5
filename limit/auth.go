package limit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// maxKeyName is the longest username used as is in a counter key; longer
// ones (never valid usernames) are keyed by a hash, so that client input
// cannot make a key long.
const maxKeyName = 64

// AllowLogin counts one login attempt from ip for username against
// LoginRate per LoginWindow, per IP and separately per username (case
// folded, as usernames are unique case-insensitively), and returns nil or an
// *[tollgate.Error]: rate_limited with RetryAfter (the HTTP layer answers 429
// with Retry-After), or unavailable when the counter cannot be reached (fail
// closed). A refused attempt counts against neither limit. An empty username
// is limited per IP only.
//
// It does not check blocks (call [Limiter.CheckBlocked]) and does not count a
// failure (call [Limiter.FailedAuth] when the credentials are wrong). The
// first refusal per key and window is audited as rate_limited. Safe for
// concurrent use.
func (l *Limiter) AllowLogin(ctx context.Context, ip, username string) error {
	now := l.cfg.Now()
	ctx, cancel := l.storeCtx(ctx)
	defer cancel()
	byIP := limitCheck{key: "login:ip:" + ip, rate: l.cfg.LoginRate, w: l.cfg.LoginWindow, what: "login",
		audit: tollgate.AuditEvent{IP: ip}}
	wait, err := l.take(ctx, byIP, now)
	if err != nil {
		return unavailable("count login", err)
	}
	if wait > 0 {
		l.auditRefusal(ctx, byIP, now)
		return rateLimited("login per IP", wait)
	}
	if username == "" {
		return nil
	}
	byName := limitCheck{key: "login:name:" + nameKey(username), rate: l.cfg.LoginRate, w: l.cfg.LoginWindow, what: "login",
		audit: tollgate.AuditEvent{IP: ip}}
	wait, err = l.take(ctx, byName, now)
	if err != nil {
		l.giveBack(ctx, byIP, now)
		return unavailable("count login", err)
	}
	if wait > 0 {
		l.giveBack(ctx, byIP, now)
		l.auditRefusal(ctx, byName, now)
		return rateLimited("login per username", wait)
	}
	return nil
}

// AllowHandshake counts one WebSocket handshake from ip against
// HandshakeRate per HandshakeWindow and returns nil, rate_limited with
// RetryAfter (429 with Retry-After), or unavailable (fail closed). A refused
// handshake is not counted. It does not check blocks (call
// [Limiter.CheckBlocked] once the credential names the user). The first
// refusal per IP and window is audited as rate_limited. Safe for concurrent
// use.
func (l *Limiter) AllowHandshake(ctx context.Context, ip string) error {
	now := l.cfg.Now()
	ctx, cancel := l.storeCtx(ctx)
	defer cancel()
	c := limitCheck{key: "handshake:ip:" + ip, rate: l.cfg.HandshakeRate, w: l.cfg.HandshakeWindow, what: "handshake",
		audit: tollgate.AuditEvent{IP: ip}}
	wait, err := l.take(ctx, c, now)
	if err != nil {
		return unavailable("count handshake", err)
	}
	if wait > 0 {
		l.auditRefusal(ctx, c, now)
		return rateLimited("handshake", wait)
	}
	return nil
}

// FailedAuth counts one failed login or handshake from ip. The
// FailedAuthBlock-th within BlockWindow blocks ip for BlockDuration: the block
// is audited and every node is asked to close the IP's live sockets 1008
// blocked. The caller has already refused the request; the error, a store
// failure (unavailable), is for its log. An empty ip is not counted.
// Safe for concurrent use.
func (l *Limiter) FailedAuth(ctx context.Context, ip string) error {
	if ip == "" {
		return nil
	}
	now := l.cfg.Now()
	ctx, cancel := l.storeCtx(ctx)
	defer cancel()
	cur, prev, err := l.counter.Incr(ctx, "failed:ip:"+ip, 1, l.cfg.BlockWindow, now)
	if err != nil {
		return unavailable("count failed authentication", err)
	}
	if compareEstimate(prev, cur, int64(l.cfg.FailedAuthBlock), l.cfg.BlockWindow, elapsed(now, l.cfg.BlockWindow)) < 0 {
		return nil
	}
	b := tollgate.Block{Kind: tollgate.BlockIP, Target: ip, Reason: ReasonFailedAuth, CreatedAt: now, Until: now.Add(l.cfg.BlockDuration)}
	if _, err := l.block(ctx, b, tollgate.AuditEvent{}, now); err != nil {
		return unavailable("block", err)
	}
	return nil
}

// auditRefusal audits a refused login or handshake as rate_limited, once per
// key and window: a client hammering a limit must not flood the audit log.
func (l *Limiter) auditRefusal(ctx context.Context, c limitCheck, now time.Time) {
	n, _, err := l.counter.Incr(ctx, "audited:"+c.key, 1, c.w, now)
	if err != nil {
		l.log.Warn("limit: counting an audited refusal failed", "what", c.what, "error", err)
		return
	}
	if n != 1 {
		return
	}
	e := c.audit
	e.TS, e.Event, e.Reason = now, tollgate.AuditRateLimited, c.what
	l.record(ctx, e)
}

// nameKey is the counter key part for a username: folded to lower case, and
// hashed when longer than any valid username.
func nameKey(username string) string {
	n := strings.ToLower(username)
	if len(n) <= maxKeyName {
		return n
	}
	h := sha256.Sum256([]byte(n))
	return "sha256:" + hex.EncodeToString(h[:16])
}
