package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate/ws"
)

// IdleResult is the summary of `bench idle`.
type IdleResult struct {
	Mode         string         `json:"mode"`
	Credential   string         `json:"credential"`
	K            int            `json:"k"`
	Held         int            `json:"held"`
	ClosedEarly  int            `json:"closed_early"`
	Failures     map[string]int `json:"failures_by_reason"`
	RSSBeforeKiB int64          `json:"rss_before_kib"`
	RSSAfterKiB  int64          `json:"rss_after_kib"`
	KiBPerSocket float64        `json:"kib_per_socket"`
	// RSSHalfKiB is the RSS with the first half of the sockets held, and
	// KiBPerSocketSecondHalf the growth per socket from there to all k. It
	// is the better figure when the server freed memory just before the run
	// (argon2id buffers of the bench's logins): the first sockets reuse that
	// memory without growing RSS, which makes the whole-run average too low.
	RSSHalfKiB             int64   `json:"rss_half_kib"`
	KiBPerSocketSecondHalf float64 `json:"kib_per_socket_second_half"`
	SettleSeconds          float64 `json:"settle_seconds"`
	ConnectSeconds         float64 `json:"connect_seconds"`
}

// RSS returns the resident set size of process pid in KiB, from /proc.
func RSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("bench: no VmRSS for pid %d", pid)
}

// CPU returns the user plus system CPU time process pid has used so far,
// from /proc/<pid>/stat (Linux, whose USER_HZ is 100: 10 ms resolution).
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields 3.. follow its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: unreadable /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short /proc/%d/stat", pid)
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime (fields 14 and 15)
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bench: /proc/%d/stat: %w", pid, err)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

// userHZ is the unit of /proc's CPU times on Linux.
const userHZ = 100

// Idle opens k sockets (c at a time), holds them for settle, and reports the
// server's RSS growth per socket (pid is the server's process id).
func Idle(ctx context.Context, cfg Config, k, c, pid int, settle time.Duration) (IdleResult, error) {
	if err := cfg.check(k); err != nil {
		return IdleResult{}, err
	}
	if c <= 0 || c > 1000 {
		return IdleResult{}, fmt.Errorf("bench: concurrency must be 1..1000")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	d, err := newDialer(ctx, &cfg, "bench-i")
	if err != nil {
		return IdleResult{}, err
	}
	before, err := RSS(pid)
	if err != nil {
		return IdleResult{}, err
	}
	res := IdleResult{Mode: "idle", Credential: cfg.Credential, K: k, RSSBeforeKiB: before, Failures: map[string]int{}}
	var (
		next   atomic.Int64
		early  atomic.Int64
		mu     sync.Mutex
		conns  = make([]*ws.Client, 0, k)
		closed = func(int, string) { early.Add(1) }
	)
	stop := make(chan struct{})
	start := time.Now()
	go progress(cfg.Progress, stop, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("idle: %d open, %d failed, %d closed early", len(conns), len(res.Failures), early.Load())
	})
	// open dials until n sockets were attempted, c at a time.
	open := func(n int) {
		var wg sync.WaitGroup
		for range c {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= n || ctx.Err() != nil {
						next.Add(-1)
						return
					}
					cl, err := d.dial(ctx, i, nil, closed)
					mu.Lock()
					if err != nil {
						res.Failures[reason(err)]++
					} else {
						conns = append(conns, cl)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	hold := func() {
		select {
		case <-time.After(settle):
		case <-ctx.Done():
		}
	}
	open(k / 2)
	hold()
	if res.RSSHalfKiB, err = RSS(pid); err != nil {
		return res, err
	}
	mu.Lock()
	half := len(conns)
	mu.Unlock()
	open(k)
	res.ConnectSeconds = time.Since(start).Seconds() - settle.Seconds()
	hold()
	close(stop)
	res.SettleSeconds = settle.Seconds()
	after, err := RSS(pid)
	if err != nil {
		return res, err
	}
	res.RSSAfterKiB = after
	res.Held = len(conns) - int(early.Load())
	res.ClosedEarly = int(early.Load())
	if res.Held > 0 {
		res.KiBPerSocket = float64(after-before) / float64(res.Held)
	}
	if n := len(conns) - half; n > 0 {
		res.KiBPerSocketSecondHalf = float64(after-res.RSSHalfKiB) / float64(n)
	}
	for _, cl := range conns {
		_ = cl.CloseNow()
	}
	return res, nil
}
