package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/memory"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ticketAt(i int, expires time.Time) tollgate.Ticket {
	return tollgate.Ticket{Hash: tollgate.HashTicket(tollgate.Secret(fmt.Sprintf("ticket-%d", i))), UserID: "u-1", ExpiresAt: expires}
}

func TestTicketStorePurge(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memory.NewTicketStore()
	for i := range 10 {
		// Tickets 0..4 expire at t0+0..4s, 5..9 an hour later.
		exp := t0.Add(time.Duration(i) * time.Second)
		if i >= 5 {
			exp = t0.Add(time.Hour)
		}
		if err := s.Put(ctx, ticketAt(i, exp)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		now        time.Time
		purged, ok int
	}{
		{t0.Add(-time.Second), 0, 10},
		{t0, 1, 9}, // at ExpiresAt counts as expired
		{t0.Add(2500 * time.Millisecond), 2, 7},
		{t0.Add(time.Minute), 2, 5},
		{t0.Add(time.Minute), 0, 5},
		{t0.Add(time.Hour), 5, 0},
	} {
		if n := s.Purge(tc.now); n != tc.purged {
			t.Errorf("Purge(%v) = %d, want %d", tc.now, n, tc.purged)
		}
		if n := s.Len(); n != tc.ok {
			t.Errorf("after Purge(%v): Len = %d, want %d", tc.now, n, tc.ok)
		}
	}
}

func TestTicketStoreRedeemRemovesExpired(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := memory.NewTicketStore()
	tk := ticketAt(1, t0)
	if err := s.Put(ctx, tk); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Redeem(ctx, tk.Hash, t0); !errors.Is(err, tollgate.ErrNotFound) {
		t.Fatalf("Redeem at ExpiresAt: %v", err)
	}
	if n := s.Len(); n != 0 {
		t.Fatalf("Len after redeeming an expired ticket = %d", n)
	}
}

func TestTicketStoreMaxTickets(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := &memory.TicketStore{MaxTickets: 3}
	for i := range 3 {
		if err := s.Put(ctx, ticketAt(i, t0.Add(time.Duration(i+1)*time.Second))); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Put(ctx, ticketAt(3, t0.Add(time.Hour)))
	if !errors.Is(err, tollgate.ErrUnavailable) {
		t.Fatalf("Put beyond MaxTickets: %v, want ErrUnavailable", err)
	}
	if tollgate.ErrorCode(err) != tollgate.CodeUnavailable {
		t.Errorf("ErrorCode = %q", tollgate.ErrorCode(err))
	}
	// Replacing a held ticket does not grow the store.
	if err := s.Put(ctx, ticketAt(0, t0.Add(time.Hour))); err != nil {
		t.Fatalf("replacing a ticket at the bound: %v", err)
	}
	// Purging and redeeming make room again.
	if n := s.Purge(t0.Add(2 * time.Second)); n != 1 {
		t.Fatalf("Purge = %d, want 1", n)
	}
	if err := s.Put(ctx, ticketAt(3, t0.Add(time.Hour))); err != nil {
		t.Fatalf("Put after Purge: %v", err)
	}
	if _, err := s.Redeem(ctx, ticketAt(0, time.Time{}).Hash, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, ticketAt(4, t0.Add(time.Hour))); err != nil {
		t.Fatalf("Put after Redeem: %v", err)
	}
}

func TestTicketStoreDefaultBound(t *testing.T) {
	t.Parallel()
	if memory.DefaultMaxTickets != 1_000_000 {
		t.Fatalf("DefaultMaxTickets = %d", memory.DefaultMaxTickets)
	}
}

func TestTicketStoreRun(t *testing.T) {
	t.Parallel()
	purged := make(chan struct{})
	var calls atomic.Int32
	s := memory.NewTicketStore()
	// The clock reports every Purge: the janitor's only call to Now.
	s.Now = func() time.Time {
		if calls.Add(1) == 1 {
			close(purged)
		}
		return t0.Add(time.Hour)
	}
	if err := s.Put(t.Context(), ticketAt(1, t0)); err != nil {
		t.Fatal(err)
	}
	checkJanitor(t, func(ctx context.Context) { s.Run(ctx, time.Millisecond) }, purged, s.Len)
}

func TestTicketStoreContextEnded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	s := memory.NewTicketStore()
	if err := s.Put(ctx, ticketAt(1, t0)); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with an ended context: %v", err)
	}
	if _, err := s.Redeem(ctx, ticketAt(1, t0).Hash, t0); !errors.Is(err, context.Canceled) {
		t.Errorf("Redeem with an ended context: %v", err)
	}
}

func BenchmarkTicketStore(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	exp := now.Add(30 * time.Second)
	b.Run("PutRedeem", func(b *testing.B) {
		s := memory.NewTicketStore()
		var h tollgate.TicketHash
		i := uint64(0)
		for b.Loop() {
			i++
			putUint64(&h, i)
			if err := s.Put(ctx, tollgate.Ticket{Hash: h, UserID: "u-1", ExpiresAt: exp}); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Redeem(ctx, h, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PutRedeemParallel", func(b *testing.B) {
		s := memory.NewTicketStore()
		var seq atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			var h tollgate.TicketHash
			h[31] = byte(seq.Add(1)) // one key space per goroutine
			i := uint64(0)
			for pb.Next() {
				i++
				putUint64(&h, i)
				if err := s.Put(ctx, tollgate.Ticket{Hash: h, UserID: "u-1", ExpiresAt: exp}); err != nil {
					b.Error(err)
					return
				}
				if _, err := s.Redeem(ctx, h, now); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func putUint64(h *tollgate.TicketHash, v uint64) {
	for i := range 8 {
		h[i] = byte(v >> (8 * i))
	}
}

// checkJanitor runs a store's purge loop until purged says it ran, then
// checks that the loop returns once its context ends and that the store is
// empty.
func checkJanitor(t *testing.T, run func(context.Context), purged <-chan struct{}, size func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); run(ctx) }()
	select {
	case <-purged:
	case <-time.After(10 * time.Second):
		t.Fatal("the janitor did not run")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n := size(); n != 0 {
		t.Errorf("Len after the janitor ran = %d, want 0", n)
	}
}
