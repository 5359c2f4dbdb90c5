package redis

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// BenchmarkTicketPutRedeem measures one ticket's life on Redis: Put (SET NX
// PX) then Redeem (GETDEL), two round trips, from one goroutine and from
// parallel goroutines sharing the client's pool.
func BenchmarkTicketPutRedeem(b *testing.B) {
	c := openTest(b, "", Options{})
	ctx := context.Background()
	newTicket := func() tollgate.Ticket {
		now := time.Now()
		return tollgate.Ticket{Hash: tollgate.HashTicket(tollgate.Secret(rand.Text())), UserID: "u-1", UserName: "alice",
			SessionID: "s-1", Origin: "https://chat.example.com", CredentialExpiresAt: now.Add(15 * time.Minute),
			ExpiresAt: now.Add(30 * time.Second)}
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			tk := newTicket()
			if err := c.Put(ctx, tk); err != nil {
				b.Fatal(err)
			}
			if _, err := c.Redeem(ctx, tk.Hash, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tk := newTicket()
				if err := c.Put(ctx, tk); err != nil {
					b.Error(err)
					return
				}
				if _, err := c.Redeem(ctx, tk.Hash, time.Now()); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkIncr measures one rate count (one Lua script call).
func BenchmarkIncr(b *testing.B) {
	c := openTest(b, "", Options{})
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := c.Incr(ctx, "publish:user:u-1", 1, time.Minute, time.Now()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
