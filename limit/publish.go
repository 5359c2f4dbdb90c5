package limit

import (
	"context"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// AllowPublish decides whether p may publish now (hub.PublishLimiter). It
// returns nil, or an *[tollgate.Error]:
//   - blocked (the socket closes 1008 blocked) while p's user or c.IP is
//     blocked, RetryAfter the time left;
//   - rate_limited (an error frame; the socket stays open) beyond
//     PublishRate per PublishWindow for a user, AnonPublishRate per IP for
//     an anonymous principal, RetryAfter the whole seconds until a publish is
//     let through again;
//   - blocked, when this refusal is the BlockViolations-th within
//     BlockWindow: the user (an anonymous principal: its IP) is blocked for
//     BlockDuration, every node is asked to close its live sockets 1008
//     blocked, and the block is audited;
//   - unavailable when a store cannot be reached (fail closed).
//
// Every refusal is audited as rate_limited and counted as a violation.
// Safe for concurrent use.
func (l *Limiter) AllowPublish(ctx context.Context, p tollgate.Principal, c tollgate.ClientInfo) error {
	now := l.cfg.Now()
	ctx, cancel := l.storeCtx(ctx)
	defer cancel()
	if err := l.checkBlocked(ctx, p.UserID, c.IP, now); err != nil {
		return err
	}
	// An anonymous identity is free to renew: count and block its address
	// (docs/api.md, "Limits and blocks").
	anon := p.Anonymous || p.UserID == ""
	check := limitCheck{key: "publish:user:" + p.UserID, rate: l.cfg.PublishRate, w: l.cfg.PublishWindow, what: "publish"}
	target := tollgate.Block{Kind: tollgate.BlockUser, Target: p.UserID, Name: p.Name}
	if anon {
		check.key, check.rate = "publish:ip:"+c.IP, l.cfg.AnonPublishRate
		target = tollgate.Block{Kind: tollgate.BlockIP, Target: c.IP}
	}
	wait, err := l.take(ctx, check, now)
	if err != nil {
		return unavailable("count publish", err)
	}
	if wait == 0 {
		return nil
	}
	refusal := rateLimited("publish", wait)
	audit := tollgate.AuditEvent{User: p.UserID, IP: c.IP, Origin: c.Origin, Credential: p.Credential}
	e := audit
	e.TS, e.Event, e.Reason = now, tollgate.AuditRateLimited, "publish"
	l.record(ctx, e)

	// Each refused publish is one violation (docs/api.md, "Limits and blocks").
	vkey := "violation:" + string(target.Kind) + ":" + target.Target
	cur, prev, err := l.counter.Incr(ctx, vkey, 1, l.cfg.BlockWindow, now)
	if err != nil {
		// The publish is refused all the same; only the block may come late.
		l.log.Error("limit: counting a violation failed", "error", err)
		return refusal
	}
	if compareEstimate(prev, cur, int64(l.cfg.BlockViolations), l.cfg.BlockWindow, elapsed(now, l.cfg.BlockWindow)) < 0 {
		return refusal
	}
	if target.Target == "" {
		return refusal // nothing to block by
	}
	target.Reason, target.CreatedAt, target.Until = ReasonViolations, now, now.Add(l.cfg.BlockDuration)
	if _, err := l.block(ctx, target, audit, now); err != nil {
		l.log.Error("limit: storing a block failed", "kind", string(target.Kind), "error", err)
		return refusal
	}
	return blockedError(target, now)
}

// CheckBlocked returns an *[tollgate.Error] blocked while userID or ip is
// blocked (RetryAfter: the time left), unavailable when the blocklist cannot
// be reached (fail closed), and nil otherwise. An empty userID or ip is not
// checked. Use it before a login, a ticket and a handshake (docs/api.md:
// handshakes and ticket requests 403 blocked). Safe for concurrent use.
func (l *Limiter) CheckBlocked(ctx context.Context, userID, ip string) error {
	ctx, cancel := l.storeCtx(ctx)
	defer cancel()
	return l.checkBlocked(ctx, userID, ip, l.cfg.Now())
}

func (l *Limiter) checkBlocked(ctx context.Context, userID, ip string, now time.Time) error {
	for _, k := range [...]struct {
		kind   tollgate.BlockKind
		target string
	}{{tollgate.BlockUser, userID}, {tollgate.BlockIP, ip}} {
		if k.target == "" {
			continue
		}
		b, ok, err := l.blocks.Blocked(ctx, k.kind, k.target, now)
		if err != nil {
			return unavailable("check block", err)
		}
		if ok {
			return blockedError(b, now)
		}
	}
	return nil
}
