package storetest

import (
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Tickets checks an implementation of [tollgate.TicketStore]. newStore is
// called once per subtest, possibly concurrently, and returns an empty store.
// Tickets expire a minute after the wall clock's now, so that stores with
// their own expiry (Redis TTLs) keep them for the length of a subtest.
func Tickets(t *testing.T, newStore func(t *testing.T) tollgate.TicketStore) {
	t.Helper()

	// ticket returns a fresh ticket that lives one minute from now.
	ticket := func() tollgate.Ticket {
		now := nowMilli()
		return tollgate.Ticket{Hash: tollgate.HashTicket(tollgate.Secret(rand.Text())), UserID: "u-1", UserName: "alice",
			SessionID: "s-1", Admin: true, Origin: "https://chat.example.com",
			CredentialExpiresAt: now.Add(15 * time.Minute), ExpiresAt: now.Add(time.Minute)}
	}

	t.Run("put and redeem once", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		want := ticket()
		noErr(t, "Put", s.Put(ctx, want))
		got, err := s.Redeem(ctx, want.Hash, want.ExpiresAt.Add(-time.Millisecond))
		noErr(t, "Redeem", err)
		sameTicket(t, got, want)
		_, err = s.Redeem(ctx, want.Hash, nowMilli())
		wantErr(t, "second Redeem", err, tollgate.ErrNotFound)
	})

	t.Run("fields survive, empty ones too", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		want := ticket()
		want.Origin, want.Admin, want.SessionID, want.CredentialExpiresAt = "", false, "", time.Time{}
		noErr(t, "Put", s.Put(ctx, want))
		got, err := s.Redeem(ctx, want.Hash, nowMilli())
		noErr(t, "Redeem", err)
		sameTicket(t, got, want)
	})

	t.Run("unknown ticket", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		noErr(t, "Put", s.Put(ctx, ticket()))
		_, err := s.Redeem(ctx, ticket().Hash, nowMilli())
		wantErr(t, "Redeem unknown", err, tollgate.ErrNotFound)
		_, err = s.Redeem(ctx, tollgate.TicketHash{}, nowMilli())
		wantErr(t, "Redeem zero hash", err, tollgate.ErrNotFound)
	})

	t.Run("expired ticket", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name  string
			after time.Duration // now - ExpiresAt
		}{
			{"at ExpiresAt", 0},
			{"just after", time.Millisecond},
			{"long after", time.Hour},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx, s := testContext(t), newStore(t)
				tk := ticket()
				noErr(t, "Put", s.Put(ctx, tk))
				_, err := s.Redeem(ctx, tk.Hash, tk.ExpiresAt.Add(tc.after))
				wantErr(t, "Redeem expired", err, tollgate.ErrNotFound)
				// The attempt consumed it: expiry is checked on the removed ticket.
				_, err = s.Redeem(ctx, tk.Hash, nowMilli())
				wantErr(t, "Redeem after the expired attempt", err, tollgate.ErrNotFound)
			})
		}
	})

	t.Run("64 concurrent redeems: exactly one wins", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		tk := ticket()
		noErr(t, "Put", s.Put(ctx, tk))
		const n = 64
		var won, notFound atomic.Int32
		Parallel(n, func(int) {
			got, err := s.Redeem(ctx, tk.Hash, nowMilli())
			switch {
			case err == nil:
				won.Add(1)
				if got.UserID != tk.UserID {
					t.Errorf("winner got ticket of %q", got.UserID)
				}
			case errors.Is(err, tollgate.ErrNotFound):
				notFound.Add(1)
			default:
				t.Errorf("Redeem: %v", err)
			}
		})
		if won.Load() != 1 || notFound.Load() != n-1 {
			t.Fatalf("%d redeems won, %d not found; want 1 and %d", won.Load(), notFound.Load(), n-1)
		}
	})

	t.Run("many tickets raced: each redeemed once", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		const tickets, racers = 100, 4
		all := make([]tollgate.Ticket, tickets)
		for i := range all {
			all[i] = ticket()
			noErr(t, "Put", s.Put(ctx, all[i]))
		}
		var wins [tickets]atomic.Int32
		Parallel(tickets*racers, func(i int) {
			tk := all[i%tickets]
			_, err := s.Redeem(ctx, tk.Hash, nowMilli())
			switch {
			case err == nil:
				wins[i%tickets].Add(1)
			case !errors.Is(err, tollgate.ErrNotFound):
				t.Errorf("Redeem: %v", err)
			}
		})
		for i := range wins {
			if w := wins[i].Load(); w != 1 {
				t.Errorf("ticket %d redeemed %d times", i, w)
			}
		}
	})
}

func sameTicket(t *testing.T, got, want tollgate.Ticket) {
	t.Helper()
	if got.Hash != want.Hash || got.UserID != want.UserID || got.UserName != want.UserName ||
		got.SessionID != want.SessionID || got.Admin != want.Admin || got.Origin != want.Origin ||
		!sameTime(got.CredentialExpiresAt, want.CredentialExpiresAt) || !sameTime(got.ExpiresAt, want.ExpiresAt) {
		t.Fatalf("ticket = %+v, want %+v", got, want)
	}
}
