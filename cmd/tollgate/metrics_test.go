package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestMetricsAfterScriptedSession scrapes GET /metrics after a session that
// touches every series of issue 10 — tickets issued, redeemed, reused,
// expired and forged; bearer, ticket and legacy ?token= sockets; a socket
// cap; a publish; a slow consumer; an admin block; a logout — and checks
// each series' count, then that no password, token, ticket, cookie, user
// name, user id, IP address or admin-written reason appears anywhere in the
// output.
func TestMetricsAfterScriptedSession(t *testing.T) {
	logs, taken := &syncBuffer{}, &secrets{}
	tokenFile := adminTokenFile(t, taken)
	s := startServer(t, t.TempDir(), logs, taken, "--admin-token-file", tokenFile,
		"--ticket-ttl", "5s", "--max-sockets-per-user", "2", "--publish-rate", "10000", "--send-queue", "8",
		"--legacy-query-token", "--legacy-query-token-until", "2099-12-31")
	names := []string{"alice", "bob", "carol", "dave", "erin"}
	acc := map[string]account{}
	for _, n := range names {
		acc[n] = s.register(n)
	}
	var userIDs []string
	welcome := func(c *sock) {
		t.Helper()
		w := c.expect("welcome")
		if id, _ := w.obj("user")["id"].(string); id != "" {
			userIDs = append(userIDs, id)
		}
	}
	dialOK := func(query string, h http.Header) *sock {
		t.Helper()
		c, status, err := s.dial(query, h)
		if err != nil {
			t.Fatalf("dial: %d %v", status, err)
		}
		welcome(c)
		return c
	}
	refused := func(query string, h http.Header, want int) {
		t.Helper()
		if _, status, err := s.dial(query, h); err == nil || status != want {
			t.Fatalf("dial: want %d, got %d (%v)", want, status, err)
		}
	}

	// Two tickets of bob's that will run out: one never presented, one
	// presented too late.
	idle, late := s.ticket(acc["bob"]), s.ticket(acc["bob"])
	expiredAt := time.Now().Add(5200 * time.Millisecond)

	// Ticket sockets, a replayed ticket and a forged one.
	a1 := dialOK("ticket="+s.ticket(acc["alice"]), nil)
	replay := s.ticket(acc["alice"])
	a2 := dialOK("ticket="+replay, nil)
	refused("ticket="+replay, nil, 401)
	refused("ticket="+strings.Repeat("A", 43), nil, 401)
	// Bearer and legacy sockets; the socket cap (alice holds 2 of 2).
	b1 := dialOK("", bearer(acc["bob"].access))
	c1 := dialOK("token="+acc["carol"].access, nil)
	refused("", bearer(acc["alice"].access), 429)

	// One publish reaches both members.
	a1.send(frame{"type": "join", "room": "general"})
	a1.expect("joined")
	b1.send(frame{"type": "join", "room": "general"})
	b1.expect("joined")
	a1.send(frame{"type": "publish", "room": "general", "text": "hi", "client_id": "m1"})
	for range 2 {
		if f := a1.read(); f.str("type") != "ack" && f.str("type") != "message" {
			t.Fatalf("publisher got %v", f)
		}
	}
	b1.expect("message")

	// A slow consumer: dave joins with a tiny receive buffer and stops
	// reading while erin floods the room; dave is cut, erin is not.
	d1 := dialSmallBuffer(t, s, acc["dave"])
	welcome(d1)
	d1.send(frame{"type": "join", "room": "flood"})
	d1.expect("joined")
	e1 := dialOK("", bearer(acc["erin"].access))
	e1.send(frame{"type": "join", "room": "flood"})
	e1.expect("joined")
	// Erin reads everything she gets and waits for each ack before the next
	// publish, so that her own queue never holds more than a frame or two.
	drained, acks := make(chan struct{}), make(chan struct{}, 1)
	go func() {
		defer close(drained)
		for {
			_, b, err := e1.c.Read(context.Background())
			if err != nil {
				return
			}
			if strings.Contains(string(b), `"type":"ack"`) {
				acks <- struct{}{}
			}
		}
	}()
	big := strings.Repeat("x", 4000)
	flood := 0
	cut := func() bool { return scrapeSeries(t, s.url, "tollgate_slow_consumer_disconnects_total") > 0 }
	for ; flood < 2000 && (flood%8 != 0 || !cut()); flood++ {
		e1.send(frame{"type": "publish", "room": "flood", "text": big})
		select {
		case <-acks:
		case <-time.After(10 * time.Second):
			t.Fatalf("no ack for publish %d", flood)
		}
	}
	if flood == 2000 {
		t.Fatal("the non-reading socket was never cut as a slow consumer")
	}

	// An admin block closes both of alice's sockets; a logout closes bob's.
	r := s.call("POST", "/api/admin/blocks", map[string]string{"target": "user:alice", "reason": "reason-written-by-an-admin"},
		bearer(testAdminToken))
	if r.status != 200 && r.status != 201 {
		t.Fatalf("admin block: %s", r)
	}
	for _, c := range []*sock{a1, a2} {
		if code, reason := c.closed(); code != websocket.StatusPolicyViolation || reason != "blocked" {
			t.Fatalf("blocked socket: %d %q", code, reason)
		}
	}
	if r := s.call("POST", "/api/auth/logout", nil, bearer(acc["bob"].access)); r.status != 200 {
		t.Fatalf("logout: %s", r)
	}
	if code, reason := b1.closed(); code != websocket.StatusPolicyViolation || reason != "session_revoked" {
		t.Fatalf("logged-out socket: %d %q", code, reason)
	}

	// The late ticket.
	time.Sleep(time.Until(expiredAt))
	refused("ticket="+late, nil, 401)
	_ = idle

	// Every series, with the count the session implies. Socket closes
	// reach the server's books a moment after the client sees them.
	published := float64(1 + flood)
	want := map[string]float64{
		`tollgate_sockets_open{credential="ticket",protocol="tollgate.v1"}`:                      0,
		`tollgate_sockets_open{credential="bearer",protocol="tollgate.v1"}`:                      1, // erin
		`tollgate_sockets_open{credential="legacy_token",protocol="tollgate.v1"}`:                1, // carol
		`tollgate_handshakes_total{code="none",result="accepted"}`:                               6,
		`tollgate_handshakes_total{code="invalid_ticket",result="refused"}`:                      3,
		`tollgate_handshakes_total{code="rate_limited",result="refused"}`:                        1,
		`tollgate_handshake_duration_seconds_count{credential="ticket",result="accepted"}`:       2,
		`tollgate_handshake_duration_seconds_count{credential="bearer",result="accepted"}`:       3,
		`tollgate_handshake_duration_seconds_count{credential="legacy_token",result="accepted"}`: 1,
		`tollgate_handshake_duration_seconds_count{credential="none",result="refused"}`:          4,
		`tollgate_tickets_issued_total`:                                                          4,
		`tollgate_tickets_redeemed_total`:                                                        2,
		`tollgate_tickets_reused_total`:                                                          1,
		`tollgate_tickets_unknown_total`:                                                         1,
		`tollgate_tickets_expired_total`:                                                         2,
		`tollgate_messages_published_total`:                                                      published,
		`tollgate_publish_to_deliver_seconds_count`:                                              published,
		`tollgate_slow_consumer_disconnects_total`:                                               1,
		`tollgate_socket_disconnects_total{reason="slow_consumer"}`:                              1,
		`tollgate_socket_disconnects_total{reason="blocked"}`:                                    2,
		`tollgate_socket_disconnects_total{reason="session_revoked"}`:                            1,
		`tollgate_rate_limited_total{what="sockets"}`:                                            1,
		`tollgate_rate_limited_total{what="publish"}`:                                            0,
		`tollgate_blocks_total{kind="user",reason="admin"}`:                                      1,
		`tollgate_blocks_total{kind="user",reason="rate_limit_violations"}`:                      0,
		`tollgate_legacy_token_uses_total{result="accepted"}`:                                    1,
		`tollgate_revocation_to_close_seconds_count{kind="block_user"}`:                          2,
		`tollgate_revocation_to_close_seconds_count{kind="revoke_session"}`:                      1,
	}
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		body = scrapeMetrics(t, s.url)
		bad := seriesMismatches(body, want)
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("series with unexpected values:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Deliveries: 2 of the first publish; erin gets each of hers, dave each
	// until he was cut (then refused until his socket left the room).
	delivered, dropped := seriesValue(body, "tollgate_messages_delivered_total"), seriesValue(body, "tollgate_messages_dropped_total")
	if delivered+dropped > 2+2*float64(flood) || delivered < 2+float64(flood) {
		t.Fatalf("delivered %v + dropped %v after %d flood messages", delivered, dropped, flood)
	}
	for _, h := range []string{"tollgate_handshake_duration_seconds_bucket", "tollgate_publish_to_deliver_seconds_bucket",
		"tollgate_revocation_to_close_seconds_bucket", "process_resident_memory_bytes", "go_goroutines"} {
		if !strings.Contains(body, h) {
			t.Errorf("no %s in the output", h)
		}
	}

	// Nothing identifying or secret, anywhere in the output.
	taken.mu.Lock()
	forbidden := append([]string(nil), taken.list...)
	taken.mu.Unlock()
	forbidden = append(forbidden, names...)
	forbidden = append(forbidden, userIDs...)
	forbidden = append(forbidden, "127.0.0.1", "reason-written-by-an-admin", idle, late, replay)
	if len(userIDs) != 6 {
		t.Fatalf("collected %d user ids", len(userIDs))
	}
	for i, x := range forbidden {
		if strings.Contains(body, x) {
			t.Errorf("forbidden value #%d (%d bytes) appears in /metrics", i, len(x))
		}
	}
	for _, c := range []*sock{c1, e1} {
		c.close()
	}
	<-drained
	d1.close()
	taken.assertAbsent(t, logs.String())
}

// TestMetricsListener: with --metrics-addr, /metrics and pprof are served
// there and neither is on the public listener.
func TestMetricsListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	maddr := ln.Addr().String()
	ln.Close()
	s := startServer(t, t.TempDir(), &syncBuffer{}, &secrets{}, "--metrics-addr", maddr)
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		if code, _ := metricsGet(t, s.url+p); code != 404 {
			t.Errorf("public listener %s: %d, want 404", p, code)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := metricsGet(t, "http://"+maddr+"/metrics")
		if code == 200 && strings.Contains(body, "tollgate_handshakes_total") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics listener /metrics: %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := metricsGet(t, "http://"+maddr+"/debug/pprof/"); code != 200 {
		t.Errorf("metrics listener pprof: %d", code)
	}
}

// dialSmallBuffer opens a bearer socket for a whose TCP receive buffer is
// a few KiB, so that the server's writes stall as soon as it stops reading.
// The welcome frame is left to read.
func dialSmallBuffer(t *testing.T, s *testServer, a account) *sock {
	t.Helper()
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.ws, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: bearer(a.access),
		Subprotocols: []string{"tollgate.v1"}})
	if err != nil {
		t.Fatalf("dial with a small buffer: %v", err)
	}
	c.SetReadLimit(1 << 20)
	return &sock{t: t, c: c}
}

func metricsGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func scrapeMetrics(t *testing.T, base string) string {
	t.Helper()
	code, body := metricsGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	return body
}

func scrapeSeries(t *testing.T, base, series string) float64 {
	t.Helper()
	return seriesValue(scrapeMetrics(t, base), series)
}

// value is the sample of one series in the text format (labels in the
// order Prometheus writes them: sorted by name), -1 when it is missing.
func seriesValue(body, series string) float64 {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

func seriesMismatches(body string, want map[string]float64) []string {
	var bad []string
	for k, v := range want {
		if got := seriesValue(body, k); got != v {
			bad = append(bad, fmt.Sprintf("%s = %v, want %v", k, got, v))
		}
	}
	return bad
}
