package stomp_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	gostomp "github.com/go-stomp/stomp/v3"
	"github.com/go-stomp/stomp/v3/frame"

	"github.com/tollgate-ws/tollgate/stomp"
)

// The interoperability tests below drive the server with go-stomp, a
// third-party STOMP client, over a real WebSocket (github.com/coder/websocket
// adapted to a net.Conn).

type discardLogger struct{}

func (discardLogger) Debugf(string, ...any) {}
func (discardLogger) Debug(string)          {}
func (discardLogger) Infof(string, ...any)  {}
func (discardLogger) Info(string)           {}
func (discardLogger) Warningf(string, ...any) {
}
func (discardLogger) Warning(string)        {}
func (discardLogger) Errorf(string, ...any) {}
func (discardLogger) Error(string)          {}

// goStomp dials /ws with a ticket and connects go-stomp with opts.
func (s *stack) goStomp(token string, opts ...func(*gostomp.Conn) error) (*gostomp.Conn, error) {
	s.t.Helper()
	ws := s.dial("ticket="+s.ticket(token), nil, stomp.Name12, stomp.Name11, stomp.Name10)
	base := []func(*gostomp.Conn) error{
		gostomp.ConnOpt.Host("tollgate"),
		gostomp.ConnOpt.HeartBeat(0, 0),
		gostomp.ConnOpt.Logger(discardLogger{}),
		gostomp.ConnOpt.RcvReceiptTimeout(5 * time.Second),
		gostomp.ConnOpt.DisconnectReceiptTimeout(5 * time.Second),
	}
	return gostomp.Connect(netConn(ws), append(base, opts...)...)
}

func readMsg(t *testing.T, sub *gostomp.Subscription) *gostomp.Message {
	t.Helper()
	select {
	case m, ok := <-sub.C:
		if !ok || m == nil {
			t.Fatal("subscription closed")
		}
		if m.Err != nil {
			t.Fatalf("subscription error: %v", m.Err)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no MESSAGE within 5s")
	}
	return nil
}

func TestGoStompInterop(t *testing.T) {
	s := newStack(t, stackOpts{})
	wtok, xtok := s.user("walt"), s.user("xena")
	conn, err := s.goStomp(wtok, gostomp.ConnOpt.Header("Authorization", "Bearer "+wtok))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if conn.Version() != gostomp.V12 || conn.Server() != "tollgate" || conn.Session() == "" {
		t.Fatalf("negotiated %v %q %q", conn.Version(), conn.Server(), conn.Session())
	}
	sub, err := conn.Subscribe("/topic/general", gostomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	j := s.json(xtok)
	j.send(map[string]any{"type": "join", "room": "general"})
	j.expect("joined")

	// Receipts: Send waits for the RECEIPT.
	if err := conn.Send("/topic/general", "text/plain", []byte("hi from go-stomp"), gostomp.SendOpt.Receipt); err != nil {
		t.Fatalf("send with receipt: %v", err)
	}
	m := readMsg(t, sub)
	if string(m.Body) != "hi from go-stomp" || m.Destination != "/topic/general" || m.Subscription.Id() != sub.Id() ||
		m.Header.Get(frame.MessageId) != "1" || m.Header.Get("sender-name") != "walt" {
		t.Fatalf("MESSAGE %v %q", m.Header, m.Body)
	}
	if jm := j.expect("message"); jm["text"] != "hi from go-stomp" || jm["id"].(float64) != 1 {
		t.Fatalf("JSON got %v", jm)
	}
	j.send(map[string]any{"type": "publish", "room": "general", "text": "hi from json"})
	if m := readMsg(t, sub); string(m.Body) != "hi from json" || m.Header.Get(frame.MessageId) != "2" || m.Header.Get("sender-name") != "xena" {
		t.Fatalf("MESSAGE %v %q", m.Header, m.Body)
	}

	// Transactions: nothing is delivered before COMMIT.
	tx, err := conn.BeginWithError()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := tx.Send("/app/general", "text/plain", []byte(fmt.Sprint("tx", i))); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-sub.C:
		t.Fatalf("delivered before COMMIT: %v", m)
	case <-time.After(100 * time.Millisecond):
	}
	if err := tx.CommitWithReceipt(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if m := readMsg(t, sub); string(m.Body) != fmt.Sprint("tx", i) {
			t.Fatalf("committed %q", m.Body)
		}
	}

	// since-id replay through a second client: ids 3..5 then live 6.
	conn2, err := s.goStomp(wtok)
	if err != nil {
		t.Fatal(err)
	}
	sub2, err := conn2.Subscribe("/topic/general", gostomp.AckClientIndividual, gostomp.SubscribeOpt.Header("since-id", "2"))
	if err != nil {
		t.Fatal(err)
	}
	for want := 3; want <= 5; want++ {
		m := readMsg(t, sub2)
		if m.Header.Get(frame.MessageId) != strconv.Itoa(want) {
			t.Fatalf("replayed %s, want %d", m.Header.Get(frame.MessageId), want)
		}
		if err := conn2.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Send("/topic/general", "text/plain", []byte("live")); err != nil {
		t.Fatal(err)
	}
	if m := readMsg(t, sub2); m.Header.Get(frame.MessageId) != "6" {
		t.Fatalf("live %v", m.Header)
	}
	readMsg(t, sub) // the first client's copy
	if err := sub2.Unsubscribe(); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	disconnect(t, conn2)
	disconnect(t, conn)
	s.checkLogs()
}

func TestGoStompForeignJWTRefused(t *testing.T) {
	s := newStack(t, stackOpts{})
	ytok, ztok := s.user("yves"), s.user("zoe")
	_, err := s.goStomp(ytok, gostomp.ConnOpt.Header("Authorization", "Bearer "+ztok))
	if err == nil {
		t.Fatal("CONNECT with another user's JWT succeeded")
	}
	var se gostomp.Error
	if e, ok := err.(gostomp.Error); ok {
		se = e
	}
	if se.Frame == nil || se.Frame.Command != "ERROR" || se.Frame.Header.Get("code") != "unauthenticated" {
		t.Fatalf("want an ERROR frame, got %v", err)
	}
	// The login/passcode form is checked the same way.
	if _, err := s.goStomp(ytok, gostomp.ConnOpt.Login("yves", ztok)); err == nil {
		t.Fatal("CONNECT with another user's JWT as passcode succeeded")
	}
	s.checkLogs()
}

func TestGoStompSendTokenRequired(t *testing.T) {
	s := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.SendTokenRequired = true }})
	tok := s.user("amos")
	conn, err := s.goStomp(tok)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := conn.Subscribe("/topic/secure", gostomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Send("/topic/secure", "text/plain", []byte("ok"), gostomp.SendOpt.Receipt,
		gostomp.SendOpt.Header("Authorization", "Bearer "+tok)); err != nil {
		t.Fatalf("send with token: %v", err)
	}
	readMsg(t, sub)
	err = conn.Send("/topic/secure", "text/plain", []byte("no token"), gostomp.SendOpt.Receipt)
	if err == nil {
		t.Fatal("SEND without a token succeeded")
	}
	select {
	case m := <-sub.C:
		if m != nil && m.Err == nil {
			t.Fatalf("delivered: %q", m.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription not ended after ERROR")
	}
	s.checkLogs()
}

func TestGoStompHeartbeats(t *testing.T) {
	s := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.Heartbeat = 250 * time.Millisecond }})
	tok := s.user("bea")
	conn, err := s.goStomp(tok, gostomp.ConnOpt.HeartBeat(250*time.Millisecond, 250*time.Millisecond),
		gostomp.ConnOpt.HeartBeatError(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // idle for six periods: both sides' heart-beats keep it
	if err := conn.Send("/topic/x", "text/plain", []byte("x"), gostomp.SendOpt.Receipt); err != nil {
		t.Fatalf("after idling: %v", err)
	}
	disconnect(t, conn)
}

// disconnect sends DISCONNECT and waits for its RECEIPT. The server closes
// the socket right after the RECEIPT (as Spring's broker relay and ActiveMQ
// do), so go-stomp's own close of the WebSocket that follows may find it
// closed already: that error is not a failure.
func disconnect(t *testing.T, c *gostomp.Conn) {
	t.Helper()
	if err := c.Disconnect(); err != nil && !strings.Contains(err.Error(), "close") {
		t.Fatalf("disconnect: %v", err)
	}
}
