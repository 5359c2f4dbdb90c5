package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/internal/storetest"
	"github.com/tollgate-ws/tollgate/memory"
)

func TestRateCounter(t *testing.T) {
	t.Parallel()
	storetest.RateCounter(t, func(*testing.T) tollgate.RateCounter { return memory.NewRateCounter() })
}

func TestRateCounterZeroValue(t *testing.T) {
	t.Parallel()
	storetest.RateCounter(t, func(*testing.T) tollgate.RateCounter { return new(memory.RateCounter) })
}

func TestRateCounterSharded(t *testing.T) {
	t.Parallel()
	// A bound large enough for several shards.
	storetest.RateCounter(t, func(*testing.T) tollgate.RateCounter { return &memory.RateCounter{MaxKeys: 10_000} })
}

func TestBlocklist(t *testing.T) {
	t.Parallel()
	storetest.Blocklist(t, func(*testing.T) tollgate.Blocklist { return memory.NewBlocklist() })
}

func TestBlocklistZeroValue(t *testing.T) {
	t.Parallel()
	storetest.Blocklist(t, func(*testing.T) tollgate.Blocklist { return new(memory.Blocklist) })
}

func TestRateCounterPurge(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := memory.NewRateCounter()
	w := time.Minute
	for i := range 10 {
		// Keys 0..4 are counted in the window at t0, 5..9 a window later.
		at := t0
		if i >= 5 {
			at = t0.Add(w)
		}
		if _, _, err := c.Incr(ctx, fmt.Sprint("k", i), 1, w, at); err != nil {
			t.Fatal(err)
		}
	}
	// A key counted with an hour window outlives the minute ones.
	if _, _, err := c.Incr(ctx, "long", 1, time.Hour, t0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now        time.Time
		purged, ok int
	}{
		{t0, 0, 11},
		{t0.Add(2*w - time.Nanosecond), 0, 11}, // the previous window still counts
		{t0.Add(2 * w), 5, 6},
		{t0.Add(3 * w), 5, 1},
		{t0.Add(2 * time.Hour), 1, 0},
	} {
		if n := c.Purge(tc.now); n != tc.purged {
			t.Errorf("Purge(%v) = %d, want %d", tc.now, n, tc.purged)
		}
		if n := c.Len(); n != tc.ok {
			t.Errorf("after Purge(%v): Len = %d, want %d", tc.now, n, tc.ok)
		}
	}
}

func TestRateCounterEvictsLeastRecentlyCounted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	w := time.Minute
	c := &memory.RateCounter{MaxKeys: 3}
	for _, k := range []string{"a", "b", "c"} {
		if _, _, err := c.Incr(ctx, k, 5, w, t0); err != nil {
			t.Fatal(err)
		}
	}
	// Counting "a" again makes "b" the least recently counted.
	if _, _, err := c.Incr(ctx, "a", 1, w, t0); err != nil {
		t.Fatal(err)
	}
	if cur, _, err := c.Incr(ctx, "d", 1, w, t0); err != nil || cur != 1 {
		t.Fatalf("Incr(d) = %d, %v", cur, err)
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("Len = %d, want the bound 3", n)
	}
	for k, want := range map[string]int64{"a": 6, "c": 5, "d": 1} {
		if cur, _, err := c.Incr(ctx, k, 0, w, t0); err != nil || cur != want {
			t.Errorf("%s: count %d, %v; want %d", k, cur, err, want)
		}
	}
	// "b" was evicted: it starts again (and evicts another key).
	if cur, _, err := c.Incr(ctx, "b", 1, w, t0); err != nil || cur != 1 {
		t.Errorf("b after eviction: count %d, %v; want 1", cur, err)
	}
	if n := c.Len(); n != 3 {
		t.Fatalf("Len = %d, want the bound 3", n)
	}
}

func TestRateCounterBoundUnderConcurrency(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	for _, limit := range []int{1, 100, 5000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			t.Parallel()
			c := &memory.RateCounter{MaxKeys: limit}
			var next atomic.Int64
			storetest.Parallel(16, func(int) {
				for range 1000 {
					k := fmt.Sprint("key-", next.Add(1))
					if _, _, err := c.Incr(ctx, k, 1, time.Minute, t0); err != nil {
						t.Error(err)
						return
					}
				}
			})
			if n := c.Len(); n > limit || n == 0 {
				t.Fatalf("Len = %d after 16000 keys, want 1..%d", n, limit)
			}
		})
	}
}

func TestRateCounterOldCall(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := memory.NewRateCounter()
	w := time.Minute
	if _, _, err := c.Incr(ctx, "k", 2, w, t0.Add(5*w)); err != nil {
		t.Fatal(err)
	}
	// Older than the previous window: counted alone, not kept.
	if cur, prev, err := c.Incr(ctx, "k", 1, w, t0); err != nil || cur != 1 || prev != 0 {
		t.Fatalf("old Incr = %d, %d, %v; want 1, 0", cur, prev, err)
	}
	if cur, prev, err := c.Incr(ctx, "k", 0, w, t0.Add(5*w)); err != nil || cur != 2 || prev != 0 {
		t.Fatalf("Incr = %d, %d, %v; want 2, 0", cur, prev, err)
	}
	// Before the epoch, windows still start at multiples of w.
	old := time.Unix(-90, 0)
	if cur, prev, err := c.Incr(ctx, "pre-epoch", 1, w, old); err != nil || cur != 1 || prev != 0 {
		t.Fatalf("Incr before 1970 = %d, %d, %v", cur, prev, err)
	}
	if cur, prev, err := c.Incr(ctx, "pre-epoch", 1, w, time.Unix(-60, 0)); err != nil || cur != 1 || prev != 1 {
		t.Fatalf("Incr at -60s = %d, %d, %v; want a new window after [-120s, -60s)", cur, prev, err)
	}
}

func TestRateCounterErrors(t *testing.T) {
	t.Parallel()
	c := memory.NewRateCounter()
	if _, _, err := c.Incr(t.Context(), "k", 1, 0, t0); err == nil {
		t.Error("Incr with a zero window succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := c.Incr(ctx, "k", 1, time.Minute, t0); !errors.Is(err, context.Canceled) {
		t.Errorf("Incr with an ended context: %v", err)
	}
}

func TestRateCounterRun(t *testing.T) {
	t.Parallel()
	purged := make(chan struct{})
	var calls atomic.Int32
	c := memory.NewRateCounter()
	c.Now = func() time.Time {
		if calls.Add(1) == 1 {
			close(purged)
		}
		return t0.Add(time.Hour)
	}
	if _, _, err := c.Incr(t.Context(), "k", 1, time.Minute, t0); err != nil {
		t.Fatal(err)
	}
	checkJanitor(t, func(ctx context.Context) { c.Run(ctx, time.Millisecond) }, purged, c.Len)
}

func TestBlocklistForgetsExpired(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	l := memory.NewBlocklist()
	for i := range 4 {
		b := tollgate.Block{Kind: tollgate.BlockIP, Target: fmt.Sprint("192.0.2.", i), CreatedAt: t0,
			Until: t0.Add(time.Duration(i+1) * time.Minute)}
		if err := l.Block(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, _ := l.Blocked(ctx, tollgate.BlockIP, "192.0.2.0", t0.Add(time.Minute)); ok {
		t.Fatal("blocked at Until")
	}
	if n := l.Len(); n != 3 {
		t.Fatalf("Len after Blocked met an expired block = %d, want 3", n)
	}
	if list, _ := l.List(ctx, t0.Add(2*time.Minute)); len(list) != 2 {
		t.Fatalf("List = %+v", list)
	}
	if n := l.Len(); n != 2 {
		t.Fatalf("Len after List = %d, want 2", n)
	}
	if n := l.Purge(t0.Add(time.Hour)); n != 2 || l.Len() != 0 {
		t.Fatalf("Purge = %d, Len = %d", n, l.Len())
	}
}

func TestBlocklistMaxBlocks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := t0
	l := &memory.Blocklist{MaxBlocks: 2, Now: func() time.Time { return now }}
	blk := func(target string, d time.Duration) tollgate.Block {
		return tollgate.Block{Kind: tollgate.BlockUser, Target: target, CreatedAt: t0, Until: t0.Add(d)}
	}
	if err := l.Block(ctx, blk("a", time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := l.Block(ctx, blk("b", time.Hour)); err != nil {
		t.Fatal(err)
	}
	err := l.Block(ctx, blk("c", time.Hour))
	if !errors.Is(err, tollgate.ErrUnavailable) || tollgate.ErrorCode(err) != tollgate.CodeUnavailable {
		t.Fatalf("Block beyond MaxBlocks: %v, want ErrUnavailable", err)
	}
	// Replacing a held block does not need room.
	if err := l.Block(ctx, blk("b", 2*time.Hour)); err != nil {
		t.Fatalf("replacing at the bound: %v", err)
	}
	// Once "a" has expired, Block makes room by forgetting it.
	now = t0.Add(time.Minute)
	if err := l.Block(ctx, blk("c", time.Hour)); err != nil {
		t.Fatalf("Block after a block expired: %v", err)
	}
	if n := l.Len(); n != 2 {
		t.Fatalf("Len = %d, want 2", n)
	}
}

func TestBlocklistUnblockUsesNow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	now := t0
	l := &memory.Blocklist{Now: func() time.Time { return now }}
	b := tollgate.Block{Kind: tollgate.BlockUser, Target: "u-1", CreatedAt: t0, Until: t0.Add(time.Hour)}
	for _, tc := range []struct {
		at   time.Time
		want bool
	}{{t0, true}, {t0.Add(time.Hour), false}} {
		if err := l.Block(ctx, b); err != nil {
			t.Fatal(err)
		}
		now = tc.at
		if ok, err := l.Unblock(ctx, b.Kind, b.Target); err != nil || ok != tc.want {
			t.Errorf("Unblock at %v = %v, %v; want %v", tc.at, ok, err, tc.want)
		}
		if l.Len() != 0 {
			t.Error("Unblock left the block")
		}
	}
}

func TestBlocklistContextEnded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	l := memory.NewBlocklist()
	if err := l.Block(ctx, tollgate.Block{Kind: tollgate.BlockUser, Target: "u"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Block: %v", err)
	}
	if _, err := l.Unblock(ctx, tollgate.BlockUser, "u"); !errors.Is(err, context.Canceled) {
		t.Errorf("Unblock: %v", err)
	}
	if _, _, err := l.Blocked(ctx, tollgate.BlockUser, "u", t0); !errors.Is(err, context.Canceled) {
		t.Errorf("Blocked: %v", err)
	}
	if _, err := l.List(ctx, t0); !errors.Is(err, context.Canceled) {
		t.Errorf("List: %v", err)
	}
}

func BenchmarkRateCounterParallel(b *testing.B) {
	ctx := context.Background()
	c := memory.NewRateCounter()
	var seq atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprint("user-", seq.Add(1))
		now := time.Now()
		for pb.Next() {
			if _, _, err := c.Incr(ctx, key, 1, time.Minute, now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
