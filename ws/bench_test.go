package ws_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/ws"
)

// collect is a protocol that only hands each opened socket to the benchmark.
type collect struct{ opened chan *ws.Conn }

func (p collect) Open(c *ws.Conn)                     { p.opened <- c }
func (collect) Message(*ws.Conn, []byte) error        { return nil }
func (collect) Expiring(*ws.Conn, time.Time)          {}
func (collect) Closed(c *ws.Conn, code int, _ string) {}

// BenchmarkSendShared1000 measures the server side of a room fan-out: one
// frame prepared once with ws.NewShared and queued with SendShared on 1,000
// sockets on 127.0.0.1, until every peer has read it. The peers are raw TCP
// readers that only count bytes, so that most of the time is the server's
// queueing and writing. ns/delivery is ns/op divided by 1,000; cpu-ns/delivery
// is the process's CPU time over the same loop, divided the same way.
func BenchmarkSendShared1000(b *testing.B) {
	const members = 1000
	p := collect{opened: make(chan *ws.Conn, members)}
	srv := ws.New(ws.Config{SendQueue: 1024}, p, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.Accept(w, r, tollgate.Principal{UserID: "u", Name: "u"}, tollgate.ClientInfo{IP: "127.0.0.1"})
	}))
	defer hs.Close()
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()

	payload := []byte(`{"type":"message","room":"bench","id":1,"user_id":"u1","user_name":"u1","text":"` +
		strings.Repeat("hello everyone ", 6) + `","ts":"2026-01-01T00:00:00Z"}`)
	frameLen := int64(len(payload) + 2) // unmasked server frame, 7-bit length
	if len(payload) >= 126 {
		frameLen += 2
	}

	var got sync.WaitGroup
	conns := make([]*ws.Conn, members)
	peers := make([]net.Conn, members)
	for i := range members {
		nc := rawDial(b, hs.Listener.Addr().String())
		peers[i] = nc
		go func() {
			var n, frames int64
			buf := make([]byte, 32<<10)
			for {
				k, err := nc.Read(buf)
				n += int64(k)
				for ; n >= (frames+1)*frameLen; frames++ {
					got.Done()
				}
				if err != nil {
					return
				}
			}
		}()
		select {
		case conns[i] = <-p.opened:
		case <-time.After(10 * time.Second):
			b.Fatal("socket did not open")
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		got.Add(members)
		s := ws.NewShared(payload)
		for _, c := range conns {
			if !c.SendShared(s) {
				b.Fatal("SendShared refused")
			}
		}
		s.Release()
		got.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/delivery")
	// CPU time of the whole process (server and peers) moves less than wall
	// time when the machine is shared.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/float64(members), "cpu-ns/delivery")
	for _, nc := range peers {
		_ = nc.Close()
	}
}

// rawDial opens a WebSocket on addr by hand and returns the TCP connection
// positioned after the 101 response.
func rawDial(b *testing.B, addr string) net.Conn {
	b.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", addr, key)
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b.Fatalf("upgrade: %s", resp.Status)
	}
	if br.Buffered() > 0 {
		b.Fatal("unexpected bytes after the 101")
	}
	return nc
}
