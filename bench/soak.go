package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate/ws"
)

// SoakResult is the summary of `bench soak`: what the well-behaved clients
// got, and what the abusive ones met.
type SoakResult struct {
	Mode    string  `json:"mode"`
	Seconds float64 `json:"seconds"`
	Good    int     `json:"good"`
	Abusive int     `json:"abusive"`
	// GoodSent is how many messages the good clients had acknowledged;
	// GoodExpected is that times the good members (each should see each).
	GoodSent       int64            `json:"good_sent"`
	GoodExpected   int64            `json:"good_expected"`
	GoodDelivered  int64            `json:"good_delivered"`
	GoodLost       int64            `json:"good_lost"`
	GoodDuplicated int64            `json:"good_duplicated"`
	GoodRefused    int64            `json:"good_refused"` // error frames the good clients got
	GoodClosed     int64            `json:"good_closed"`  // good sockets that ended during the run
	GoodLatency    Latency          `json:"good_latency"` // publish → delivery, to every good member
	Abuse          map[string]int64 `json:"abuse"`        // what the abusive clients met, by kind and outcome
}

// soakRoom is the room every soak client joins.
const soakRoom = "soak"

// Soak runs good well-behaved clients (each its own account, publishing one
// message every interval to one room) beside abusive clients of four kinds,
// a quarter each, for d:
//   - flooders publish to the room as fast as they can, and reconnect when cut;
//   - handshake flooders dial with garbage tickets, from addresses of their own;
//   - slow readers join the room and read one frame a second;
//   - half-open peers send half an HTTP request and wait.
//
// Abusive clients use source addresses 127.0.1.x, good ones 127.0.0.x, so
// that blocking an abuser's IP is not blocking a good client. The server
// needs --login-rate high enough for the bench's own logins (they all come
// from one address).
func Soak(ctx context.Context, cfg Config, good, abusive int, interval, d time.Duration) (SoakResult, error) {
	cfg.Credential = "ticket"
	if err := cfg.check(good + abusive); err != nil {
		return SoakResult{}, err
	}
	if good < 1 || abusive < 0 || interval <= 0 || d <= 0 || d > time.Hour {
		return SoakResult{}, fmt.Errorf("bench: soak needs good ≥ 1, abusive ≥ 0, an interval, and a duration up to 1h")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	flooders := abusive / 4
	slow := abusive / 4
	cfg.Users = good + flooders + slow
	dl, err := newDialer(ctx, &cfg, "bench-soak")
	if err != nil {
		return SoakResult{}, err
	}
	res := SoakResult{Mode: "soak", Good: good, Abusive: abusive, Abuse: map[string]int64{}}
	var amu sync.Mutex
	counts, finished := map[string]int64{}, false
	// abuse counts what an abuser met. Close callbacks of abusive sockets
	// can still fire after the run; once the result is taken they count
	// nothing.
	abuse := func(what string) {
		amu.Lock()
		if !finished {
			counts[what]++
		}
		amu.Unlock()
	}

	// Good members: each keeps the ids of the good messages it saw.
	type goodMember struct {
		mu   sync.Mutex
		seen map[string]bool
		cl   *ws.Client
	}
	h := &hist{}
	var delivered, dup, refused, closed atomic.Int64
	acks := make([]chan struct{}, good)
	members := make([]*goodMember, good)
	joined := make(chan error, good)
	for i := range good {
		m := &goodMember{seen: map[string]bool{}}
		members[i] = m
		acks[i] = make(chan struct{}, 1)
		ack := acks[i]
		cl, err := dl.dialAs(ctx, i, cfg.source(i), func(data []byte) {
			switch {
			case bytes.Contains(data, []byte(`"type":"joined"`)):
				joined <- nil
			case bytes.Contains(data, []byte(`"type":"ack"`)):
				select {
				case ack <- struct{}{}:
				default:
				}
			case bytes.Contains(data, []byte(`"type":"error"`)):
				refused.Add(1)
			case bytes.Contains(data, []byte(`"type":"message"`)):
				key, sent, ok := soakParse(data)
				if !ok {
					return // an abuser's message
				}
				m.mu.Lock()
				if m.seen[key] {
					dup.Add(1)
				} else {
					m.seen[key] = true
					delivered.Add(1)
					h.add(time.Since(time.Unix(0, sent)))
				}
				m.mu.Unlock()
			}
		}, func(int, string) { closed.Add(1) })
		if err != nil {
			return res, fmt.Errorf("bench: good client %d: %s", i, reason(err))
		}
		m.cl = cl
		defer func() { _ = cl.CloseNow() }()
		if err := cl.Write([]byte(`{"type":"join","room":"` + soakRoom + `"}`)); err != nil {
			return res, err
		}
	}
	for range good {
		select {
		case <-joined:
		case <-ctx.Done():
			return res, fmt.Errorf("bench: good clients did not join in time")
		}
	}

	start := time.Now()
	runCtx, stopRun := context.WithTimeout(ctx, d)
	defer stopRun()
	var wg sync.WaitGroup
	var sent atomic.Int64
	stop := make(chan struct{})
	go progress(cfg.Progress, stop, func() string {
		return fmt.Sprintf("soak: %d good messages acked, %d delivered, %d abusive events", sent.Load(), delivered.Load(), func() int64 {
			amu.Lock()
			defer amu.Unlock()
			var n int64
			for _, v := range counts {
				n += v
			}
			return n
		}())
	})
	// Good publishers: one message per interval each, spread over the
	// interval, each waiting for its ack (at most one in flight).
	for i := range good {
		wg.Go(func() {
			offset := time.Duration(int64(interval) * int64(i) / int64(good))
			t := time.NewTimer(offset)
			defer t.Stop()
			for k := 0; ; k++ {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
				}
				t.Reset(interval)
				text := "s:" + strconv.Itoa(i) + ":" + strconv.Itoa(k) + ":" + strconv.FormatInt(time.Now().UnixNano(), 10)
				frame := []byte(`{"type":"publish","room":"` + soakRoom + `","text":"` + text + `","client_id":"` + text[:len(text)-20] + `"}`)
				if members[i].cl.Write(frame) != nil {
					return
				}
				select {
				case <-acks[i]:
					sent.Add(1)
				case <-time.After(10 * time.Second):
				case <-runCtx.Done():
					return
				}
			}
		})
	}

	// Abusers.
	abuserIP := func(j int) string { return "127.0.1." + strconv.Itoa(1+j%250) }
	for j := range flooders {
		wg.Go(func() { soakFlooder(runCtx, dl, good+j, abuserIP(j), abuse) })
	}
	for j := range slow {
		wg.Go(func() { soakSlowReader(runCtx, dl, good+flooders+j, abuserIP(flooders+j), abuse) })
	}
	for j := range abusive / 4 {
		wg.Go(func() { soakGarbageHandshakes(runCtx, cfg.Addr, abuserIP(flooders+slow+j), abuse) })
	}
	for j := range abusive - flooders - slow - abusive/4 {
		wg.Go(func() { soakHalfOpen(runCtx, cfg.Addr, abuserIP(flooders+slow+abusive/4+j), abuse) })
	}
	wg.Wait()
	// Let the last deliveries arrive.
	want := func() int64 { return sent.Load() * int64(good) }
	for deadline := time.Now().Add(10 * time.Second); delivered.Load() < want() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	res.Seconds = time.Since(start).Seconds()
	res.GoodSent = sent.Load()
	res.GoodExpected = want()
	res.GoodDelivered = delivered.Load()
	res.GoodLost = res.GoodExpected - res.GoodDelivered
	res.GoodDuplicated = dup.Load()
	res.GoodRefused = refused.Load()
	res.GoodClosed = closed.Load()
	res.GoodLatency = h.summary()
	amu.Lock()
	finished = true
	for k, v := range counts {
		res.Abuse[k] = v
	}
	amu.Unlock()
	return res, nil
}

// soakParse finds "s:<sender>:<k>:<unixnano>" in a message frame.
func soakParse(data []byte) (key string, sent int64, ok bool) {
	i := bytes.Index(data, []byte(`"s:`))
	if i < 0 {
		return "", 0, false
	}
	rest := data[i+1:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return "", 0, false
	}
	f := bytes.Split(rest[:end], []byte(":"))
	if len(f) != 4 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(string(f[3]), 10, 64)
	if err != nil {
		return "", 0, false
	}
	return string(f[1]) + ":" + string(f[2]), n, true
}

// dialAs opens socket i with a ticket of account i, from src.
func (d *dialer) dialAs(ctx context.Context, i int, src string, onMsg func([]byte), onClose func(int, string)) (*ws.Client, error) {
	t, err := d.api.ticket(ctx, d.sessions[i%len(d.sessions)].token)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	if d.cfg.Origin != "" {
		h.Set("Origin", d.cfg.Origin)
	}
	return ws.Dial(ctx, ws.ClientConfig{URL: "ws://" + d.cfg.Addr + "/ws?ticket=" + t, Header: h, LocalIP: src,
		Timeout: 10 * time.Second, ReadBufferSize: 1024, OnMessage: onMsg, OnClose: onClose})
}

// soakFlooder publishes as fast as it can; when cut it reconnects every
// second (a blocked account's ticket requests and handshakes are refused).
func soakFlooder(ctx context.Context, d *dialer, i int, src string, abuse func(string)) {
	for ctx.Err() == nil {
		done := make(chan struct{})
		var once sync.Once
		cl, err := d.dialAs(ctx, i, src, func(data []byte) {
			switch {
			case bytes.Contains(data, []byte(`"code":"rate_limited"`)):
				abuse("flood_rate_limited")
			case bytes.Contains(data, []byte(`"type":"ack"`)):
				abuse("flood_accepted")
			}
		}, func(code int, reason string) {
			abuse("flood_closed_" + reason)
			once.Do(func() { close(done) })
		})
		if err != nil {
			abuse("flood_reconnect_refused_" + reason(err))
			sleepCtx(ctx, time.Second)
			continue
		}
		_ = cl.Write([]byte(`{"type":"join","room":"` + soakRoom + `"}`))
		for n := 0; ctx.Err() == nil; n++ {
			select {
			case <-done:
			case <-time.After(20 * time.Millisecond):
				if cl.Write([]byte(`{"type":"publish","room":"`+soakRoom+`","text":"flood `+strconv.Itoa(n)+`"}`)) == nil {
					abuse("flood_publish")
				}
				continue
			}
			break
		}
		_ = cl.CloseNow()
		sleepCtx(ctx, time.Second)
	}
}

// soakSlowReader joins the room and then reads one frame a second, so its
// queue on the server fills; when cut it reconnects.
func soakSlowReader(ctx context.Context, d *dialer, i int, src string, abuse func(string)) {
	for ctx.Err() == nil {
		done := make(chan struct{})
		var once sync.Once
		cl, err := d.dialAs(ctx, i, src, func([]byte) {
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}, func(code int, reason string) {
			abuse("slow_cut_" + strconv.Itoa(code))
			once.Do(func() { close(done) })
		})
		if err != nil {
			abuse("slow_reconnect_refused_" + reason(err))
			sleepCtx(ctx, time.Second)
			continue
		}
		_ = cl.Write([]byte(`{"type":"join","room":"` + soakRoom + `"}`))
		select {
		case <-done:
		case <-ctx.Done():
		}
		_ = cl.CloseNow()
	}
}

// soakGarbageHandshakes dials with garbage tickets, ten a second.
func soakGarbageHandshakes(ctx context.Context, addr, src string, abuse func(string)) {
	for n := 0; ctx.Err() == nil; n++ {
		cl, err := ws.Dial(ctx, ws.ClientConfig{URL: "ws://" + addr + "/ws?ticket=garbage" + strconv.Itoa(n), LocalIP: src, Timeout: 5 * time.Second})
		if err != nil {
			abuse("garbage_handshake_" + reason(err))
		} else {
			abuse("garbage_handshake_accepted")
			_ = cl.CloseNow()
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// soakHalfOpen sends half an HTTP request and waits for the server to cut it.
func soakHalfOpen(ctx context.Context, addr, src string, abuse func(string)) {
	for ctx.Err() == nil {
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := dl.DialContext(ctx, "tcp", addr)
		if err != nil {
			abuse("halfopen_dial_failed")
			sleepCtx(ctx, time.Second)
			continue
		}
		start := time.Now()
		_, _ = c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Minute))
		go func() { <-ctx.Done(); _ = c.Close() }()
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		_ = c.Close()
		if ctx.Err() == nil {
			// The server's header deadline is --read-header-timeout (10 s
			// by default): say whether the cut came within it.
			if time.Since(start) <= 11*time.Second {
				abuse("halfopen_cut_within_11s")
			} else {
				abuse("halfopen_cut_later")
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
