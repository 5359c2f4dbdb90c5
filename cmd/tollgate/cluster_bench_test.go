package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkClusterFanout measures publish-to-delivery latency for a room of
// 1,000 members on real sockets, on one node and on two nodes (members
// split evenly, the publisher on the first, so half of the deliveries cross
// Redis), both on Redis and PostgreSQL, in the same run. It reports p50 and
// p99 in ms; ns/op is one message reaching every member.
//
//	go test -run '^$' -bench ClusterFanout -benchtime 100x ./cmd/tollgate/
func BenchmarkClusterFanout(b *testing.B) {
	for _, nodes := range []int{1, 2} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			benchFanout(b, nodes, 1000)
		})
	}
}

func benchFanout(b *testing.B, nodes, members int) {
	c := startCluster(b, nodes, "", "--publish-rate", "10000", "--max-sockets-per-user", "1000", "--max-sockets-per-ip", "100000",
		"--handshake-rate", "100000", "--login-rate", "10000", "--log-level", "warn")
	owner := c.nodes[0]
	pubAcc := owner.register("publisher")
	var mu sync.Mutex
	var lat []time.Duration
	var got sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns := make([]*websocket.Conn, 0, members)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	// Members: a handful of accounts (sockets per user are capped), spread
	// over the nodes.
	accounts := make([]account, 0, members/30+1)
	for i := range members/30 + 1 {
		accounts = append(accounts, owner.register("member"+strconv.Itoa(i)))
	}
	for i := range members {
		n := c.nodes[i%nodes]
		a := accounts[i%len(accounts)]
		ws, _, err := websocket.Dial(ctx, n.ws, &websocket.DialOptions{HTTPHeader: bearer(a.access)})
		if err != nil {
			b.Fatalf("member %d: %v", i, err)
		}
		conns = append(conns, ws)
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"bench"}`)); err != nil {
			b.Fatal(err)
		}
		joined := make(chan struct{})
		go func() {
			once := sync.OnceFunc(func() { close(joined) })
			for {
				_, data, err := ws.Read(ctx)
				if err != nil {
					once()
					return
				}
				var f struct{ Type, Text string }
				if json.Unmarshal(data, &f) != nil {
					continue
				}
				switch f.Type {
				case "joined":
					once()
				case "message":
					sent, err := strconv.ParseInt(strings.TrimPrefix(f.Text, "t:"), 10, 64)
					if err != nil {
						continue
					}
					d := time.Since(time.Unix(0, sent))
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					got.Done()
				}
			}
		}()
		<-joined
	}
	pub, _, err := websocket.Dial(ctx, owner.ws, &websocket.DialOptions{HTTPHeader: bearer(pubAcc.access)})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.CloseNow()
	go func() { // drain the publisher's own frames
		_ = pub.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"bench"}`))
		for {
			if _, _, err := pub.Read(ctx); err != nil {
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	b.ResetTimer()
	for b.Loop() {
		got.Add(members)
		msg := `{"type":"publish","room":"bench","text":"t:` + strconv.FormatInt(time.Now().UnixNano(), 10) + `"}`
		if err := pub.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			b.Fatal(err)
		}
		got.Wait()
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
