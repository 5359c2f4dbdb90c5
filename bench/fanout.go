package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate/ws"
)

// FanoutResult is the summary of `bench fanout`.
type FanoutResult struct {
	Mode            string  `json:"mode"`
	Target          string  `json:"target"` // tollgate or baseline
	K               int     `json:"k"`
	P               int     `json:"p"`
	Rate            float64 `json:"rate"`
	Expected        int64   `json:"expected"`
	Delivered       int64   `json:"delivered"`
	Lost            int64   `json:"lost"`
	Duplicated      int64   `json:"duplicated"`
	Seconds         float64 `json:"seconds"`
	DeliveredPerSec float64 `json:"delivered_per_sec"`
	Latency         Latency `json:"latency"`
	MembersFailed   int     `json:"members_failed"`
}

// hist is a lock-free latency histogram: 10 µs buckets up to 100 ms, then
// 1 ms buckets up to 60 s.
type hist struct{ b [10000 + 60000]atomic.Int64 }

func (h *hist) add(d time.Duration) {
	us := d.Microseconds()
	var i int64
	switch {
	case us < 0:
		i = 0
	case us < 100_000:
		i = us / 10
	default:
		i = 10000 + min((us-100_000)/1000, 59999)
	}
	h.b[i].Add(1)
}

func (h *hist) summary() Latency {
	var total int64
	for i := range h.b {
		total += h.b[i].Load()
	}
	if total == 0 {
		return Latency{}
	}
	at := func(i int) float64 {
		if i < 10000 {
			return float64(i*10+10) / 1000
		}
		return 100 + float64(i-10000+1)
	}
	q := func(p float64) float64 {
		want := int64(p * float64(total))
		var n int64
		for i := range h.b {
			n += h.b[i].Load()
			if n > want {
				return at(i)
			}
		}
		return at(len(h.b) - 1)
	}
	var mx float64
	for i := len(h.b) - 1; i >= 0; i-- {
		if h.b[i].Load() > 0 {
			mx = at(i)
			break
		}
	}
	return Latency{P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: mx}
}

// member tracks what one subscriber saw.
type member struct {
	seen []uint64 // bitset of sequence numbers
	dup  atomic.Int64
}

var marker = []byte(`b:`)

// parse finds "b:<seq>:<unixnano>" in a frame (raw on the baseline, inside
// the JSON text on tollgate).
func parse(data []byte) (seq int, sent int64, ok bool) {
	i := bytes.Index(data, marker)
	if i < 0 {
		return 0, 0, false
	}
	rest := data[i+2:]
	j := bytes.IndexByte(rest, ':')
	if j < 0 {
		return 0, 0, false
	}
	s, err := strconv.Atoi(string(rest[:j]))
	if err != nil {
		return 0, 0, false
	}
	rest = rest[j+1:]
	k := 0
	for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
		k++
	}
	ns, err := strconv.ParseInt(string(rest[:k]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return s, ns, true
}

// Fanout connects k members to one room, then one publisher sends p
// messages at rate per second; it reports delivery latency (send to receipt),
// delivered messages per second, and lost and duplicated deliveries.
// baseline selects the bare server's protocol (raw text broadcast, no rooms).
func Fanout(ctx context.Context, cfg Config, k, p int, rate float64, baseline bool, drain time.Duration) (FanoutResult, error) {
	if err := cfg.check(k + 1); err != nil {
		return FanoutResult{}, err
	}
	if p <= 0 || p > 1_000_000 || rate <= 0 || rate > 100_000 {
		return FanoutResult{}, fmt.Errorf("bench: messages must be 1..1000000 and rate 0..100000/s")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	d, err := newDialer(ctx, &cfg, "bench-f")
	if err != nil {
		return FanoutResult{}, err
	}
	target := "tollgate"
	if baseline {
		target = "baseline"
	}
	res := FanoutResult{Mode: "fanout", Target: target, K: k, P: p, Rate: rate}
	h := &hist{}
	var delivered atomic.Int64
	var lastNano atomic.Int64
	members := make([]*member, k)
	joined := make(chan bool, k+1)
	clients := make([]*ws.Client, 0, k+1)
	var cmu sync.Mutex
	defer func() {
		for _, c := range clients {
			_ = c.CloseNow()
		}
	}()

	join := []byte(`{"type":"join","room":"bench"}`)
	open := func(i int, m *member) error {
		cl, err := d.dial(ctx, i, func(data []byte) {
			// tollgate confirms a join with "joined"; the baseline echoes
			// the frame back, which proves the server has the member too.
			if (!baseline && bytes.Contains(data, []byte(`"type":"joined"`))) || (baseline && bytes.Equal(data, join)) {
				joined <- true
				return
			}
			seq, sent, ok := parse(data)
			if !ok || m == nil || seq < 0 || seq >= p {
				return
			}
			now := time.Now()
			w, bit := seq/64, uint64(1)<<(seq%64)
			if m.seen[w]&bit != 0 {
				m.dup.Add(1)
				return
			}
			m.seen[w] |= bit
			h.add(now.Sub(time.Unix(0, sent)))
			delivered.Add(1)
			lastNano.Store(now.UnixNano())
		}, nil)
		if err != nil {
			return err
		}
		cmu.Lock()
		clients = append(clients, cl)
		cmu.Unlock()
		return cl.Write(join)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 100)
	var failed atomic.Int64
	for i := range k {
		members[i] = &member{seen: make([]uint64, (p+63)/64)}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := open(i, members[i]); err != nil {
				failed.Add(1)
				joined <- false
			}
		}()
	}
	wg.Wait()
	// Wait for every member's join to be confirmed.
	for range k {
		select {
		case <-joined:
		case <-ctx.Done():
			return res, fmt.Errorf("bench: members did not join in time")
		}
	}
	res.MembersFailed = int(failed.Load())
	// The publisher (not counted as a member).
	pub, err := d.dial(ctx, k, func([]byte) {}, nil)
	if err != nil {
		return res, fmt.Errorf("bench: publisher: %s", reason(err))
	}
	cmu.Lock()
	clients = append(clients, pub)
	cmu.Unlock()
	if !baseline {
		_ = pub.Write(join)
		time.Sleep(100 * time.Millisecond)
	}
	stop := make(chan struct{})
	go progress(cfg.Progress, stop, func() string {
		return fmt.Sprintf("fanout: %d deliveries", delivered.Load())
	})
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for i := range p {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		text := "b:" + strconv.Itoa(i) + ":" + strconv.FormatInt(time.Now().UnixNano(), 10)
		var frame []byte
		if baseline {
			frame = []byte(text)
		} else {
			frame, _ = json.Marshal(map[string]string{"type": "publish", "room": "bench", "text": text})
		}
		if err := pub.Write(frame); err != nil {
			return res, fmt.Errorf("bench: publish: %v", err)
		}
	}
	expected := int64(k-res.MembersFailed) * int64(p)
	deadline := time.Now().Add(drain)
	for delivered.Load() < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	res.Expected = expected
	res.Delivered = delivered.Load()
	for _, m := range members {
		if m != nil {
			res.Duplicated += m.dup.Load()
		}
	}
	res.Lost = expected - res.Delivered
	end := time.Unix(0, lastNano.Load())
	res.Seconds = end.Sub(start).Seconds()
	if res.Seconds > 0 {
		res.DeliveredPerSec = float64(res.Delivered) / res.Seconds
	}
	res.Latency = h.summary()
	return res, nil
}
