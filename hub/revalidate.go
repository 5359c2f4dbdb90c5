package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// DefaultRevalidateInterval is the period of [Hub.RunRevalidation] when none
// is given (--revalidate-interval, docs/api.md issue 5, point 4).
const DefaultRevalidateInterval = 5 * time.Minute

// RevalidateBatch is the most ids [Hub.Revalidate] hands to one
// UsersByID or SessionsByID call: a node with n distinct users and m
// distinct sessions makes ceil(n/RevalidateBatch) + ceil(m/RevalidateBatch)
// store calls per run, however many sockets each of them holds.
const RevalidateBatch = 500

// revalidateJitter is the spread of [Hub.RunRevalidation]'s period: each
// wait is the interval ± 10%, so that nodes started together do not query
// the stores in step.
const revalidateJitter = 0.10

// checked is a registered socket whose principal Revalidate looks up.
type checked struct {
	c       Conn
	user    string
	session string
}

// Revalidate checks every registered socket's user and login session against
// the stores and closes the sockets whose credential no longer holds:
//
//   - user unknown or disabled: closed 1008 user_disabled;
//   - session unknown, revoked, expired at now, or belonging to another
//     user: closed 1008 session_revoked.
//
// The user check comes first: a disabled user's sockets close with
// user_disabled even when their sessions were revoked too.
//
// Skipped, because there is no stored state to check: anonymous principals,
// pending sockets (no user yet), and principals without a login session,
// which are tokens of an external identity provider (Principal.Issuer set,
// SessionID empty; they live until their exp, docs/api.md issue 4).
//
// The lookups are batched: the distinct user ids and session ids of all
// sockets go to UsersByID and SessionsByID in calls of at most
// [RevalidateBatch] ids, each bounded by Config.StoreTimeout; the number of
// calls does not grow with the number of sockets per user or per session.
//
// Revalidate fails safe for live sockets: when any store call fails (or ctx
// ends) it closes nothing and returns the error; the next run tries again.
// A socket is closed only if its principal is still the one that was
// checked (an in-band refresh to another session during the run saves it)
// and it is still registered. closed counts the sockets closed.
//
// Revalidate is safe for concurrent use, with itself and with every other
// Hub method. It never holds the hub's lock during a store call.
func (h *Hub) Revalidate(ctx context.Context, users tollgate.UserStore, sessions tollgate.SessionStore, now time.Time) (closed int, err error) {
	if users == nil || sessions == nil {
		return 0, errors.New("hub: revalidate: the user and session stores are required")
	}
	h.mu.RLock()
	conns := make([]Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.RUnlock()

	// Principal is called outside the hub's lock: a Conn may take its own.
	targets := make([]checked, 0, len(conns))
	userSet := make(map[string]struct{})
	sessionSet := make(map[string]struct{})
	for _, c := range conns {
		p := c.Principal()
		if !revalidatable(p) {
			continue
		}
		targets = append(targets, checked{c: c, user: p.UserID, session: p.SessionID})
		userSet[p.UserID] = struct{}{}
		sessionSet[p.SessionID] = struct{}{}
	}
	if len(targets) == 0 {
		return 0, nil
	}

	found, err := lookupBatched(ctx, h, keys(userSet), users.UsersByID)
	if err != nil {
		return 0, fmt.Errorf("hub: revalidate: users: %w", err)
	}
	live, err := lookupBatched(ctx, h, keys(sessionSet), sessions.SessionsByID)
	if err != nil {
		return 0, fmt.Errorf("hub: revalidate: sessions: %w", err)
	}

	for _, t := range targets {
		var code tollgate.Code
		if u, ok := found[t.user]; !ok || u.Disabled {
			code = tollgate.CodeUserDisabled
		} else if s, ok := live[t.session]; !ok || s.UserID != t.user || !s.Live(now) {
			code = tollgate.CodeSessionRevoked
		} else {
			continue
		}
		if !h.stillChecked(t) {
			continue
		}
		t.c.Close(tollgate.NewError(code))
		closed++
		h.cfg.Logger.Info("revalidation closed a socket",
			"conn_id", t.c.ID(), "user", t.user, "code", string(code))
	}
	return closed, nil
}

// revalidatable reports whether p names a stored user and login session.
func revalidatable(p tollgate.Principal) bool {
	return !p.Anonymous && p.UserID != "" && p.SessionID != "" && p.Issuer == ""
}

// stillChecked reports whether t's socket is still registered and still acts
// for the user and session that were looked up.
func (h *Hub) stillChecked(t checked) bool {
	h.mu.RLock()
	_, ok := h.conns[t.c]
	h.mu.RUnlock()
	if !ok {
		return false
	}
	p := t.c.Principal()
	return p.UserID == t.user && p.SessionID == t.session
}

func keys(set map[string]struct{}) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

// lookupBatched calls get with at most RevalidateBatch ids at a time, each
// call bounded by the hub's store timeout, and merges the results. The first
// error ends it.
func lookupBatched[V any](ctx context.Context, h *Hub, ids []string, get func(context.Context, []string) (map[string]V, error)) (map[string]V, error) {
	out := make(map[string]V, len(ids))
	for start := 0; start < len(ids); start += RevalidateBatch {
		batch := ids[start:min(start+RevalidateBatch, len(ids))]
		sctx, cancel := h.storeCtx(ctx)
		got, err := get(sctx, batch)
		cancel()
		if err != nil {
			return nil, err
		}
		for k, v := range got {
			out[k] = v
		}
	}
	return out, nil
}

// RunRevalidation calls [Hub.Revalidate] with Config.Now's time every
// interval, jittered by ± 10%, until ctx ends; then it returns. The first run
// comes one (jittered) interval after the call. interval ≤ 0 means
// [DefaultRevalidateInterval]. A failed run is logged on logger (nil means
// the hub's Config.Logger) and closes nothing; the next run tries again.
func (h *Hub) RunRevalidation(ctx context.Context, users tollgate.UserStore, sessions tollgate.SessionStore, interval time.Duration, logger *slog.Logger) {
	if interval <= 0 {
		interval = DefaultRevalidateInterval
	}
	if logger == nil {
		logger = h.cfg.Logger
	}
	timer := time.NewTimer(jitter(interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		closed, err := h.Revalidate(ctx, users, sessions, h.cfg.Now())
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			logger.Warn("revalidation failed; live sockets kept until the next run", "error", err)
		case closed > 0:
			logger.Info("revalidation done", "closed", closed, "took", time.Since(start).String())
		}
		timer.Reset(jitter(interval))
	}
}

// jitter returns a duration drawn uniformly from interval ± 10%, never below
// one millisecond.
func jitter(interval time.Duration) time.Duration {
	spread := time.Duration(float64(interval) * revalidateJitter)
	d := interval - spread
	if spread > 0 {
		d += rand.N(2*spread + 1)
	}
	return max(d, time.Millisecond)
}
