package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

func benchDB(b *testing.B, synchronous string) *DB {
	b.Helper()
	db, err := open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), options{synchronous: synchronous})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}

// BenchmarkAppend measures Append with both synchronous settings (see
// Synchronous): one room, 1,000 rooms round-robin, and 1,000 rooms from
// parallel goroutines (which queue on the one writer connection).
func BenchmarkAppend(b *testing.B) {
	text := strings.Repeat("x", 100)
	for _, sync := range []string{"FULL", "NORMAL"} {
		b.Run("sync="+sync+"/one-room", func(b *testing.B) {
			db := benchDB(b, sync)
			ctx := context.Background()
			for b.Loop() {
				if _, _, err := db.Append(ctx, tollgate.Message{Room: "general", UserID: "u-1", UserName: "alice", Text: text, TS: time.Now()}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("sync="+sync+"/many-rooms", func(b *testing.B) {
			db := benchDB(b, sync)
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
		b.Run("sync="+sync+"/many-rooms-parallel", func(b *testing.B) {
			db := benchDB(b, sync)
			ctx := context.Background()
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					m := tollgate.Message{Room: fmt.Sprintf("room-%d", i%1000), UserID: "u-1", UserName: "alice", Text: text,
						ClientID: fmt.Sprintf("c-%d", i), TS: time.Now()}
					if _, _, err := db.Append(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkHistory measures History(since, 50) on a room of 2,000 messages
// (100-byte texts), sequentially and from parallel goroutines on the reader
// pool.
func BenchmarkHistory(b *testing.B) {
	db := benchDB(b, "NORMAL") // the fill only; reads do not depend on it
	ctx := context.Background()
	const n = 2000
	text := strings.Repeat("x", 100)
	for i := range n {
		if _, _, err := db.Append(ctx, tollgate.Message{Room: "general", UserID: "u-1", UserName: "alice", Text: text,
			ClientID: fmt.Sprint(i), TS: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("limit=50", func(b *testing.B) {
		i := int64(0)
		for b.Loop() {
			i = (i + 50) % (n - 50)
			h, err := db.History(ctx, "general", i, 50)
			if err != nil || len(h) != 50 {
				b.Fatalf("History: %d messages, %v", len(h), err)
			}
		}
	})
	b.Run("limit=50-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := int64(0)
			for pb.Next() {
				i = (i + 50) % (n - 50)
				h, err := db.History(ctx, "general", i, 50)
				if err != nil || len(h) != 50 {
					b.Errorf("History: %d messages, %v", len(h), err)
					return
				}
			}
		})
	})
}
