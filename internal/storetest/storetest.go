package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// caseTimeout bounds every store call of one subtest, so that a deadlocked
// implementation fails the test instead of hanging it.
const caseTimeout = 60 * time.Second

// waitTimeout bounds every wait for an asynchronous delivery.
const waitTimeout = 10 * time.Second

// testContext returns a context that ends with the subtest or after
// caseTimeout.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	t.Cleanup(cancel)
	return ctx
}

// baseTime is a fixed instant with millisecond precision; suites derive every
// stored time from it (or from now truncated to milliseconds where a store
// could compare with its own clock, as Redis TTLs do).
var baseTime = time.UnixMilli(1_767_225_600_000).UTC() // 2026-01-01T00:00:00Z

// nowMilli is the current time truncated to milliseconds, in UTC.
func nowMilli() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// wantErr fails t unless err wraps target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want one wrapping %q", what, err, target)
	}
}

// noErr fails t if err is not nil.
func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sameTime reports whether a and b are the same instant, both zero counting
// as the same.
func sameTime(a, b time.Time) bool { return a.Equal(b) || (a.IsZero() && b.IsZero()) }

// ids returns n distinct ids with the prefix p.
func ids(p string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", p, i)
	}
	return out
}

// Parallel runs f n times concurrently, released together, and waits for
// all. Adapter tests use it for their own concurrency checks too.
func Parallel(n int, f func(i int)) {
	start := make(chan struct{})
	done := make(chan struct{}, n)
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			f(i)
		}()
	}
	close(start)
	for range n {
		<-done
	}
}
