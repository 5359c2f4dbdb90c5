package bench

import (
	"context"
	"fmt"
	"os"
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
	// ServerCPUPerConnect and ClientCPUPerConnect are the CPU time the
	// server process (given by its pid) and this load generator used per
	// successful connect during the timed part of the run, in microseconds:
	// on a machine they share, connects/s is bounded by their sum, and the
	// server's share is what the server's own work costs. Absent without a
	// pid.
	ServerCPUPerConnect float64 `json:"server_cpu_us_per_connect,omitempty"`
	ClientCPUPerConnect float64 `json:"client_cpu_us_per_connect,omitempty"`
}

// Connect opens n sockets, c at a time; each is closed as soon as its
// upgrade completes. Latency runs from the start of the credential step (the
// ticket request, when the credential is a ticket) to the 101. With pid > 0
// (the server's process id, on the same machine) it also reports the CPU
// time the server and this process used per connect.
func Connect(ctx context.Context, cfg Config, n, c, pid int) (ConnectResult, error) {
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
	cpu := cpuMeter{server: pid, client: os.Getpid()}
	if err := cpu.start(); err != nil {
		return ConnectResult{}, err
	}
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
	if res.ServerCPUPerConnect, res.ClientCPUPerConnect, err = cpu.perOp(res.OK); err != nil {
		return res, err
	}
	if skipped := n - res.OK - res.Failed; skipped > 0 {
		res.Failures["not_attempted_timeout"] += skipped
		res.Failed += skipped
	}
	res.ConnectsPerSec = float64(res.OK) / res.Seconds
	res.Handshake = summarize(lat)
	return res, nil
}

// cpuMeter reads the CPU time of a server process (when server > 0) and of
// the client process around a timed run.
type cpuMeter struct {
	server, client int
	s0, c0         time.Duration
}

func (m *cpuMeter) start() (err error) {
	if m.server <= 0 {
		return nil
	}
	if m.s0, err = CPU(m.server); err != nil {
		return fmt.Errorf("bench: --pid %d: %w", m.server, err)
	}
	m.c0, err = CPU(m.client)
	return err
}

// perOp returns the server's and the client's CPU microseconds per op since
// start; zeros without a server pid or ops.
func (m *cpuMeter) perOp(ops int) (server, client float64, err error) {
	if m.server <= 0 || ops == 0 {
		return 0, 0, nil
	}
	s1, err := CPU(m.server)
	if err != nil {
		return 0, 0, fmt.Errorf("bench: --pid %d: %w", m.server, err)
	}
	c1, err := CPU(m.client)
	if err != nil {
		return 0, 0, err
	}
	us := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(ops) }
	return us(s1 - m.s0), us(c1 - m.c0), nil
}
