package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/memory"
)

// benchConn is a member that encodes each delivery the way a protocol does
// (once per message, shared by all members) and counts what it received.
type benchConn struct {
	id   string
	got  *sync.WaitGroup
	seen atomic.Int64
}

type encKey struct{}

func (c *benchConn) ID() string { return c.id }
func (c *benchConn) Principal() tollgate.Principal {
	return tollgate.Principal{UserID: c.id, Name: c.id, SessionID: "s-" + c.id}
}
func (c *benchConn) Client() tollgate.ClientInfo { return tollgate.ClientInfo{IP: "127.0.0.1"} }
func (c *benchConn) Close(*tollgate.Error)       {}
func (c *benchConn) Deliver(d *hub.Delivery) bool {
	_ = d.Encoded(encKey{}, func(m tollgate.Message) any {
		b, _ := json.Marshal(m)
		return b
	})
	c.seen.Add(1)
	c.got.Done()
	return true
}

// BenchmarkPublishFanout1000 measures one publish (store, broker, fan-out)
// reaching all 1,000 members of a room, with the in-process message store and
// broker. ns/op is the time until the last member has the message.
func BenchmarkPublishFanout1000(b *testing.B) {
	for _, members := range []int{1000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			broker := memory.NewBroker()
			h, err := hub.New(hub.Config{Messages: memory.NewMessageStore(), Broker: broker})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = h.Run(ctx) }()
			var got sync.WaitGroup
			conns := make([]*benchConn, members)
			for i := range conns {
				conns[i] = &benchConn{id: fmt.Sprintf("u%04d", i), got: &got}
				h.Register(conns[i])
				if err := h.Join(ctx, conns[i], "big", nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				got.Add(members)
				if _, _, err := h.Publish(ctx, conns[i%members], "big", "hello everyone", ""); err != nil {
					b.Fatal(err)
				}
				got.Wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/delivery")
		})
	}
}
