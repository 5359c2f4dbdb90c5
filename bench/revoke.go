package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate/ws"
)

// SocketsPerSession is how many sockets `bench revoke` opens per login
// session; sessions are spread over accounts three to an account, so that
// an account holds 30 sockets, under the default cap of 32.
const (
	SocketsPerSession = 10
	sessionsPerUser   = 3
)

// RevokeResult is the summary of `bench revoke`.
type RevokeResult struct {
	Mode        string `json:"mode"`
	Credential  string `json:"credential"`
	K           int    `json:"k"`
	Sessions    int    `json:"sessions"`
	Users       int    `json:"users"`
	Concurrency int    `json:"logout_concurrency"`
	// Opened sockets had their welcome frame before the logouts began.
	Opened int `json:"opened"`
	// Closed sockets received close 1008 session_revoked; Latency covers them.
	Closed int `json:"closed"`
	// Missing sockets were still open when the wait ran out.
	Missing int `json:"missing"`
	// Unexpected counts other closes by "code reason".
	Unexpected map[string]int `json:"unexpected_closes"`
	// Failures counts sockets that did not open and logouts that failed.
	Failures map[string]int `json:"failures_by_reason"`
	// Seconds runs from the first logout sent to the last close received.
	Seconds float64 `json:"seconds"`
	// Latency runs from a session's logout request being sent to each of
	// its sockets receiving its close frame.
	Latency Latency `json:"latency"`
}

// revokedSocket is what one socket of `bench revoke` saw.
type revokedSocket struct {
	welcomed chan struct{}
	once     sync.Once
	closedAt atomic.Int64 // unix nanos; 0 while open
	code     atomic.Int32
	reason   atomic.Pointer[string]
}

// Revoke measures how fast a revocation reaches live sockets (issue 5):
// k sockets over ceil(k/10) login sessions (10 sockets each, three sessions
// to an account), then every session is logged out, logoutConc at a time,
// and each socket's latency runs from its session's POST /api/auth/logout
// being sent to its close frame (1008 session_revoked) arriving. Sockets
// open with the run's credential, c at a time. drain bounds the wait for
// the last close.
func Revoke(ctx context.Context, cfg Config, k, c, logoutConc int, drain time.Duration) (RevokeResult, error) {
	if cfg.Credential == "none" {
		return RevokeResult{}, fmt.Errorf("bench: revoke needs a credential (bearer or ticket)")
	}
	if err := cfg.check(k); err != nil {
		return RevokeResult{}, err
	}
	if c <= 0 || c > 1000 || logoutConc <= 0 || logoutConc > 1000 {
		return RevokeResult{}, fmt.Errorf("bench: concurrency must be 1..1000")
	}
	if drain <= 0 {
		drain = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	nSessions := (k + SocketsPerSession - 1) / SocketsPerSession
	nUsers := (nSessions + sessionsPerUser - 1) / sessionsPerUser
	res := RevokeResult{Mode: "revoke", Credential: cfg.Credential, K: k, Sessions: nSessions, Users: nUsers,
		Concurrency: logoutConc, Unexpected: map[string]int{}, Failures: map[string]int{}}

	a := newAPI(&cfg)
	prefix := "bench-r" + cfg.run
	if err := parallel(nUsers, 8, func(i int) error {
		a.register(ctx, prefix+"-"+strconv.Itoa(i), cfg.Password)
		return nil
	}); err != nil {
		return res, err
	}
	sessions := make([]session, nSessions)
	if err := parallel(nSessions, 8, func(j int) (err error) {
		sessions[j], err = a.loginAs(ctx, prefix+"-"+strconv.Itoa(j%nUsers), cfg.Password)
		return err
	}); err != nil {
		return res, err
	}
	// Socket i belongs to session i % nSessions (the dialer's mapping).
	d := &dialer{cfg: &cfg, api: a, sessions: sessions}
	socks := make([]*revokedSocket, k)
	var (
		mu      sync.Mutex
		clients = make([]*ws.Client, 0, k)
	)
	defer func() {
		for _, cl := range clients {
			_ = cl.CloseNow()
		}
	}()
	stop := make(chan struct{})
	var opened, closed atomic.Int64
	go progress(cfg.Progress, stop, func() string {
		return fmt.Sprintf("revoke: %d open, %d closed", opened.Load(), closed.Load())
	})
	_ = parallel(k, c, func(i int) error {
		rs := &revokedSocket{welcomed: make(chan struct{})}
		socks[i] = rs
		cl, err := d.dial(ctx, i, func([]byte) { rs.once.Do(func() { close(rs.welcomed) }) }, func(code int, reason string) {
			rs.code.Store(int32(code))
			rs.reason.Store(&reason)
			rs.closedAt.Store(time.Now().UnixNano())
			closed.Add(1)
		})
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			res.Failures["dial "+reason(err)]++
			socks[i] = nil
			return nil
		}
		clients = append(clients, cl)
		return nil
	})
	// A socket is registered for revocation once its welcome arrived.
	for i, rs := range socks {
		if rs == nil {
			continue
		}
		select {
		case <-rs.welcomed:
			opened.Add(1)
		case <-time.After(10 * time.Second):
			res.Failures["no welcome"]++
			socks[i] = nil
		case <-ctx.Done():
			close(stop)
			return res, fmt.Errorf("bench: revoke: sockets did not open in time")
		}
	}
	res.Opened = int(opened.Load())

	sent := make([]int64, nSessions) // unix nanos of each logout request
	start := time.Now()
	_ = parallel(nSessions, logoutConc, func(j int) error {
		atomic.StoreInt64(&sent[j], time.Now().UnixNano())
		st, err := a.post(ctx, "/api/auth/logout", sessions[j].token, nil, nil)
		if err != nil || st != 200 {
			mu.Lock()
			res.Failures["logout "+strconv.Itoa(st)]++
			mu.Unlock()
		}
		return nil
	})
	deadline := time.Now().Add(drain)
	for closed.Load() < int64(len(clients)) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)

	lat := make([]time.Duration, 0, k)
	var last int64
	for i, rs := range socks {
		if rs == nil {
			continue
		}
		at := rs.closedAt.Load()
		if at == 0 {
			res.Missing++
			continue
		}
		r := ""
		if p := rs.reason.Load(); p != nil {
			r = *p
		}
		if rs.code.Load() != 1008 || r != "session_revoked" {
			res.Unexpected[strconv.Itoa(int(rs.code.Load()))+" "+r]++
			continue
		}
		res.Closed++
		lat = append(lat, time.Duration(at-atomic.LoadInt64(&sent[i%nSessions])))
		last = max(last, at)
	}
	if last > 0 {
		res.Seconds = time.Unix(0, last).Sub(start).Seconds()
	}
	res.Latency = summarize(lat)
	return res, nil
}
