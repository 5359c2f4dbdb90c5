package limit

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestCompareEstimate(t *testing.T) {
	t.Parallel()
	const w = time.Minute
	for _, tc := range []struct {
		name             string
		prev, cur, limit int64
		e                time.Duration
		want             int
	}{
		{"empty", 0, 0, 10, 0, -1},
		{"at the limit in one window", 0, 10, 10, 30 * time.Second, 0},
		{"over the limit in one window", 0, 11, 10, 59 * time.Second, 1},
		{"previous window counts fully at the start", 10, 1, 10, 0, 1},
		{"previous window weighs 9/10 at 6s", 10, 1, 10, 6 * time.Second, 0},
		{"just before 6s", 10, 1, 10, 6*time.Second - time.Nanosecond, 1},
		{"half of the previous window at 30s", 10, 5, 10, 30 * time.Second, 0},
		{"half plus one", 10, 6, 10, 30 * time.Second, 1},
		{"previous window almost gone", 10, 10, 10, w - time.Nanosecond, 1},
		{"negative counts read as zero", -5, -1, 0, 0, 0},
		{"huge counts do not overflow", 1 << 62, 1 << 62, 1 << 62, 0, 1},
		{"huge limit", 1 << 62, 0, 1<<62 + 1, 0, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := compareEstimate(tc.prev, tc.cur, tc.limit, w, tc.e); got != tc.want {
				t.Fatalf("compareEstimate(%d, %d, %d, %v) = %d, want %d", tc.prev, tc.cur, tc.limit, tc.e, got, tc.want)
			}
		})
	}
}

func TestRetryWait(t *testing.T) {
	t.Parallel()
	const w = time.Minute
	for _, tc := range []struct {
		name             string
		prev, cur, limit int64 // cur: without the refused attempt
		e                time.Duration
		want             time.Duration
	}{
		{"full window at its start: the next window's 6th second", 0, 10, 10, 0, 66 * time.Second},
		{"full window one second in", 0, 10, 10, time.Second, 65 * time.Second},
		{"full previous window at the start", 10, 0, 10, 0, 6 * time.Second},
		{"half way, half used", 10, 5, 10, 30 * time.Second, 6 * time.Second},
		{"rate one: the window after next", 0, 1, 1, 0, 2 * w},
		{"rate one, previous used", 1, 0, 1, 15 * time.Second, 45 * time.Second},
		{"already allowed", 0, 3, 10, 0, 0},
		{"already allowed by the weighting", 10, 0, 10, 6 * time.Second, 0},
		{"one short of the weighting", 10, 1, 10, 6 * time.Second, 6 * time.Second},
		{"over the limit in this window", 4, 12, 10, 10 * time.Second, 50*time.Second + 15*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := retryWait(tc.prev, tc.cur, tc.limit, w, tc.e); got != tc.want {
				t.Fatalf("retryWait(%d, %d, %d, %v) = %v, want %v", tc.prev, tc.cur, tc.limit, tc.e, got, tc.want)
			}
		})
	}
}

// TestRetryWaitIsExact checks, on random inputs, that retryWait names the
// first instant at which one more event is let through: allowed then, and
// refused a nanosecond before.
func TestRetryWaitIsExact(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	// allowedAfter reports whether one more event is let through dt after e,
	// no other event being counted meanwhile.
	allowedAfter := func(prev, cur, limit int64, w, e, dt time.Duration) bool {
		at := e + dt
		switch {
		case at < w:
			return compareEstimate(prev, cur+1, limit, w, at) <= 0
		case at < 2*w:
			return compareEstimate(cur, 1, limit, w, at-w) <= 0
		default:
			return compareEstimate(0, 1, limit, w, at-2*w) <= 0
		}
	}
	for range 20000 {
		w := time.Duration(1+rng.IntN(3600)) * time.Second
		if rng.IntN(4) == 0 {
			w += time.Duration(rng.IntN(1000)) * time.Millisecond
		}
		limit := int64(1 + rng.IntN(100))
		prev := int64(rng.IntN(int(2 * limit)))
		cur := int64(rng.IntN(int(2*limit + 1)))
		e := time.Duration(rng.Int64N(int64(w)))
		got := retryWait(prev, cur, limit, w, e)
		if !allowedAfter(prev, cur, limit, w, e, got) {
			t.Fatalf("retryWait(%d, %d, %d, %v, %v) = %v: still refused then", prev, cur, limit, w, e, got)
		}
		if got > 0 && allowedAfter(prev, cur, limit, w, e, got-1) {
			t.Fatalf("retryWait(%d, %d, %d, %v, %v) = %v: allowed a nanosecond earlier", prev, cur, limit, w, e, got)
		}
	}
}

func TestElapsed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		now  time.Time
		w    time.Duration
		want time.Duration
	}{
		{time.Unix(120, 0), time.Minute, 0},
		{time.Unix(179, 5), time.Minute, 59*time.Second + 5},
		{time.Unix(-1, 0), time.Minute, 59 * time.Second},
		{time.Unix(-60, 0), time.Minute, 0},
		{time.Date(2026, 1, 1, 0, 10, 30, 0, time.UTC), 10 * time.Minute, 30 * time.Second},
		{time.Date(2026, 1, 1, 0, 10, 30, 0, time.FixedZone("x", 3600+1800)), 10 * time.Minute, 30 * time.Second},
	} {
		if got := elapsed(tc.now, tc.w); got != tc.want {
			t.Errorf("elapsed(%v, %v) = %v, want %v", tc.now, tc.w, got, tc.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want time.Duration }{
		{0, time.Second},
		{-time.Hour, time.Second},
		{time.Nanosecond, time.Second},
		{time.Second, time.Second},
		{time.Second + time.Nanosecond, 2 * time.Second},
		{65 * time.Second, 65 * time.Second},
		{65*time.Second + 500*time.Millisecond, 66 * time.Second},
		{time.Hour - time.Millisecond, time.Hour},
	} {
		if got := retryAfter(tc.in); got != tc.want {
			t.Errorf("retryAfter(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestNameKey(t *testing.T) {
	t.Parallel()
	if nameKey("Alice") != nameKey("alice") {
		t.Error("usernames are not case folded")
	}
	long := string(make([]byte, 10_000))
	if k := nameKey(long); len(k) > maxKeyName {
		t.Errorf("key of a long username has %d bytes", len(k))
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	if got := truncate("héllo", 2); got != "h" {
		t.Errorf("truncate cut a rune: %q", got)
	}
	if got := truncate("abc", 5); got != "abc" {
		t.Errorf("truncate = %q", got)
	}
}
