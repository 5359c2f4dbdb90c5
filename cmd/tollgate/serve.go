package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/config"
	"github.com/tollgate-ws/tollgate/hub"
)

// HTTP server bounds that are not settings: a request's headers (the
// contract's header limit against slowloris is --read-header-timeout; this is
// the size), a whole request including its body (bodies are at most 64 KiB),
// and an idle keep-alive connection. WebSockets set their own deadlines
// after the upgrade.
const (
	maxHeaderBytes = 32 << 10
	readTimeout    = 30 * time.Second
	keepAliveIdle  = 120 * time.Second
)

// serve runs `tollgate serve` until ctx ends (SIGINT or SIGTERM), then shuts
// down gracefully and returns nil. When ready is not nil the bound address is
// sent on it once the server accepts connections.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env, ready chan<- string) error {
	cfg, err := config.Load(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, config.Usage())
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	n, err := newNode(ctx, cfg, ln, log, stdout, getenv)
	if err != nil {
		return err
	}
	defer n.close()
	return n.serve(ctx, ln, ready)
}

// serve accepts connections on ln until ctx ends, then stops accepting,
// closes every socket 1001 after its queued frames, and waits for both
// within --shutdown-timeout.
func (n *node) serve(ctx context.Context, ln net.Listener, ready chan<- string) error {
	srv := &http.Server{
		Handler:           n.api.Handler(),
		ReadHeaderTimeout: n.cfg.ReadHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       keepAliveIdle,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	background := func(name string, f func(context.Context) error) {
		wg.Go(func() {
			if err := f(bg); err != nil && !errors.Is(err, context.Canceled) {
				n.log.Error("background task stopped", "task", name, "error", err)
			}
		})
	}
	background("hub", func(ctx context.Context) error {
		return n.st.broker.Run(ctx, brokerHandler{Hub: n.hub, auth: n.auth})
	})
	background("sockets", func(ctx context.Context) error { n.sockets.Run(ctx); return nil })
	background("revalidation", func(ctx context.Context) error {
		n.hub.RunRevalidation(ctx, n.st.users, n.st.sessions, n.cfg.RevalidateInterval, n.log)
		return nil
	})
	background("key reload", n.reloadKeysOnHUP)
	for _, task := range n.st.tasks {
		background("store maintenance", func(ctx context.Context) error { task(ctx); return nil })
	}
	defer func() {
		stopBackground()
		wg.Wait()
	}()

	if n.cfg.MetricsAddr != "" {
		stopDebug, err := serveDebug(n.cfg.MetricsAddr, n.log, n.metrics.Handler())
		if err != nil {
			return err
		}
		defer stopDebug()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	n.log.Info("tollgate listening", "addr", addr, "data_dir", n.cfg.DataDir,
		"allowed_origins", n.cfg.AllowedOrigins, "secure_cookies", n.cfg.CookieSecure)
	if ready != nil {
		ready <- addr
	}

	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", addr, err)
	case <-ctx.Done():
	}
	n.log.Info("shutting down", "timeout", n.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.ShutdownTimeout)
	defer cancel()
	// Stop accepting and finish plain requests while the sockets close 1001.
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Shutdown(sctx) }()
	wsErr := n.sockets.Shutdown(sctx)
	httpErr := <-httpDone
	if wsErr != nil || httpErr != nil {
		n.log.Warn("shutdown deadline passed; remaining connections were cut",
			"sockets_error", wsErr, "http_error", httpErr)
		_ = srv.Close()
	}
	n.log.Info("stopped")
	return nil
}

// publicMetrics is GET /metrics on the main listener, or nil when
// --metrics-addr gives the metrics their own listener.
func (n *node) publicMetrics() http.Handler {
	if n.cfg.MetricsAddr != "" {
		return nil
	}
	return n.metrics.Handler()
}

// serveDebug serves /metrics and pprof on the separate --metrics-addr
// listener (pprof never on the public one) until the returned stop is called.
func serveDebug(addr string, log *slog.Logger, metrics http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug listener stopped", "error", err)
		}
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// reloadKeysOnHUP reloads the signing keys on SIGHUP (after `tollgate keys
// rotate`) until ctx ends. A failed reload keeps the keys in use.
func (n *node) reloadKeysOnHUP(ctx context.Context) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
		}
		keys, err := loadKeys(n.cfg, n.log)
		if err != nil {
			n.log.Error("reloading the signing keys failed; the old keys stay in use", "error", err)
			continue
		}
		n.auth.SetKeys(keys)
		n.log.Info("signing keys reloaded", "keys", keys)
	}
}

// brokerHandler hands what the broker delivers to the hub, and first drops
// from the auth session cache whatever a control event revokes, so that the
// revoked session opens no new socket on this node once its live ones close.
type brokerHandler struct {
	*hub.Hub
	auth *auth.Service
}

// HandleControl implements tollgate.BrokerHandler.
func (b brokerHandler) HandleControl(e tollgate.ControlEvent) {
	b.auth.ForgetRevoked(e)
	b.Hub.HandleControl(e)
}
