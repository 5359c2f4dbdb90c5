package redis

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate-ws/tollgate/internal/testenv"
)

// The two ways Redis can carry room messages between nodes, measured the
// same way: one publisher, one subscribing node, one message in flight,
// ns/op is the round trip from send to receipt (docs/decisions.md, "Room
// fan-out between nodes").

func benchClient(b *testing.B) *goredis.Client {
	b.Helper()
	opt, err := goredis.ParseURL(testenv.Redis(b))
	if err != nil {
		b.Fatal(err)
	}
	c := goredis.NewClient(opt)
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkTransportPubSub: PUBLISH, received by a SUBSCRIBE connection.
func BenchmarkTransportPubSub(b *testing.B) {
	ctx := context.Background()
	c := benchClient(b)
	ch := testPrefix() + "room"
	sub := c.Subscribe(ctx, ch)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		b.Fatal(err)
	}
	msgs := sub.Channel()
	payload := make([]byte, 200)
	b.ResetTimer()
	for b.Loop() {
		if err := c.Publish(ctx, ch, payload).Err(); err != nil {
			b.Fatal(err)
		}
		select {
		case <-msgs:
		case <-time.After(5 * time.Second):
			b.Fatal("no message")
		}
	}
}

// BenchmarkTransportStream: XADD (capped with MAXLEN ~), received by a
// blocking XREAD from the last id.
func BenchmarkTransportStream(b *testing.B) {
	ctx := context.Background()
	pub, sub := benchClient(b), benchClient(b)
	key := testPrefix() + "stream"
	b.Cleanup(func() { pub.Del(context.Background(), key) })
	payload := make([]byte, 200)
	last := "$"
	b.ResetTimer()
	for b.Loop() {
		got := make(chan string, 1)
		go func() {
			res, err := sub.XRead(ctx, &goredis.XReadArgs{Streams: []string{key, last}, Count: 1, Block: 5 * time.Second}).Result()
			if err != nil || len(res) == 0 || len(res[0].Messages) == 0 {
				got <- ""
				return
			}
			got <- res[0].Messages[0].ID
		}()
		// XREAD with "$" must be waiting before the XADD; a short head start
		// is not reliable, so after the first round read from the last id.
		if last == "$" {
			time.Sleep(10 * time.Millisecond)
		}
		if err := pub.XAdd(ctx, &goredis.XAddArgs{Stream: key, MaxLen: 10000, Approx: true, Values: []any{"m", payload}}).Err(); err != nil {
			b.Fatal(err)
		}
		id := <-got
		if id == "" {
			b.Fatal("no stream entry")
		}
		last = id
	}
}
