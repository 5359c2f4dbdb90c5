package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/memory"
	"github.com/tollgate-ws/tollgate/metrics"
	"github.com/tollgate-ws/tollgate/redis"
)

// TicketsResult is the summary of `bench tickets`.
type TicketsResult struct {
	Mode        string  `json:"mode"`
	Store       string  `json:"store"` // memory or redis
	N           int     `json:"n"`
	Concurrency int     `json:"concurrency"`
	OK          int     `json:"ok"`
	Failed      int     `json:"failed"`
	Seconds     float64 `json:"seconds"`
	PerSec      float64 `json:"issue_redeem_per_sec"`
	// IssueRedeem is one ticket's whole life: IssueTicket then RedeemTicket.
	IssueRedeem Latency `json:"issue_redeem"`
	Issue       Latency `json:"issue"`
	Redeem      Latency `json:"redeem"`
}

// Tickets measures the ticket path in-process, without HTTP: n times
// auth.Service.IssueTicket then RedeemTicket (random bytes, SHA-256, the
// store's put, its atomic redeem, the Origin check and the session lookup),
// c at a time, on the in-process ticket store or, with redisURL, on Redis.
// Accounts and sessions live in memory, so the figure is the ticket store's
// and the service's, not SQLite's; the service counts into a Metrics as the
// server's does, and audits nothing. Nothing listens on the network.
func Tickets(ctx context.Context, n, c int, redisURL string, timeout time.Duration) (TicketsResult, error) {
	if n <= 0 || n > 10_000_000 || c <= 0 || c > 1000 {
		return TicketsResult{}, fmt.Errorf("bench: tickets needs n in 1..10000000 and c in 1..1000")
	}
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := TicketsResult{Mode: "tickets", Store: "memory", N: n, Concurrency: c}
	var store tollgate.TicketStore = memory.NewTicketStore()
	if redisURL != "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		rc, err := redis.Open(ctx, redisURL, redis.Options{Prefix: fmt.Sprintf("tollgate-bench-%x:", b)})
		if err != nil {
			return res, fmt.Errorf("bench: redis: %w", err)
		}
		defer rc.Close()
		store, res.Store = rc, "redis"
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	keys, err := auth.NewKeySet(key)
	if err != nil {
		return res, err
	}
	const origin = "http://127.0.0.1"
	svc, err := auth.New(auth.Config{Keys: keys, AllowedOrigins: []string{origin},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: metrics.New()},
		memory.NewUserStore(), memory.NewSessionStore(), store)
	if err != nil {
		return res, err
	}
	defer svc.Close()
	client := tollgate.ClientInfo{IP: "127.0.0.1", Origin: origin, HasOrigin: true}
	pw := tollgate.Secret(rand.Text())
	if _, err := svc.Register(ctx, "bench-tickets", pw, client); err != nil {
		return res, err
	}
	tok, err := svc.Login(ctx, "bench-tickets", pw, client)
	if err != nil {
		return res, err
	}
	p, err := svc.VerifyAccess(ctx, tok.Access)
	if err != nil {
		return res, err
	}

	var (
		next, fail atomic.Int64
		mu         sync.Mutex
		both       = make([]time.Duration, 0, n)
		issue      = make([]time.Duration, 0, n)
		redeem     = make([]time.Duration, 0, n)
		wg         sync.WaitGroup
	)
	start := time.Now()
	for range c {
		wg.Go(func() {
			b, is, rd := make([]time.Duration, 0, n/c+1), make([]time.Duration, 0, n/c+1), make([]time.Duration, 0, n/c+1)
			defer func() {
				mu.Lock()
				both, issue, redeem = append(both, b...), append(issue, is...), append(redeem, rd...)
				mu.Unlock()
			}()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				t0 := time.Now()
				tk, _, err := svc.IssueTicket(ctx, p, client)
				t1 := time.Now()
				if err == nil {
					_, err = svc.RedeemTicket(ctx, tk, client)
				}
				t2 := time.Now()
				if err != nil {
					fail.Add(1)
					continue
				}
				b, is, rd = append(b, t2.Sub(t0)), append(is, t1.Sub(t0)), append(rd, t2.Sub(t1))
			}
		})
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.OK, res.Failed = len(both), int(fail.Load())
	if res.Seconds > 0 {
		res.PerSec = float64(res.OK) / res.Seconds
	}
	res.IssueRedeem, res.Issue, res.Redeem = summarize(both), summarize(issue), summarize(redeem)
	return res, nil
}
