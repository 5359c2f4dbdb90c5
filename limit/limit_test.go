package limit_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/config"
	"github.com/tollgate-ws/tollgate/limit"
	"github.com/tollgate-ws/tollgate/memory"
)

func TestDefaultsMatchConfig(t *testing.T) {
	t.Parallel()
	d := config.Defaults()
	got := limit.New(limit.Config{}, memory.NewRateCounter(), memory.NewBlocklist(), nil, nil).Config()
	want := limit.Config{
		PublishRate: d.PublishRate, PublishWindow: d.PublishWindow, AnonPublishRate: d.AnonPublishRate,
		BlockViolations: d.BlockViolations, BlockWindow: d.BlockWindow, BlockDuration: d.BlockDuration,
		FailedAuthBlock: d.FailedAuthBlock, LoginRate: d.LoginRate, LoginWindow: d.LoginWindow,
		HandshakeRate: d.HandshakeRate, HandshakeWindow: d.HandshakeWindow,
		MaxSocketsPerUser: d.MaxSocketsPerUser, MaxSocketsPerIP: d.MaxSocketsPerIP, MaxSockets: d.MaxSockets,
		SocketRetryAfter: limit.DefaultSocketRetryAfter, StoreTimeout: limit.DefaultStoreTimeout,
	}
	got.Logger, got.Now = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", got, want)
	}
}

func TestNewNeedsStores(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"counter": func() { limit.New(limit.Config{}, nil, memory.NewBlocklist(), nil, nil) },
		"blocks":  func() { limit.New(limit.Config{}, memory.NewRateCounter(), nil, nil, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New without %s did not panic", name)
				}
			}()
			f()
		}()
	}
}

// TestPublishRate is the contract's example: 10 publishes per user per 60 s,
// the 11th refused with a retry_after that lets it through when waited.
func TestPublishRate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	n, err := e.publishes(t, alice, ipA, 10)
	if n != 10 {
		t.Fatalf("%d publishes let through, want 10", n)
	}
	// At t0+1s: the window is full; the next publish is let through 6 s into
	// the next window, when 9/10 of this one is still weighed in.
	wantRetry(t, "11th publish", err, 65*time.Second)
	te := wantCode(t, "11th publish", err, tollgate.CodeRateLimited)
	if te.Code.CloseCode() != 0 {
		t.Error("rate_limited closes the socket")
	}
	if got := e.audit.of(tollgate.AuditRateLimited); len(got) != 1 ||
		got[0].User != alice.UserID || got[0].IP != ipA.IP || got[0].Origin != ipA.Origin ||
		got[0].Credential != alice.Credential || got[0].Reason != "publish" || !got[0].TS.Equal(t0.Add(time.Second)) {
		t.Fatalf("rate_limited audit = %+v", got)
	}
	// Other users have their own count.
	if n, _ := e.publishes(t, bob, ipA, 10); n != 10 {
		t.Fatalf("bob: %d publishes let through, want 10", n)
	}
	// One second short of retry_after: still refused.
	e.clock.Add(64 * time.Second)
	wantRetry(t, "a second early", e.l.AllowPublish(ctx, alice, ipA), time.Second)
	e.clock.Add(time.Second)
	if err := e.l.AllowPublish(ctx, alice, ipA); err != nil {
		t.Fatalf("publish after retry_after: %v", err)
	}
	// Refusals cost nothing: after the window, the count is what was served.
	if len(e.control.all()) != 0 || len(e.audit.of(tollgate.AuditBlocked)) != 0 {
		t.Fatal("two violations blocked")
	}
}

func TestPublishSlidingWindow(t *testing.T) {
	t.Parallel()
	type burst struct {
		at time.Duration // after t0
		n  int
	}
	for _, tc := range []struct {
		name    string
		rate    int
		window  time.Duration
		before  []burst
		at      time.Duration
		allowed int
		retry   time.Duration
	}{
		{"fresh", 10, 0, nil, 0, 10, 66 * time.Second},
		{"11th within the minute", 10, 0, []burst{{time.Second, 10}}, 59 * time.Second, 0, 7 * time.Second},
		{"previous window weighs fully at its end", 10, 0, []burst{{0, 10}}, 60 * time.Second, 0, 6 * time.Second},
		{"half way through the next window", 10, 0, []burst{{0, 10}}, 90 * time.Second, 5, 6 * time.Second},
		{"two windows later, all forgotten", 10, 0, []burst{{0, 10}}, 120 * time.Second, 10, 66 * time.Second},
		{"spread over the window", 10, 0, []burst{{0, 5}, {30 * time.Second, 5}}, 45 * time.Second, 0, 21 * time.Second},
		{"rate one", 1, 0, []burst{{0, 1}}, 0, 0, 120 * time.Second},
		{"ten-second window, retry rounded up", 3, 10 * time.Second, []burst{{0, 3}}, 10 * time.Second, 0, 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, limit.Config{PublishRate: tc.rate, PublishWindow: tc.window, BlockViolations: 1000})
			for _, b := range tc.before {
				e.clock.Set(t0.Add(b.at))
				for i := range b.n {
					if err := e.l.AllowPublish(context.Background(), alice, ipA); err != nil {
						t.Fatalf("setup publish %d at %v: %v", i, b.at, err)
					}
				}
			}
			e.clock.Set(t0.Add(tc.at))
			n, err := e.publishes(t, alice, ipA, tc.rate)
			if n != tc.allowed {
				t.Errorf("%d publishes let through, want %d", n, tc.allowed)
			}
			wantRetry(t, "refusal", err, tc.retry)
		})
	}
}

func TestPublishAnonymousPerIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	if n, _ := e.publishes(t, anon1, ipA, 5); n != 5 {
		t.Fatalf("anonymous: %d publishes let through, want AnonPublishRate 5", n)
	}
	// A new anonymous identity from the same IP shares the count.
	wantCode(t, "another anonymous principal, same IP", e.l.AllowPublish(ctx, anon2, ipA), tollgate.CodeRateLimited)
	// Another IP has its own count.
	if n, _ := e.publishes(t, anon1, ipB, 5); n != 5 {
		t.Fatalf("anonymous, other IP: %d publishes, want 5", n)
	}
	// A registered user from the same IP is counted by user, with PublishRate.
	if n, _ := e.publishes(t, alice, ipA, 10); n != 10 {
		t.Fatalf("user from the anonymous IP: %d publishes, want 10", n)
	}

	e2 := newEnv(t, limit.Config{AnonPublishRate: 2})
	if n, _ := e2.publishes(t, anon1, ipA, 2); n != 2 {
		t.Fatalf("AnonPublishRate 2: %d publishes", n)
	}
}

func TestViolationsBlockUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	now := t0.Add(time.Second)
	if n, _ := e.publishes(t, alice, ipA, 10); n != 10 {
		t.Fatal("setup")
	}
	// The 10 served publishes were followed by one refusal; three more are
	// rate_limited, the fifth blocks.
	for i := range 3 {
		wantCode(t, fmt.Sprint("refusal ", i+2), e.l.AllowPublish(ctx, alice, ipA), tollgate.CodeRateLimited)
	}
	if len(e.control.all()) != 0 {
		t.Fatal("blocked before the fifth violation")
	}
	te := wantCode(t, "fifth violation", e.l.AllowPublish(ctx, alice, ipA), tollgate.CodeBlocked)
	if te.Code.CloseCode() != tollgate.ClosePolicy || te.RetryAfter != time.Hour {
		t.Fatalf("blocked: close %d, RetryAfter %v", te.Code.CloseCode(), te.RetryAfter)
	}
	if got := e.control.all(); len(got) != 1 || got[0] != (tollgate.ControlEvent{Kind: tollgate.ControlBlockUser,
		Target: alice.UserID, Code: tollgate.CodeBlocked, At: now}) {
		t.Fatalf("control events = %+v", got)
	}
	if got := e.audit.of(tollgate.AuditRateLimited); len(got) != 5 {
		t.Fatalf("%d rate_limited audit events, want 5", len(got))
	}
	if got := e.audit.of(tollgate.AuditBlocked); len(got) != 1 || got[0].User != alice.UserID || got[0].IP != ipA.IP ||
		got[0].Reason != limit.ReasonViolations || !got[0].TS.Equal(now) {
		t.Fatalf("blocked audit = %+v", got)
	}
	list, err := e.l.List(ctx)
	if err != nil || len(list) != 1 || list[0] != (tollgate.Block{Kind: tollgate.BlockUser, Target: alice.UserID,
		Name: alice.Name, Reason: limit.ReasonViolations, CreatedAt: now, Until: now.Add(time.Hour)}) {
		t.Fatalf("List = %+v, %v", list, err)
	}

	// Blocked: every publish, and the entry points, until the block ends.
	e.clock.Add(30 * time.Minute)
	te = wantCode(t, "publish while blocked", e.l.AllowPublish(ctx, alice, ipA), tollgate.CodeBlocked)
	if te.RetryAfter != 30*time.Minute {
		t.Errorf("RetryAfter while blocked = %v, want 30m", te.RetryAfter)
	}
	wantCode(t, "CheckBlocked(user)", e.l.CheckBlocked(ctx, alice.UserID, ""), tollgate.CodeBlocked)
	wantCode(t, "CheckBlocked(user, other IP)", e.l.CheckBlocked(ctx, alice.UserID, ipB.IP), tollgate.CodeBlocked)
	if err := e.l.CheckBlocked(ctx, bob.UserID, ipA.IP); err != nil {
		t.Fatalf("a user block blocked the IP: %v", err)
	}
	if err := e.l.AllowPublish(ctx, bob, ipA); err != nil {
		t.Fatalf("bob from the same IP: %v", err)
	}
	if n := len(e.audit.of(tollgate.AuditRateLimited)); n != 5 {
		t.Fatalf("publishes while blocked were audited as rate_limited: %d", n)
	}

	// Unblock lets back in.
	if ok, err := e.l.Unblock(ctx, tollgate.BlockUser, alice.UserID); !ok || err != nil {
		t.Fatalf("Unblock = %v, %v", ok, err)
	}
	if got := e.audit.of(tollgate.AuditUnblocked); len(got) != 1 || got[0].User != alice.UserID {
		t.Fatalf("unblocked audit = %+v", got)
	}
	if err := e.l.CheckBlocked(ctx, alice.UserID, ipA.IP); err != nil {
		t.Fatalf("CheckBlocked after Unblock: %v", err)
	}
	if err := e.l.AllowPublish(ctx, alice, ipA); err != nil {
		t.Fatalf("publish after Unblock: %v", err)
	}
}

func TestBlockEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{BlockViolations: 1, BlockDuration: 10 * time.Minute})
	ctx := context.Background()
	e.publishes(t, bob, ipB, 10)
	wantCode(t, "publish", e.l.AllowPublish(ctx, bob, ipB), tollgate.CodeBlocked)
	e.clock.Add(10*time.Minute - time.Second)
	wantCode(t, "a second before the end", e.l.CheckBlocked(ctx, bob.UserID, ""), tollgate.CodeBlocked)
	e.clock.Add(time.Second)
	if err := e.l.AllowPublish(ctx, bob, ipB); err != nil {
		t.Fatalf("publish after the block: %v", err)
	}
}

func TestViolationsBlockAnonymousIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	e.publishes(t, anon1, ipA, 5) // and the first violation
	for range 3 {
		wantCode(t, "refusal", e.l.AllowPublish(ctx, anon2, ipA), tollgate.CodeRateLimited)
	}
	wantCode(t, "fifth violation", e.l.AllowPublish(ctx, anon1, ipA), tollgate.CodeBlocked)
	if got := e.control.all(); len(got) != 1 || got[0].Kind != tollgate.ControlBlockIP || got[0].Target != ipA.IP ||
		got[0].Code != tollgate.CodeBlocked {
		t.Fatalf("control events = %+v", got)
	}
	if got := e.audit.of(tollgate.AuditBlocked); len(got) != 1 || got[0].IP != ipA.IP {
		t.Fatalf("blocked audit = %+v", got)
	}
	list, _ := e.l.List(ctx)
	if len(list) != 1 || list[0].Kind != tollgate.BlockIP || list[0].Target != ipA.IP || list[0].Name != "" {
		t.Fatalf("List = %+v", list)
	}
	// The IP is blocked, for every principal; the anonymous ids are not.
	for _, p := range []tollgate.Principal{anon1, anon2, alice} {
		wantCode(t, p.Name+" from the blocked IP", e.l.AllowPublish(ctx, p, ipA), tollgate.CodeBlocked)
	}
	wantCode(t, "CheckBlocked(ip)", e.l.CheckBlocked(ctx, "", ipA.IP), tollgate.CodeBlocked)
	if err := e.l.AllowPublish(ctx, anon1, ipB); err != nil {
		t.Fatalf("the anonymous id from another IP: %v", err)
	}
}

func TestViolationsOutsideBlockWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	refuse := func(n int) {
		t.Helper()
		for range n {
			wantCode(t, "refusal", e.l.AllowPublish(ctx, alice, ipA), tollgate.CodeRateLimited)
		}
	}
	e.publishes(t, alice, ipA, 10)
	refuse(3) // four violations
	e.clock.Add(20 * time.Minute)
	e.publishes(t, alice, ipA, 10)
	refuse(3) // four more, two block windows later
	if len(e.control.all()) != 0 {
		t.Fatal("violations two block windows apart added up")
	}
	wantCode(t, "fifth violation within the window", e.l.AllowPublish(ctx, alice, ipA), tollgate.CodeBlocked)
}

func TestConcurrentPublishes(t *testing.T) {
	t.Parallel()
	t.Run("one user", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, limit.Config{})
		var allowed, limited, blocked atomic.Int32
		parallel(64, func(int) {
			err := e.l.AllowPublish(context.Background(), alice, ipA)
			switch tollgate.ErrorCode(err) {
			case "":
				allowed.Add(1)
			case tollgate.CodeRateLimited:
				limited.Add(1)
			case tollgate.CodeBlocked:
				blocked.Add(1)
			default:
				t.Errorf("AllowPublish: %v", err)
			}
		})
		if allowed.Load() != 10 || blocked.Load() == 0 || allowed.Load()+limited.Load()+blocked.Load() != 64 {
			t.Fatalf("allowed %d, rate_limited %d, blocked %d; want 10 allowed and a block",
				allowed.Load(), limited.Load(), blocked.Load())
		}
		for _, c := range e.control.all() {
			if c.Kind != tollgate.ControlBlockUser || c.Target != alice.UserID {
				t.Fatalf("control event %+v", c)
			}
		}
		wantCode(t, "CheckBlocked", e.l.CheckBlocked(context.Background(), alice.UserID, ""), tollgate.CodeBlocked)
	})
	t.Run("many users", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, limit.Config{})
		parallel(32, func(i int) {
			p := tollgate.Principal{UserID: fmt.Sprint("u-", i), Name: fmt.Sprint("user", i)}
			for range 10 {
				if err := e.l.AllowPublish(context.Background(), p, ipA); err != nil {
					t.Errorf("AllowPublish %s: %v", p.UserID, err)
				}
			}
		})
		if n := len(e.audit.of(tollgate.AuditRateLimited)); n != 0 {
			t.Fatalf("%d refusals", n)
		}
	})
}

func TestCheckBlocked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	if err := e.l.CheckBlocked(ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Block(ctx, tollgate.BlockIP, ipA.IP, "", "abuse", 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Block(ctx, tollgate.BlockUser, bob.UserID, bob.Name, "", 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, ip string
		want     tollgate.Code
		retry    time.Duration
	}{
		{"", ipA.IP, tollgate.CodeBlocked, 2 * time.Hour},
		{alice.UserID, ipA.IP, tollgate.CodeBlocked, 2 * time.Hour},
		{alice.UserID, ipB.IP, "", 0},
		{bob.UserID, "", tollgate.CodeBlocked, time.Hour},
		{bob.UserID, ipB.IP, tollgate.CodeBlocked, time.Hour},
		{"", ipB.IP, "", 0},
	} {
		err := e.l.CheckBlocked(ctx, tc.user, tc.ip)
		if tollgate.ErrorCode(err) != tc.want {
			t.Errorf("CheckBlocked(%q, %q) = %v, want %q", tc.user, tc.ip, err, tc.want)
			continue
		}
		if err != nil {
			if te := tollgate.AsError(err); te.RetryAfter != tc.retry || te.Code.HTTPStatus() != 403 {
				t.Errorf("CheckBlocked(%q, %q): RetryAfter %v (want %v), status %d", tc.user, tc.ip, te.RetryAfter, tc.retry, te.Code.HTTPStatus())
			}
		}
	}
	e.clock.Add(2 * time.Hour)
	if err := e.l.CheckBlocked(ctx, bob.UserID, ipA.IP); err != nil {
		t.Fatalf("after the blocks ended: %v", err)
	}
}

func TestFailedAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	for i := range 19 {
		if err := e.l.FailedAuth(ctx, ipA.IP); err != nil {
			t.Fatal(err)
		}
		if err := e.l.CheckBlocked(ctx, "", ipA.IP); err != nil {
			t.Fatalf("blocked after %d failures: %v", i+1, err)
		}
	}
	if err := e.l.FailedAuth(ctx, ipA.IP); err != nil {
		t.Fatal(err)
	}
	te := wantCode(t, "after 20 failures", e.l.CheckBlocked(ctx, "", ipA.IP), tollgate.CodeBlocked)
	if te.RetryAfter != time.Hour {
		t.Errorf("RetryAfter = %v", te.RetryAfter)
	}
	if got := e.control.all(); len(got) != 1 || got[0].Kind != tollgate.ControlBlockIP || got[0].Target != ipA.IP {
		t.Fatalf("control events = %+v", got)
	}
	if got := e.audit.of(tollgate.AuditBlocked); len(got) != 1 || got[0].IP != ipA.IP || got[0].Reason != limit.ReasonFailedAuth {
		t.Fatalf("blocked audit = %+v", got)
	}
	if err := e.l.CheckBlocked(ctx, "", ipB.IP); err != nil {
		t.Fatalf("another IP: %v", err)
	}
	if err := e.l.FailedAuth(ctx, ""); err != nil {
		t.Fatalf("FailedAuth without an IP: %v", err)
	}
	e.clock.Add(time.Hour)
	if err := e.l.CheckBlocked(ctx, "", ipA.IP); err != nil {
		t.Fatalf("after BlockDuration: %v", err)
	}
}

func TestFailedAuthConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{FailedAuthBlock: 5})
	parallel(50, func(int) {
		if err := e.l.FailedAuth(context.Background(), ipB.IP); err != nil {
			t.Errorf("FailedAuth: %v", err)
		}
	})
	wantCode(t, "CheckBlocked", e.l.CheckBlocked(context.Background(), "", ipB.IP), tollgate.CodeBlocked)
	if len(e.control.all()) == 0 {
		t.Fatal("no control event")
	}
}

func TestAllowLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{LoginRate: 3})
	ctx := context.Background()
	for i := range 3 {
		if err := e.l.AllowLogin(ctx, ipA.IP, "alice"); err != nil {
			t.Fatalf("login %d: %v", i+1, err)
		}
	}
	// At t0+1s with 3 of 3 used: 20 s into the next window.
	wantRetry(t, "4th login from the IP", e.l.AllowLogin(ctx, ipA.IP, "someone"), 79*time.Second)
	// Per username, case folded, whatever the IP.
	wantRetry(t, "Alice from another IP", e.l.AllowLogin(ctx, ipB.IP, "Alice"), 79*time.Second)
	// That refusal cost the other IP nothing: it still has 3.
	for _, name := range []string{"bob", "carol", ""} {
		if err := e.l.AllowLogin(ctx, ipB.IP, name); err != nil {
			t.Fatalf("login %q from the other IP: %v", name, err)
		}
	}
	wantCode(t, "4th from the other IP", e.l.AllowLogin(ctx, ipB.IP, "dave"), tollgate.CodeRateLimited)
	for range 5 {
		wantCode(t, "hammering", e.l.AllowLogin(ctx, ipA.IP, "x"), tollgate.CodeRateLimited)
	}
	// Audited once per key and window: IP A, username alice, IP B.
	if got := e.audit.of(tollgate.AuditRateLimited); len(got) != 3 {
		t.Fatalf("%d rate_limited audit events, want 3: %+v", len(got), got)
	} else if got[0].IP != ipA.IP || got[0].Reason != "login" {
		t.Fatalf("audit = %+v", got[0])
	}
	// Refusals are not failures: no block.
	if err := e.l.CheckBlocked(ctx, "", ipA.IP); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(79 * time.Second)
	if err := e.l.AllowLogin(ctx, ipA.IP, "zed"); err != nil {
		t.Fatalf("login after retry_after: %v", err)
	}
}

func TestAllowHandshake(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	for i := range 60 {
		if err := e.l.AllowHandshake(ctx, ipA.IP); err != nil {
			t.Fatalf("handshake %d: %v", i+1, err)
		}
	}
	err := e.l.AllowHandshake(ctx, ipA.IP)
	wantRetry(t, "61st handshake", err, 60*time.Second)
	if tollgate.ErrorCode(err).HTTPStatus() != 429 {
		t.Fatal("not a 429")
	}
	if err := e.l.AllowHandshake(ctx, ipB.IP); err != nil {
		t.Fatalf("another IP: %v", err)
	}
	e.clock.Add(59 * time.Second)
	wantCode(t, "a second early", e.l.AllowHandshake(ctx, ipA.IP), tollgate.CodeRateLimited)
	e.clock.Add(time.Second)
	if err := e.l.AllowHandshake(ctx, ipA.IP); err != nil {
		t.Fatalf("after retry_after: %v", err)
	}
	// Audited once per window: the 61st, and the refusal a window later.
	if got := e.audit.of(tollgate.AuditRateLimited); len(got) != 2 || got[0].Reason != "handshake" || got[0].IP != ipA.IP {
		t.Fatalf("audit = %+v", got)
	}
}

func TestConcurrentHandshakes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{HandshakeRate: 20})
	var allowed atomic.Int32
	parallel(100, func(int) {
		switch err := e.l.AllowHandshake(context.Background(), ipA.IP); tollgate.ErrorCode(err) {
		case "":
			allowed.Add(1)
		case tollgate.CodeRateLimited:
		default:
			t.Errorf("AllowHandshake: %v", err)
		}
	})
	if allowed.Load() != 20 {
		t.Fatalf("%d handshakes let through, want 20", allowed.Load())
	}
}

func TestAdminBlock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{})
	ctx := context.Background()
	now := e.clock.Now()
	b, err := e.l.Block(ctx, tollgate.BlockUser, bob.UserID, bob.Name, "", 0)
	if err != nil || b != (tollgate.Block{Kind: tollgate.BlockUser, Target: bob.UserID, Name: bob.Name,
		Reason: limit.ReasonAdmin, CreatedAt: now, Until: now.Add(time.Hour)}) {
		t.Fatalf("Block = %+v, %v", b, err)
	}
	b, err = e.l.Block(ctx, tollgate.BlockIP, "::ffff:192.0.2.9", "ignored", "spam", 2*time.Hour)
	if err != nil || b.Target != "192.0.2.9" || b.Name != "" || b.Reason != "spam" || !b.Until.Equal(now.Add(2*time.Hour)) {
		t.Fatalf("Block(ip) = %+v, %v", b, err)
	}
	if got := e.control.all(); len(got) != 2 ||
		got[0] != (tollgate.ControlEvent{Kind: tollgate.ControlBlockUser, Target: bob.UserID, Code: tollgate.CodeBlocked, At: now}) ||
		got[1] != (tollgate.ControlEvent{Kind: tollgate.ControlBlockIP, Target: "192.0.2.9", Code: tollgate.CodeBlocked, At: now}) {
		t.Fatalf("control events = %+v", got)
	}
	if got := e.audit.of(tollgate.AuditBlocked); len(got) != 2 || got[0].User != bob.UserID || got[0].Reason != "admin" ||
		got[1].IP != "192.0.2.9" || got[1].Reason != "spam" {
		t.Fatalf("blocked audit = %+v", got)
	}
	for _, tc := range []struct {
		kind   tollgate.BlockKind
		target string
	}{{"host", "x"}, {tollgate.BlockIP, "not-an-ip"}, {tollgate.BlockIP, ""}, {tollgate.BlockUser, ""}} {
		if _, err := e.l.Block(ctx, tc.kind, tc.target, "", "", 0); tollgate.ErrorCode(err) != tollgate.CodeInvalidRequest {
			t.Errorf("Block(%q, %q) = %v, want invalid_request", tc.kind, tc.target, err)
		}
		if _, err := e.l.Unblock(ctx, tc.kind, tc.target); tollgate.ErrorCode(err) != tollgate.CodeInvalidRequest {
			t.Errorf("Unblock(%q, %q) = %v, want invalid_request", tc.kind, tc.target, err)
		}
	}
	list, err := e.l.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if ok, err := e.l.Unblock(ctx, tollgate.BlockIP, "::ffff:192.0.2.9"); !ok || err != nil {
		t.Fatalf("Unblock = %v, %v", ok, err)
	}
	if ok, err := e.l.Unblock(ctx, tollgate.BlockIP, "192.0.2.9"); ok || err != nil {
		t.Fatalf("second Unblock = %v, %v", ok, err)
	}
	if got := e.audit.of(tollgate.AuditUnblocked); len(got) != 1 || got[0].IP != "192.0.2.9" {
		t.Fatalf("unblocked audit = %+v", got)
	}
}

func TestStoreDownFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	wantUnavailable := func(t *testing.T, what string, err error) {
		t.Helper()
		te := wantCode(t, what, err, tollgate.CodeUnavailable)
		if te.ClientMessage() != tollgate.CodeUnavailable.Message() {
			t.Errorf("%s: client message %q leaks the cause", what, te.ClientMessage())
		}
	}
	t.Run("counter", func(t *testing.T) {
		t.Parallel()
		l := limit.New(limit.Config{}, failCounter{}, memory.NewBlocklist(), nil, nil)
		wantUnavailable(t, "AllowPublish", l.AllowPublish(ctx, alice, ipA))
		wantUnavailable(t, "AllowPublish anonymous", l.AllowPublish(ctx, anon1, ipA))
		wantUnavailable(t, "AllowLogin", l.AllowLogin(ctx, ipA.IP, "alice"))
		wantUnavailable(t, "AllowHandshake", l.AllowHandshake(ctx, ipA.IP))
		err := l.FailedAuth(ctx, ipA.IP)
		wantUnavailable(t, "FailedAuth", err)
		if !errors.Is(err, tollgate.ErrUnavailable) {
			t.Error("the cause is lost")
		}
	})
	t.Run("blocklist", func(t *testing.T) {
		t.Parallel()
		l := limit.New(limit.Config{}, memory.NewRateCounter(), failBlocklist{}, nil, nil)
		wantUnavailable(t, "CheckBlocked", l.CheckBlocked(ctx, alice.UserID, ipA.IP))
		wantUnavailable(t, "CheckBlocked(ip)", l.CheckBlocked(ctx, "", ipA.IP))
		wantUnavailable(t, "AllowPublish", l.AllowPublish(ctx, alice, ipA))
		_, err := l.Block(ctx, tollgate.BlockUser, "u", "", "", 0)
		wantUnavailable(t, "Block", err)
		_, err = l.Unblock(ctx, tollgate.BlockUser, "u")
		wantUnavailable(t, "Unblock", err)
		_, err = l.List(ctx)
		wantUnavailable(t, "List", err)
		if !errors.Is(err, errDown) {
			t.Error("the cause is lost")
		}
		// With a failing blocklist FailedAuth still counts, and reports
		// the block it could not store.
		l2 := limit.New(limit.Config{FailedAuthBlock: 1}, memory.NewRateCounter(), failBlocklist{}, nil, nil)
		wantUnavailable(t, "FailedAuth", l2.FailedAuth(ctx, ipA.IP))
	})
	t.Run("control", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, limit.Config{BlockViolations: 1})
		e.control.fail = true
		b, err := e.l.Block(ctx, tollgate.BlockUser, bob.UserID, "", "", 0)
		wantUnavailable(t, "Block with the broker down", err)
		if b.Target != bob.UserID {
			t.Fatalf("Block returned %+v", b)
		}
		// The block is stored all the same.
		wantCode(t, "CheckBlocked", e.l.CheckBlocked(ctx, bob.UserID, ""), tollgate.CodeBlocked)
		// An automatic block still refuses the publish that caused it.
		e.publishes(t, alice, ipA, 10)
		wantCode(t, "publish", e.l.AllowPublish(ctx, alice, ipA), tollgate.CodeBlocked)
	})
}

func TestContextCarriesConnID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, limit.Config{PublishRate: 1})
	ctx := tollgate.NewContextWithConnID(context.Background(), "c-42")
	_ = e.l.AllowPublish(ctx, alice, ipA)
	_ = e.l.AllowPublish(ctx, alice, ipA)
	if got := e.audit.of(tollgate.AuditRateLimited); len(got) != 1 || got[0].ConnID != "c-42" {
		t.Fatalf("audit = %+v", got)
	}
}

func BenchmarkAllowPublish(b *testing.B) {
	ctx := context.Background()
	b.Run("users/allowed", func(b *testing.B) {
		l := limit.New(limit.Config{PublishRate: 1 << 30}, memory.NewRateCounter(), memory.NewBlocklist(), nil, nil)
		var seq atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			p := tollgate.Principal{UserID: fmt.Sprint("u-", seq.Add(1))}
			c := tollgate.ClientInfo{IP: "192.0.2.1"}
			for pb.Next() {
				if err := l.AllowPublish(ctx, p, c); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("one user/refused", func(b *testing.B) {
		l := limit.New(limit.Config{BlockViolations: 1 << 30}, memory.NewRateCounter(), memory.NewBlocklist(), nil, nil)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = l.AllowPublish(ctx, alice, ipA)
			}
		})
	})
}
