package stomp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/jsonproto"
	"github.com/tollgate-ws/tollgate/memory"
	"github.com/tollgate-ws/tollgate/stomp"
	"github.com/tollgate-ws/tollgate/ws"
)

// publisher is an in-process member of the room that publishes.
type publisher struct{}

func (publisher) ID() string { return "publisher" }
func (publisher) Principal() tollgate.Principal {
	return tollgate.Principal{UserID: "pub", Name: "publisher", SessionID: "s-pub"}
}
func (publisher) Client() tollgate.ClientInfo { return tollgate.ClientInfo{IP: "127.0.0.1"} }
func (publisher) Deliver(*hub.Delivery) bool  { return true }
func (publisher) Close(*tollgate.Error)       {}

// BenchmarkFanout1000 compares the two protocols delivering one room
// message to 1,000 subscribers over real WebSockets on 127.0.0.1, in the
// same run: a hub with the in-process store and broker, the ws server, and
// 1,000 coder/websocket clients (each a goroutine that reads and counts;
// the STOMP clients subscribed with "sub-0", as stompjs names its first
// subscription). One op is one publish until the last subscriber has read
// it; ns/delivery is ns/op divided by 1,000. Authentication is out of the
// loop: the handler trusts the query for the principal.
func BenchmarkFanout1000(b *testing.B) {
	for _, proto := range []string{"json", "stomp"} {
		b.Run("proto="+proto, func(b *testing.B) { benchFanout(b, proto, 1000) })
	}
}

func benchFanout(b *testing.B, proto string, members int) {
	broker := memory.NewBroker()
	h, err := hub.New(hub.Config{Messages: memory.NewMessageStore(), Broker: broker, MaxRoomsPerConn: 4})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()
	jp := jsonproto.New(jsonproto.Config{Hub: h, Verifier: nopVerifier{}})
	sp, err := stomp.New(stomp.Config{Hub: h, Verifier: nopVerifier{}, Heartbeat: -1})
	if err != nil {
		b.Fatal(err)
	}
	srv := ws.New(ws.Config{SendQueue: 1024}, jp, map[string]ws.Protocol{jsonproto.Name: jp, stomp.Name12: sp},
		[]string{jsonproto.Name, stomp.Name12})
	go srv.Run(ctx)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := r.URL.Query().Get("u")
		srv.Accept(w, r, tollgate.Principal{UserID: u, Name: u, SessionID: "s-" + u, Credential: tollgate.CredentialBearer},
			tollgate.ClientInfo{IP: "127.0.0.1"})
	}))
	defer hs.Close()
	defer func() {
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	for broker.Publish(ctx, tollgate.Message{Room: "warmup", ID: 1}) != nil {
		time.Sleep(time.Millisecond)
	}
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/?u="

	var got sync.WaitGroup
	var bytesIn atomic.Int64
	conns := make([]*websocket.Conn, members)
	ready := make(chan struct{}, members)
	for i := range conns {
		sub := stomp.Name12
		if proto == "json" {
			sub = jsonproto.Name
		}
		c, _, err := websocket.Dial(ctx, url+fmt.Sprintf("m%04d", i), &websocket.DialOptions{Subprotocols: []string{sub}})
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		c.SetReadLimit(1 << 20)
		conns[i] = c
		if proto == "json" {
			_ = c.Write(ctx, websocket.MessageText, []byte(`{"type":"join","room":"bench"}`))
		} else {
			_ = c.Write(ctx, websocket.MessageText, []byte("CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\x00"))
			_ = c.Write(ctx, websocket.MessageText, []byte("SUBSCRIBE\nid:sub-0\ndestination:/topic/bench\nreceipt:ok\n\n\x00"))
		}
		go func() {
			joined := false
			for {
				_, data, err := c.Read(ctx)
				if err != nil {
					return
				}
				switch {
				case !joined && (strings.HasPrefix(string(data), `{"type":"joined"`) || strings.HasPrefix(string(data), "RECEIPT")):
					joined = true
					ready <- struct{}{}
				case strings.HasPrefix(string(data), `{"type":"message"`) || strings.HasPrefix(string(data), "MESSAGE"):
					bytesIn.Add(int64(len(data)))
					got.Done()
				}
			}
		}()
	}
	for range members {
		select {
		case <-ready:
		case <-time.After(30 * time.Second):
			b.Fatal("subscribers did not join")
		}
	}
	pub := publisher{}
	h.Register(pub)
	if err := h.Join(ctx, pub, "bench", nil); err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("hello everyone ", 6) // 90 bytes
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got.Add(members)
		if _, _, err := h.Publish(ctx, pub, "bench", text, ""); err != nil {
			b.Fatal(err)
		}
		got.Wait()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(members), "ns/delivery")
	b.ReportMetric(float64(bytesIn.Load())/float64(b.N)/float64(members), "B/frame")
	for _, c := range conns {
		c.CloseNow()
	}
}

// nopVerifier refuses every in-band credential (the benchmark needs none).
type nopVerifier struct{}

func (nopVerifier) VerifyAccess(context.Context, tollgate.Secret) (tollgate.Principal, error) {
	return tollgate.Principal{}, tollgate.NewError(tollgate.CodeUnauthenticated)
}

func (nopVerifier) RedeemTicket(context.Context, tollgate.Secret, tollgate.ClientInfo) (tollgate.Principal, error) {
	return tollgate.Principal{}, tollgate.NewError(tollgate.CodeInvalidTicket)
}
