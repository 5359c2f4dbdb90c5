package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// BenchmarkAppend measures Append (one statement: room bump and insert):
// one room, 1,000 rooms round-robin, and both from parallel goroutines (one
// room: they queue on the room's row lock; many rooms: they do not).
func BenchmarkAppend(b *testing.B) {
	text := strings.Repeat("x", 100)
	b.Run("one-room", func(b *testing.B) {
		db := openTemp(b)
		ctx := context.Background()
		for b.Loop() {
			if _, _, err := db.Append(ctx, tollgate.Message{Room: "general", UserID: "u-1", UserName: "alice", Text: text, TS: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("many-rooms", func(b *testing.B) {
		db := openTemp(b)
		ctx := context.Background()
		i := 0
		for b.Loop() {
			i++
			m := tollgate.Message{Room: fmt.Sprintf("room-%d", i%1000), UserID: "u-1", UserName: "alice", Text: text,
				ClientID: fmt.Sprintf("c-%d", i), TS: time.Now()}
			if _, _, err := db.Append(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, rooms := range []int{1, 1000} {
		b.Run(fmt.Sprintf("parallel-rooms=%d", rooms), func(b *testing.B) {
			db := openTemp(b)
			ctx := context.Background()
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					m := tollgate.Message{Room: fmt.Sprintf("room-%d", i%int64(rooms)), UserID: "u-1", UserName: "alice",
						Text: text, ClientID: fmt.Sprintf("c-%d", i), TS: time.Now()}
					if _, _, err := db.Append(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
