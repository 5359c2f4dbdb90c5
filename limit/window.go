package limit

import (
	"math/bits"
	"time"
)

// The sliding-window estimate.
//
// A [tollgate.RateCounter] counts events in fixed windows of length w that
// start at multiples of w since the Unix epoch. At elapsed time e into the
// current window, the events of the last w are estimated as
//
//	prev × (w − e) / w + cur
//
// where cur is the current window's count and prev the previous window's:
// the previous window's events are taken as spread evenly over it, and the
// part of it still inside the last w is weighted in. The estimate never lets
// more than limit events through in a window, and at most 2 × limit in any
// span of length w (a client that bunches its events around a boundary).
//
// The arithmetic is exact: it works in nanoseconds with 128-bit products, so
// boundaries (the 11th publish of 10, the moment retry_after names) do not
// depend on floating-point rounding.

// compareEstimate compares the estimate prev × (w − e) / w + cur with limit
// and returns −1, 0 or +1 as it is below, equal to or above limit. Negative
// counts (a store that took back more than it counted) are read as 0; e is
// clamped to [0, w).
func compareEstimate(prev, cur, limit int64, w, e time.Duration) int {
	prev, cur, limit = max(prev, 0), max(cur, 0), max(limit, 0)
	e = min(max(e, 0), w-1)
	lhs := add128(mul128(uint64(prev), uint64(w-e)), mul128(uint64(cur), uint64(w)))
	return cmp128(lhs, mul128(uint64(limit), uint64(w)))
}

// retryWait returns how long after elapsed time e into the current window one
// more event is let through by limit, if no other event is counted
// meanwhile. cur is the current window's count without the refused event.
// It returns 0 when one more event is let through now.
func retryWait(prev, cur, limit int64, w, e time.Duration) time.Duration {
	prev, cur, limit = max(prev, 0), max(cur, 0), max(limit, 1)
	e = min(max(e, 0), w-1)
	// In this window: the first e' with prev × (w − e') ≤ (limit − cur − 1) × w,
	// that is e' = w − ⌊(limit − cur − 1) × w / prev⌋.
	if a := limit - cur - 1; a >= 0 {
		if prev == 0 {
			return 0
		}
		at := w - scaledQuotient(a, w, prev)
		if at <= e {
			return 0
		}
		return at - e
	}
	// In the next window, where prev is cur and nothing is counted yet: the
	// first e'' with cur × (w − e'') ≤ (limit − 1) × w. Here cur ≥ limit ≥ 1.
	at := w - scaledQuotient(limit-1, w, cur)
	return (w - e) + at
}

// scaledQuotient returns min(⌊a × w / d⌋, w) for a ≥ 0 and d > 0.
func scaledQuotient(a int64, w time.Duration, d int64) time.Duration {
	hi, lo := bits.Mul64(uint64(a), uint64(w))
	if hi >= uint64(d) {
		return w // the quotient does not fit in 64 bits: far above w
	}
	q, _ := bits.Div64(hi, lo, uint64(d))
	if q > uint64(w) {
		return w
	}
	return time.Duration(q)
}

// elapsed returns how far now lies into its window of length w, windows
// starting at multiples of w since the Unix epoch, as a RateCounter counts.
func elapsed(now time.Time, w time.Duration) time.Duration {
	r := now.UnixNano() % int64(w)
	if r < 0 {
		r += int64(w)
	}
	return time.Duration(r)
}

// retryAfter rounds a wait up to whole seconds, at least one: the contract's
// retry_after and Retry-After are in seconds, and a client that waits what
// they say must be let through.
func retryAfter(d time.Duration) time.Duration {
	if d <= time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

type uint128 struct{ hi, lo uint64 }

func mul128(a, b uint64) uint128 {
	hi, lo := bits.Mul64(a, b)
	return uint128{hi, lo}
}

func add128(x, y uint128) uint128 {
	lo, carry := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, carry)
	return uint128{hi, lo}
}

func cmp128(x, y uint128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}
