package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/tollgate-ws/tollgate/bench"
)

// benchCmd runs the load generator; it prints a live progress line on
// stderr and a JSON summary on stdout.
func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("bench: want a mode: connect, idle, fanout or baseline")
	}
	mode, args := args[0], args[1:]
	fs := flag.NewFlagSet("bench "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "server host:port (loopback unless given explicitly)")
	cred := fs.String("credential", "bearer", "bearer, ticket, or none (the baseline server)")
	users := fs.Int("users", 0, "accounts to log in as (default sockets/30+1)")
	password := fs.String("password", "", "password of the bench accounts (default random; accounts are registered)")
	origin := fs.String("origin", "", "Origin header to send")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound on the whole run")
	n := fs.Int("n", 1000, "connect: sockets to open")
	c := fs.Int("c", 100, "connect/idle: concurrency")
	k := fs.Int("k", 1000, "idle/fanout: sockets held / room members")
	pid := fs.Int("pid", 0, "idle: the server's process id (RSS is read from /proc)")
	settle := fs.Duration("settle", 5*time.Second, "idle: how long to hold the sockets before reading RSS")
	p := fs.Int("p", 100, "fanout: messages to publish")
	rate := fs.Float64("rate", 10, "fanout: messages per second")
	drain := fs.Duration("drain", 30*time.Second, "fanout: how long to wait for deliveries after the last publish")
	baseline := fs.Bool("baseline", false, "fanout: the target is `tollgate bench baseline`")
	listen := fs.String("listen", "127.0.0.1:9090", "baseline: address to serve on")
	duration := fs.Duration("duration", 10*time.Minute, "baseline: how long to serve")
	if err := fs.Parse(args); err != nil {
		return err
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "addr" {
			explicit = true
		}
	})
	cfg := bench.Config{Addr: *addr, Explicit: explicit, Credential: *cred, Users: *users,
		Password: *password, Origin: *origin, Timeout: *timeout, Progress: stderr}
	var (
		res any
		err error
	)
	switch mode {
	case "connect":
		res, err = bench.Connect(ctx, cfg, *n, *c)
	case "idle":
		if *pid == 0 {
			return fmt.Errorf("bench idle: --pid of the server is required")
		}
		res, err = bench.Idle(ctx, cfg, *k, *c, *pid, *settle)
	case "fanout":
		res, err = bench.Fanout(ctx, cfg, *k, *p, *rate, *baseline, *drain)
	case "baseline":
		ln, lerr := net.Listen("tcp", *listen)
		if lerr != nil {
			return lerr
		}
		fmt.Fprintf(stderr, "baseline WebSocket server on %s for %s\n", ln.Addr(), *duration)
		bctx, cancel := context.WithTimeout(ctx, *duration)
		defer cancel()
		return bench.Baseline(bctx, ln, slog.New(slog.NewTextHandler(io.Discard, nil)))
	default:
		return fmt.Errorf("bench: unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
