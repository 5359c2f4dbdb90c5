package main

import (
	"context"
	"net"
	"net/http"
	"syscall"

	"encoding/json"
	"fmt"
	"github.com/coder/websocket"
	"strings"
	"testing"
	"time"
)

// TestSlowConsumerResumesThroughHistory: a member that stops reading is cut
// (the server does not grow its queue for it), and after reconnecting it
// gets every message it missed through history: nothing is lost.
func TestSlowConsumerResumesThroughHistory(t *testing.T) {
	t.Parallel()
	logs, taken := &syncBuffer{}, &secrets{}
	s := startServer(t, t.TempDir(), logs, taken, "--send-queue", "8", "--publish-rate", "10000", "--write-timeout", "2s")
	wes, zoe := s.register("wes"), s.register("zoe")
	pub := s.open(zoe)
	// The slow member's socket has a small receive buffer, so that the
	// server's queue, not the kernel, has to hold what it does not read.
	d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	sc, _, err := websocket.Dial(dctx, s.ws+"?ticket="+s.ticket(wes), &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}})
	if err != nil {
		t.Fatal(err)
	}
	sc.SetReadLimit(1 << 20)
	slow := &sock{t: t, c: sc}
	slow.expect("welcome")
	for _, c := range []*sock{slow, pub} {
		c.send(frame{"type": "join", "room": "firehose"})
		c.expect("joined")
	}
	// The slow member reads nothing from here on. ~4,000-character messages
	// fill the TCP buffers quickly; then its queue of 8 overflows.
	text := strings.Repeat("x", 3990)
	const n = 1500
	// One publish at a time (each waits for its ack), so only the member
	// that does not read falls behind.
	for i := range n {
		pub.send(frame{"type": "publish", "room": "firehose", "text": fmt.Sprintf("%d:%s", i, text)})
		waitFrame(t, pub, "ack")
	}
	// Drain what reached the slow member before it was cut.
	var last int64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, b, err := slow.c.Read(ctx)
		if err != nil {
			break
		}
		var f frame
		if json.Unmarshal(b, &f) == nil && f.str("type") == "message" {
			if id := f.num("id"); id != last+1 {
				t.Fatalf("the slow member got id %d after %d", id, last)
			} else {
				last = id
			}
		}
	}
	if last >= n {
		t.Fatalf("the slow member was never cut (it got all %d messages live)", n)
	}
	// Reconnect and resume.
	again := s.open(wes)
	again.c.SetReadLimit(8 << 20)
	for last < n {
		again.send(frame{"type": "history", "room": "firehose", "since": last, "limit": 200})
		h := again.expect("history")
		msgs, _ := h["messages"].([]any)
		if len(msgs) == 0 {
			t.Fatalf("history since %d is empty; %d messages were acked", last, n)
		}
		for _, m := range msgs {
			id := int64(m.(map[string]any)["id"].(float64))
			if id != last+1 {
				t.Fatalf("history gives id %d after %d", id, last)
			}
			last = id
		}
	}
}
