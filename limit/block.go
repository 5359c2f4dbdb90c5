package limit

import (
	"context"
	"errors"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/tollgate-ws/tollgate"
)

// Bounds on what an admin may write into a block.
const (
	maxTargetLen = 256
	maxReasonLen = 256
)

var errBadTarget = errors.New("limit: a block needs kind user or ip and a valid target")

// Block blocks a user (kind user, target: the user id; name: the user name,
// shown in lists) or an IP address (kind ip, target: the address, stored in
// canonical form) for d from now (d ≤ 0: BlockDuration), for the admin API
// and `tollgate block add`. It replaces a block of the same target, audits
// "blocked" with reason (empty: "admin"), and asks every node to close the
// target's live sockets 1008 blocked.
//
// It returns the block stored, or an *[tollgate.Error]: invalid_request for
// an unknown kind or a bad target, unavailable when the blocklist cannot be
// reached, and unavailable too when the block is stored but the control
// event could not be published (live sockets then stay open until their next
// publish; calling Block again is safe). Safe for concurrent use.
func (l *Limiter) Block(ctx context.Context, kind tollgate.BlockKind, target, name, reason string, d time.Duration) (tollgate.Block, error) {
	target, ok := canonicalTarget(kind, target)
	if !ok {
		return tollgate.Block{}, tollgate.WrapError(tollgate.CodeInvalidRequest, errBadTarget)
	}
	if d <= 0 {
		d = l.cfg.BlockDuration
	}
	if reason == "" {
		reason = ReasonAdmin
	}
	now := l.cfg.Now()
	ctx, cancel := l.storeCtx(ctx)
	defer cancel()
	b := tollgate.Block{Kind: kind, Target: target, Name: truncate(name, maxTargetLen), Reason: truncate(reason, maxReasonLen),
		CreatedAt: now, Until: now.Add(d)}
	if kind == tollgate.BlockIP {
		b.Name = ""
	}
	controlErr, err := l.block(ctx, b, tollgate.AuditEvent{}, now)
	if err != nil {
		return tollgate.Block{}, unavailable("block", err)
	}
	if controlErr != nil {
		return b, unavailable("close the blocked target's sockets", controlErr)
	}
	return b, nil
}

// Unblock lifts the block of (kind, target) for the admin API and `tollgate
// block remove`, and reports whether one was in force; if so, it audits
// "unblocked" (reason "admin"). Violations and failed authentications already
// counted are not forgotten: one more within BlockWindow blocks again.
// Errors: invalid_request for an unknown kind or a bad target, unavailable
// when the blocklist cannot be reached. Safe for concurrent use.
func (l *Limiter) Unblock(ctx context.Context, kind tollgate.BlockKind, target string) (bool, error) {
	target, ok := canonicalTarget(kind, target)
	if !ok {
		return false, tollgate.WrapError(tollgate.CodeInvalidRequest, errBadTarget)
	}
	ctx, cancel := l.storeCtx(ctx)
	defer cancel()
	was, err := l.blocks.Unblock(ctx, kind, target)
	if err != nil {
		return false, unavailable("unblock", err)
	}
	if was {
		e := tollgate.AuditEvent{TS: l.cfg.Now(), Event: tollgate.AuditUnblocked, Reason: ReasonAdmin}
		if kind == tollgate.BlockUser {
			e.User = target
		} else {
			e.IP = target
		}
		l.record(ctx, e)
	}
	return was, nil
}

// List returns the blocks in force now, for the admin API and `tollgate
// block list`, or unavailable when the blocklist cannot be reached. Safe for
// concurrent use.
func (l *Limiter) List(ctx context.Context) ([]tollgate.Block, error) {
	ctx, cancel := l.storeCtx(ctx)
	defer cancel()
	bs, err := l.blocks.List(ctx, l.cfg.Now())
	if err != nil {
		return nil, unavailable("list blocks", err)
	}
	return bs, nil
}

// canonicalTarget checks a block target and returns it in the form the rest
// of tollgate compares: an IP as the HTTP layer writes ClientInfo.IP
// (netip's form, IPv4-mapped IPv6 unmapped).
func canonicalTarget(kind tollgate.BlockKind, target string) (string, bool) {
	switch kind {
	case tollgate.BlockUser:
		return target, target != "" && len(target) <= maxTargetLen
	case tollgate.BlockIP:
		a, err := netip.ParseAddr(target)
		if err != nil {
			return "", false
		}
		return a.Unmap().String(), true
	}
	return "", false
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
