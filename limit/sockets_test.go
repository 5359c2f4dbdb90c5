package limit_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/limit"
)

func TestSocketsCaps(t *testing.T) {
	t.Parallel()
	type step struct {
		user, ip string
		ok       bool
		release  int // before acquiring: release the socket acquired at this step (1-based), 0 none
	}
	cfg := limit.Config{MaxSocketsPerUser: 2, MaxSocketsPerIP: 3, MaxSockets: 4}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"per user", []step{{user: "u", ip: "a", ok: true}, {user: "u", ip: "b", ok: true}, {user: "u", ip: "c", ok: false},
			{user: "v", ip: "c", ok: true}}},
		{"per IP", []step{{user: "u", ip: "a", ok: true}, {user: "v", ip: "a", ok: true}, {user: "w", ip: "a", ok: true},
			{user: "x", ip: "a", ok: false}, {user: "x", ip: "b", ok: true}}},
		{"total", []step{{user: "u", ip: "a", ok: true}, {user: "v", ip: "b", ok: true}, {user: "w", ip: "c", ok: true},
			{user: "x", ip: "d", ok: true}, {user: "y", ip: "e", ok: false}}},
		{"release makes room", []step{{user: "u", ip: "a", ok: true}, {user: "u", ip: "a", ok: true}, {user: "u", ip: "a", ok: false},
			{user: "u", ip: "a", ok: true, release: 1}, {user: "u", ip: "a", ok: false}}},
		{"release twice frees one", []step{{user: "u", ip: "a", ok: true}, {user: "u", ip: "a", ok: true},
			{user: "u", ip: "a", ok: true, release: 1}, {user: "u", ip: "a", ok: false, release: 1}}},
		{"no user: only IP and total", []step{{ip: "a", ok: true}, {ip: "a", ok: true}, {ip: "a", ok: true}, {ip: "a", ok: false},
			{ip: "b", ok: true}, {ip: "c", ok: false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := limit.NewSockets(cfg)
			releases := make([]func(), len(tc.steps))
			for i, st := range tc.steps {
				if st.release > 0 {
					releases[st.release-1]()
				}
				rel, err := s.Acquire(st.user, st.ip)
				if (err == nil) != st.ok {
					t.Fatalf("step %d Acquire(%q, %q) = %v, want ok %v", i+1, st.user, st.ip, err, st.ok)
				}
				if err != nil {
					te := wantCode(t, "refusal", err, tollgate.CodeRateLimited)
					if te.RetryAfter != limit.DefaultSocketRetryAfter || !errors.Is(err, limit.ErrTooManySockets) ||
						te.Code.HTTPStatus() != 429 {
						t.Fatalf("refusal %v: RetryAfter %v", err, te.RetryAfter)
					}
					continue
				}
				releases[i] = rel
			}
			for _, r := range releases {
				if r != nil {
					r()
				}
			}
			if u, ip, total := s.Count("u", "a"); u != 0 || ip != 0 || total != 0 {
				t.Fatalf("after releasing everything: %d, %d, %d", u, ip, total)
			}
		})
	}
}

func TestSocketsRetryAfter(t *testing.T) {
	t.Parallel()
	s := limit.NewSockets(limit.Config{MaxSockets: 1, SocketRetryAfter: 30 * time.Second})
	rel, err := s.Acquire("u", "a")
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	_, err = s.Acquire("v", "b")
	wantRetry(t, "node full", err, 30*time.Second)
}

func TestSocketsConcurrent(t *testing.T) {
	t.Parallel()
	s := limit.NewSockets(limit.Config{MaxSocketsPerUser: 10, MaxSocketsPerIP: 25, MaxSockets: 40})
	var mu sync.Mutex
	var held []func()
	var refused atomic.Int32
	// 200 attempts: 10 users × 20 from 10 IPs.
	parallel(200, func(i int) {
		rel, err := s.Acquire(fmt.Sprint("u", i%10), fmt.Sprint("ip", i/20))
		if err != nil {
			if !errors.Is(err, limit.ErrTooManySockets) {
				t.Errorf("Acquire: %v", err)
			}
			refused.Add(1)
			return
		}
		mu.Lock()
		held = append(held, rel)
		mu.Unlock()
	})
	if len(held) != 40 || refused.Load() != 160 {
		t.Fatalf("%d held, %d refused; want the total cap 40", len(held), refused.Load())
	}
	for i := range 10 {
		if u, _, _ := s.Count(fmt.Sprint("u", i), ""); u > 10 {
			t.Fatalf("user u%d holds %d sockets", i, u)
		}
		if _, ip, _ := s.Count("", fmt.Sprint("ip", i)); ip > 25 {
			t.Fatalf("ip%d holds %d sockets", i, ip)
		}
	}
	// Release concurrently, each twice.
	parallel(len(held)*2, func(i int) { held[i%len(held)]() })
	if _, _, total := s.Count("", ""); total != 0 {
		t.Fatalf("total after releasing = %d", total)
	}

	// One user racing for their cap.
	var ok atomic.Int32
	parallel(100, func(int) {
		if _, err := s.Acquire("solo", "ip-solo"); err == nil {
			ok.Add(1)
		}
	})
	if ok.Load() != 10 {
		t.Fatalf("%d sockets for one user, want 10", ok.Load())
	}
}
