package bench

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/ws"
)

// broadcastProto is the baseline protocol: every frame that carries a bench
// marker is sent to every socket, encoded once, like a single room without
// storage or auth.
type broadcastProto struct {
	mu    sync.RWMutex
	conns map[*ws.Conn]struct{}
}

func (b *broadcastProto) Open(c *ws.Conn) {
	b.mu.Lock()
	b.conns[c] = struct{}{}
	b.mu.Unlock()
}

func (b *broadcastProto) Message(c *ws.Conn, data []byte) error {
	if !bytes.HasPrefix(data, marker) {
		c.Send(append([]byte(nil), data...))
		return nil
	}
	s := ws.NewShared(append([]byte(nil), data...))
	b.mu.RLock()
	for m := range b.conns {
		m.SendShared(s)
	}
	b.mu.RUnlock()
	s.Release()
	return nil
}

func (b *broadcastProto) Expiring(*ws.Conn, time.Time) {}

func (b *broadcastProto) Closed(c *ws.Conn, _ int, _ string) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// Baseline serves the bare WebSocket server on ln until ctx ends: every
// request is upgraded with no authentication and no storage, using the same
// ws package (and so the same library and socket settings) as tollgate.
func Baseline(ctx context.Context, ln net.Listener, logger *slog.Logger) error {
	proto := &broadcastProto{conns: make(map[*ws.Conn]struct{})}
	srv := ws.New(ws.Config{Logger: logger}, proto, nil, nil)
	go srv.Run(ctx)
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			srv.Accept(w, r, tollgate.Principal{UserID: "baseline", Name: "baseline"}, tollgate.ClientInfo{})
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		_ = srv.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
