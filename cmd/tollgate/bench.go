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
		return fmt.Errorf("bench: want a mode: connect, idle, fanout, revoke, tickets, soak or baseline")
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
	c := fs.Int("c", 100, "connect/idle/revoke: concurrency (tickets: default 1)")
	k := fs.Int("k", 1000, "idle/fanout/revoke: sockets held / room members")
	logoutC := fs.Int("logout-c", 1, "revoke: logouts in flight at once")
	redisURL := fs.String("redis-url", "", "tickets: Redis for the ticket store (default in-process)")
	pid := fs.Int("pid", 0, "idle: the server's process id (RSS is read from /proc); connect: optional, adds the server's and the bench's CPU per connect")
	settle := fs.Duration("settle", 5*time.Second, "idle: how long to hold the sockets before reading RSS")
	p := fs.Int("p", 100, "fanout: messages to publish")
	rate := fs.Float64("rate", 10, "fanout: messages per second")
	drain := fs.Duration("drain", 30*time.Second, "fanout/revoke: how long to wait for deliveries or closes after the last publish or logout")
	baseline := fs.Bool("baseline", false, "fanout: the target is `tollgate bench baseline`")
	listen := fs.String("listen", "127.0.0.1:9090", "baseline: address to serve on")
	duration := fs.Duration("duration", 10*time.Minute, "baseline: how long to serve; soak: how long to run")
	good := fs.Int("good", 100, "soak: well-behaved clients (each its own account)")
	abusive := fs.Int("abusive", 300, "soak: abusive clients (flooders, garbage handshakes, slow readers, half-open peers)")
	every := fs.Duration("every", 10*time.Second, "soak: how often each good client publishes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := bench.Config{Addr: *addr, Explicit: explicitFlag(fs, "addr"), Credential: *cred, Users: *users,
		Password: *password, Origin: *origin, Timeout: *timeout, Progress: stderr}
	var (
		res any
		err error
	)
	switch mode {
	case "connect":
		res, err = bench.Connect(ctx, cfg, *n, *c, *pid)
	case "idle":
		if *pid == 0 {
			return fmt.Errorf("bench idle: --pid of the server is required")
		}
		res, err = bench.Idle(ctx, cfg, *k, *c, *pid, *settle)
	case "fanout":
		res, err = bench.Fanout(ctx, cfg, *k, *p, *rate, *baseline, *drain)
	case "revoke":
		res, err = bench.Revoke(ctx, cfg, *k, *c, *logoutC, *drain)
	case "tickets":
		if !explicitFlag(fs, "c") {
			*c = 1
		}
		res, err = bench.Tickets(ctx, *n, *c, *redisURL, *timeout)
	case "soak":
		if !explicitFlag(fs, "duration") {
			*duration = 2 * time.Minute
		}
		res, err = bench.Soak(ctx, cfg, *good, *abusive, *every, *duration)
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

// explicitFlag reports whether the flag name was given on the command line.
func explicitFlag(fs *flag.FlagSet, name string) (set bool) {
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
