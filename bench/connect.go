package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ConnectResult is the summary of `bench connect`.
type ConnectResult struct {
	Mode           string         `json:"mode"`
	Credential     string         `json:"credential"`
	N              int            `json:"n"`
	Concurrency    int            `json:"concurrency"`
	OK             int            `json:"ok"`
	Failed         int            `json:"failed"`
	Failures       map[string]int `json:"failures_by_reason"`
	Seconds        float64        `json:"seconds"`
	ConnectsPerSec float64        `json:"connects_per_sec"`
	Handshake      Latency        `json:"handshake"`
}

// Connect opens n sockets, c at a time; each is closed as soon as its
// upgrade completes. Latency runs from the start of the credential step (the
// ticket request, when the credential is a ticket) to the 101.
func Connect(ctx context.Context, cfg Config, n, c int) (ConnectResult, error) {
	if err := cfg.check(min(n, MaxSockets)); err != nil {
		return ConnectResult{}, err
	}
	if c <= 0 || c > 1000 {
		return ConnectResult{}, fmt.Errorf("bench: concurrency must be 1..1000")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	d, err := newDialer(ctx, &cfg, "bench-c")
	if err != nil {
		return ConnectResult{}, err
	}
	res := ConnectResult{Mode: "connect", Credential: cfg.Credential, N: n, Concurrency: c, Failures: map[string]int{}}
	var (
		next     atomic.Int64
		ok, fail atomic.Int64
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, n)
		wg       sync.WaitGroup
	)
	stop := make(chan struct{})
	start := time.Now()
	go progress(cfg.Progress, stop, func() string {
		s := time.Since(start).Seconds()
		return fmt.Sprintf("connect: %d ok, %d failed, %.0f/s", ok.Load(), fail.Load(), float64(ok.Load())/s)
	})
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				cl, err := d.dial(ctx, i, nil, nil)
				el := time.Since(t0)
				if err != nil {
					fail.Add(1)
					mu.Lock()
					res.Failures[reason(err)]++
					mu.Unlock()
					continue
				}
				_ = cl.CloseNow()
				ok.Add(1)
				mu.Lock()
				lat = append(lat, el)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	res.Seconds = time.Since(start).Seconds()
	res.OK, res.Failed = int(ok.Load()), int(fail.Load())
	if skipped := n - res.OK - res.Failed; skipped > 0 {
		res.Failures["not_attempted_timeout"] += skipped
		res.Failed += skipped
	}
	res.ConnectsPerSec = float64(res.OK) / res.Seconds
	res.Handshake = summarize(lat)
	return res, nil
}
