package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// RateCounter checks an implementation of [tollgate.RateCounter]. newCounter
// is called once per subtest, possibly concurrently, and returns an empty
// counter. Every count falls in a window that starts after the wall clock's
// now (the next one, and those after it), so that counters with their own
// expiry (Redis TTLs) keep the windows for the length of a subtest. Window
// lengths are whole seconds, and each key is counted with one window length.
//
// Beyond the interface's words, the suite pins down what limiters rely on:
// n may be 0 (read the counts) or negative (take back a refused attempt, at
// the same now as the count it takes back, which may by then lie in the
// previous window of the key).
func RateCounter(t *testing.T, newCounter func(t *testing.T) tollgate.RateCounter) {
	t.Helper()

	t.Run("counts add up within a window", func(t *testing.T) {
		t.Parallel()
		ctx, c := testContext(t), newCounter(t)
		w := time.Minute
		base := nextWindow(w)
		incr(ctx, t, c, "k", 1, w, base).want(t, 1, 0)
		incr(ctx, t, c, "k", 1, w, base.Add(30*time.Second)).want(t, 2, 0)
		incr(ctx, t, c, "k", 3, w, base.Add(w-time.Millisecond)).want(t, 5, 0)
	})

	t.Run("the next window reports the one before", func(t *testing.T) {
		t.Parallel()
		ctx, c := testContext(t), newCounter(t)
		w := time.Minute
		base := nextWindow(w)
		for i := range 3 {
			incr(ctx, t, c, "k", 1, w, base.Add(time.Duration(i)*time.Second)).want(t, int64(i+1), 0)
		}
		incr(ctx, t, c, "k", 1, w, base.Add(w)).want(t, 1, 3)
		incr(ctx, t, c, "k", 1, w, base.Add(2*w-time.Millisecond)).want(t, 2, 3)
		incr(ctx, t, c, "k", 1, w, base.Add(2*w)).want(t, 1, 2)
	})

	t.Run("a window two lengths on starts from nothing", func(t *testing.T) {
		t.Parallel()
		ctx, c := testContext(t), newCounter(t)
		w := time.Minute
		base := nextWindow(w)
		incr(ctx, t, c, "k", 4, w, base).want(t, 4, 0)
		incr(ctx, t, c, "k", 1, w, base.Add(2*w)).want(t, 1, 0)
		incr(ctx, t, c, "k", 1, w, base.Add(5*w+time.Second)).want(t, 1, 0)
	})

	t.Run("windows start at multiples of their length since the epoch", func(t *testing.T) {
		t.Parallel()
		for _, w := range []time.Duration{time.Second, 10 * time.Second, 7 * time.Second, time.Hour} {
			t.Run(w.String(), func(t *testing.T) {
				t.Parallel()
				ctx, c := testContext(t), newCounter(t)
				start := nextWindow(w).Add(w) // a boundary at least one window after now
				if start.UnixMilli()%w.Milliseconds() != 0 {
					t.Fatalf("test bug: %v is not a multiple of %v", start, w)
				}
				incr(ctx, t, c, "k", 1, w, start.Add(-time.Millisecond)).want(t, 1, 0)
				incr(ctx, t, c, "k", 1, w, start).want(t, 1, 1)
				incr(ctx, t, c, "k", 1, w, start.Add(w-time.Millisecond)).want(t, 2, 1)
				incr(ctx, t, c, "k", 1, w, start.Add(w)).want(t, 1, 2)
			})
		}
	})

	t.Run("n of zero reads, a negative n takes back", func(t *testing.T) {
		t.Parallel()
		ctx, c := testContext(t), newCounter(t)
		w := time.Minute
		base := nextWindow(w)
		incr(ctx, t, c, "k", 0, w, base).want(t, 0, 0)
		incr(ctx, t, c, "k", 2, w, base).want(t, 2, 0)
		incr(ctx, t, c, "k", 0, w, base.Add(time.Second)).want(t, 2, 0)
		incr(ctx, t, c, "k", -1, w, base.Add(time.Second)).want(t, 1, 0)
		incr(ctx, t, c, "k", 0, w, base.Add(w)).want(t, 0, 1)
	})

	t.Run("a late count lands in the previous window", func(t *testing.T) {
		t.Parallel()
		ctx, c := testContext(t), newCounter(t)
		w := time.Minute
		base := nextWindow(w)
		for range 3 {
			incr(ctx, t, c, "k", 1, w, base)
		}
		incr(ctx, t, c, "k", 1, w, base.Add(w)).want(t, 1, 3)
		// A refusal at base is taken back after another call moved on.
		got := incr(ctx, t, c, "k", -1, w, base.Add(w-time.Millisecond))
		if got.cur != 2 {
			t.Fatalf("late Incr: current = %d, want 2", got.cur)
		}
		incr(ctx, t, c, "k", 0, w, base.Add(w)).want(t, 1, 2)
	})

	t.Run("keys are separate", func(t *testing.T) {
		t.Parallel()
		ctx, c := testContext(t), newCounter(t)
		w := time.Minute
		base := nextWindow(w)
		keys := []string{"publish:user:u-1", "publish:user:u-10", "publish:ip:2001:db8::1", "publish:ip:192.0.2.1", "a", "a:b", "a b", "ключ"}
		for i, k := range keys {
			incr(ctx, t, c, k, int64(i+1), w, base).want(t, int64(i+1), 0)
		}
		for i, k := range keys {
			incr(ctx, t, c, k, 0, w, base).want(t, int64(i+1), 0)
		}
	})

	t.Run("64 concurrent counters each see a distinct count", func(t *testing.T) {
		t.Parallel()
		ctx, c := testContext(t), newCounter(t)
		w := time.Minute
		base := nextWindow(w)
		const goroutines, each = 64, 8
		seen := make([][]int64, goroutines)
		Parallel(goroutines, func(g int) {
			for range each {
				cur, prev, err := c.Incr(ctx, "hot", 1, w, base)
				if err != nil {
					t.Errorf("Incr: %v", err)
					return
				}
				if prev != 0 {
					t.Errorf("Incr: previous = %d, want 0", prev)
				}
				seen[g] = append(seen[g], cur)
			}
		})
		all := slices.Sorted(slices.Values(slices.Concat(seen...)))
		if len(all) != goroutines*each {
			t.Fatalf("%d counts returned, want %d", len(all), goroutines*each)
		}
		for i, v := range all {
			if v != int64(i+1) {
				t.Fatalf("returned counts are not 1..%d: position %d holds %d", goroutines*each, i, v)
			}
		}
	})

	t.Run("concurrent keys", func(t *testing.T) {
		t.Parallel()
		ctx, c := testContext(t), newCounter(t)
		w := time.Minute
		base := nextWindow(w)
		keys := ids("key", 100)
		Parallel(len(keys)*4, func(i int) {
			if _, _, err := c.Incr(ctx, keys[i%len(keys)], 1, w, base); err != nil {
				t.Errorf("Incr: %v", err)
			}
		})
		for _, k := range keys {
			incr(ctx, t, c, k, 0, w, base).want(t, 4, 0)
		}
	})
}

// counts is what one Incr returned.
type counts struct{ cur, prev int64 }

func (c counts) want(t *testing.T, cur, prev int64) {
	t.Helper()
	if c.cur != cur || c.prev != prev {
		t.Fatalf("Incr = (current %d, previous %d), want (%d, %d)", c.cur, c.prev, cur, prev)
	}
}

// incr calls Incr and fails t on an error.
func incr(ctx context.Context, t *testing.T, c tollgate.RateCounter, key string, n int64, w time.Duration, now time.Time) counts {
	t.Helper()
	cur, prev, err := c.Incr(ctx, key, n, w, now)
	noErr(t, "Incr", err)
	return counts{cur, prev}
}

// nextWindow returns the start of the first window of length w that begins
// after the wall clock's now.
func nextWindow(w time.Duration) time.Time {
	ms, wm := nowMilli().UnixMilli(), w.Milliseconds()
	return time.UnixMilli((ms/wm + 1) * wm).UTC()
}
