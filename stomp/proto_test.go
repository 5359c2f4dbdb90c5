package stomp_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/stomp"
	"github.com/tollgate-ws/tollgate/ws"
)

func TestTicketAndConnectJWT(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.user("alice")
	r := s.raw("ticket="+s.ticket(tok), nil)
	c := r.connect("Authorization:Bearer " + tok)
	if c.Value("version") != "1.2" || c.Value("user-name") != "alice" || c.Value("session") == "" ||
		c.Value("server") != "tollgate" || c.Value("heart-beat") != "10000,10000" || c.Value("user-id") == "" {
		t.Fatalf("CONNECTED: %v", c)
	}
	r.send("SUBSCRIBE", "", "id:s1", "destination:/topic/general", "receipt:r1")
	if rc := r.expect("RECEIPT"); rc.Value("receipt-id") != "r1" {
		t.Fatalf("receipt: %v", rc)
	}
	r.send("SEND", "hello: world\nline two", "destination:/topic/general", "receipt:r2", "content-type:text/plain")
	m := r.expect("MESSAGE")
	if m.Value("subscription") != "s1" || m.Value("message-id") != "1" || m.Value("destination") != "/topic/general" ||
		m.Value("content-type") != "text/plain;charset=utf-8" || m.Value("content-length") != strconv.Itoa(len(m.Body)) ||
		m.Value("sender-name") != "alice" || m.Value("sender-id") != c.Value("user-id") || m.Value("ts") == "" ||
		string(m.Body) != "hello: world\nline two" {
		t.Fatalf("MESSAGE: %v %q", m, m.Body)
	}
	if rc := r.expect("RECEIPT"); rc.Value("receipt-id") != "r2" || rc.Value("message-id") != "1" {
		t.Fatalf("SEND receipt: %v", rc)
	}
	// The same socket without any CONNECT credential: the ticket decided.
	r2 := s.raw("ticket="+s.ticket(tok), nil)
	if c := r2.connect(); c.Value("user-name") != "alice" {
		t.Fatalf("CONNECTED without JWT: %v", c)
	}
	// The JWT may also come as passcode (Spring's login/passcode).
	r3 := s.raw("ticket="+s.ticket(tok), nil)
	r3.connect("login:alice", "passcode:"+tok)
	r.send("DISCONNECT", "", "receipt:bye")
	if rc := r.expect("RECEIPT"); rc.Value("receipt-id") != "bye" {
		t.Fatalf("DISCONNECT receipt: %v", rc)
	}
	if code, _ := r.closed(); code != websocket.StatusNormalClosure {
		t.Fatalf("after DISCONNECT: close %d", code)
	}
	s.checkLogs()
}

func TestConnectCredentialRefused(t *testing.T) {
	s := newStack(t, stackOpts{})
	alice, bob := s.user("alice"), s.user("bob")
	tests := []struct {
		name    string
		headers []string
		code    string
	}{
		{"another user's JWT", []string{"Authorization:Bearer " + bob}, "unauthenticated"},
		{"another user's JWT as passcode", []string{"passcode:" + bob}, "unauthenticated"},
		{"garbage JWT", []string{"Authorization:Bearer not.a.jwt"}, "unauthenticated"},
		{"not Bearer", []string{"Authorization:Basic " + alice}, "unauthenticated"},
		{"Authorization twice", []string{"Authorization:Bearer " + alice, "authorization:Bearer " + alice}, "unauthenticated"},
		{"Authorization and a different passcode", []string{"Authorization:Bearer " + alice, "passcode:" + bob}, "unauthenticated"},
		{"ticket on an authenticated socket", []string{"ticket:whatever"}, "unauthenticated"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.raw("ticket="+s.ticket(alice), nil)
			r.send("CONNECT", "", append([]string{"accept-version:1.2", "host:x", "receipt:c1"}, tc.headers...)...)
			e := r.expect("ERROR")
			if e.Value("code") != tc.code || e.Value("message") == "" {
				t.Fatalf("ERROR: %v", e)
			}
			for _, secret := range []string{alice, bob} {
				if strings.Contains(e.Value("message"), secret) || strings.Contains(string(e.Body), secret) {
					t.Fatal("ERROR frame holds a credential")
				}
			}
			if code, reason := r.closed(); code != websocket.StatusPolicyViolation || reason != tc.code {
				t.Fatalf("close %d %q", code, reason)
			}
		})
	}
	s.checkLogs()
}

func TestProtocolErrorsCloseWithError(t *testing.T) {
	s := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.Limits.MaxFrameBytes = 4096 }})
	tok := s.user("carol")
	tests := []struct {
		name  string
		pre   bool // CONNECT first
		frame string
		code  string
		close websocket.StatusCode
	}{
		{"SEND before CONNECT", false, "SEND\ndestination:/topic/a\n\nx\x00", "invalid_request", websocket.StatusNormalClosure},
		{"unsupported version", false, "CONNECT\naccept-version:2.0\n\n\x00", "invalid_request", websocket.StatusNormalClosure},
		{"bad heart-beat", false, "CONNECT\naccept-version:1.2\nheart-beat:x,1\n\n\x00", "invalid_request", websocket.StatusNormalClosure},
		{"lowercase command", true, "send\ndestination:/topic/a\n\nx\x00", "invalid_request", websocket.StatusNormalClosure},
		{"unknown command", true, "FROB\n\n\x00", "invalid_request", websocket.StatusNormalClosure},
		{"header without colon", true, "SEND\ndestination\n\nx\x00", "invalid_request", websocket.StatusNormalClosure},
		{"bad escape", true, "SEND\ndestination:/topic/a\\t\n\nx\x00", "invalid_request", websocket.StatusNormalClosure},
		{"content-length not NUL-terminated", true, "SEND\ndestination:/topic/a\ncontent-length:1\n\nxy\x00", "invalid_request", websocket.StatusNormalClosure},
		{"frame too large", true, "SEND\ndestination:/topic/a\n\n" + strings.Repeat("x", 5000) + "\x00", "message_too_big", websocket.StatusMessageTooBig},
		{"SEND without destination", true, "SEND\n\nx\x00", "invalid_request", websocket.StatusNormalClosure},
		{"SUBSCRIBE without id", true, "SUBSCRIBE\ndestination:/topic/a\n\n\x00", "invalid_request", websocket.StatusNormalClosure},
		{"bad ack mode", true, "SUBSCRIBE\nid:1\ndestination:/topic/a\nack:sometimes\n\n\x00", "invalid_request", websocket.StatusNormalClosure},
		{"ACK without id", true, "ACK\n\n\x00", "invalid_request", websocket.StatusNormalClosure},
		{"COMMIT unknown transaction", true, "COMMIT\ntransaction:t9\n\n\x00", "invalid_request", websocket.StatusNormalClosure},
		{"second CONNECT", true, "CONNECT\naccept-version:1.2\n\n\x00", "invalid_request", websocket.StatusNormalClosure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.raw("ticket="+s.ticket(tok), nil)
			if tc.pre {
				r.connect()
			}
			r.write(tc.frame)
			e := r.expect("ERROR")
			if e.Value("code") != tc.code || e.Value("message") == "" {
				t.Fatalf("ERROR: %v", e)
			}
			if code, _ := r.closed(); code != tc.close {
				t.Fatalf("close %d, want %d", code, tc.close)
			}
		})
	}
}

func TestSendTokenRequired(t *testing.T) {
	s := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.SendTokenRequired = true }})
	dave, erin := s.user("dave"), s.user("erin")
	r := s.raw("ticket="+s.ticket(dave), nil)
	r.connect("Authorization:Bearer " + dave)
	r.send("SUBSCRIBE", "", "id:0", "destination:/topic/ops")
	r.send("SEND", "with token", "destination:/topic/ops", "Authorization:Bearer "+dave, "receipt:ok")
	if m := r.expect("MESSAGE"); string(m.Body) != "with token" {
		t.Fatalf("MESSAGE %q", m.Body)
	}
	r.expect("RECEIPT")
	for name, hdr := range map[string]string{
		"no token":      "x-none:1",
		"foreign token": "Authorization:Bearer " + erin,
		"garbage token": "Authorization:Bearer abc.def.ghi",
	} {
		t.Run(name, func(t *testing.T) {
			r := s.raw("ticket="+s.ticket(dave), nil)
			r.connect()
			r.send("SUBSCRIBE", "", "id:0", "destination:/topic/ops")
			r.send("SEND", "nope", "destination:/topic/ops", hdr, "receipt:r")
			e := r.expect("ERROR")
			if e.Value("code") != "unauthenticated" || e.Value("receipt-id") != "r" {
				t.Fatalf("ERROR: %v", e)
			}
			if code, _ := r.closed(); code != websocket.StatusPolicyViolation {
				t.Fatalf("close %d", code)
			}
		})
	}
	s.checkLogs()
}

func TestJSONAndStompShareRooms(t *testing.T) {
	s := newStack(t, stackOpts{})
	ftok, gtok := s.user("frank"), s.user("gina")
	j := s.json(gtok)
	j.send(map[string]any{"type": "join", "room": "lobby"})
	j.expect("joined")
	r := s.raw("ticket="+s.ticket(ftok), nil)
	r.connect()
	r.send("SUBSCRIBE", "", "id:sub-0", "destination:/topic/lobby", "receipt:s")
	r.expect("RECEIPT")

	r.send("SEND", "from stomp", "destination:/app/lobby")
	m := j.expect("message")
	if m["text"] != "from stomp" || m["id"].(float64) != 1 || m["from"].(map[string]any)["name"] != "frank" {
		t.Fatalf("JSON got %v", m)
	}
	if f := r.expect("MESSAGE"); f.Value("message-id") != "1" {
		t.Fatalf("own MESSAGE %v", f)
	}
	j.send(map[string]any{"type": "publish", "room": "lobby", "text": "from json", "client_id": "c1"})
	f := r.expect("MESSAGE")
	if string(f.Body) != "from json" || f.Value("message-id") != "2" || f.Value("sender-name") != "gina" ||
		f.Value("destination") != "/topic/lobby" || f.Value("subscription") != "sub-0" {
		t.Fatalf("STOMP got %v %q", f, f.Body)
	}
}

func TestRateLimitedSendKeepsConnection(t *testing.T) {
	s := newStack(t, stackOpts{limit: 2})
	tok := s.user("hank")
	r := s.raw("ticket="+s.ticket(tok), nil)
	r.connect()
	r.send("SUBSCRIBE", "", "id:errs", "destination:/user/queue/errors")
	r.send("SUBSCRIBE", "", "id:t", "destination:/topic/busy")
	for i := range 2 {
		r.send("SEND", fmt.Sprint("m", i), "destination:/topic/busy")
		r.expect("MESSAGE")
	}
	r.send("SEND", "one too many", "destination:/topic/busy", "receipt:r3")
	e := r.expect("MESSAGE")
	if e.Value("destination") != "/user/queue/errors" || e.Value("subscription") != "errs" ||
		e.Value("code") != "rate_limited" || e.Value("retry-after") != "42" || e.Value("receipt-id") != "r3" {
		t.Fatalf("error MESSAGE: %v", e)
	}
	r.expect("RECEIPT")
	// Refused requests of other kinds use the same queue.
	r.send("SEND", "x", "destination:/topic/not-joined")
	if e := r.expect("MESSAGE"); e.Value("code") != "not_joined" {
		t.Fatalf("not joined: %v", e)
	}
	r.send("SEND", "x", "destination:/queue/elsewhere")
	if e := r.expect("MESSAGE"); e.Value("code") != "invalid_request" {
		t.Fatalf("bad destination: %v", e)
	}
	r.send("SUBSCRIBE", "", "id:t", "destination:/topic/other")
	if e := r.expect("MESSAGE"); e.Value("code") != "invalid_request" {
		t.Fatalf("duplicate id: %v", e)
	}
	r.writeBinary("SEND\ndestination:/topic/busy\ncontent-length:2\n\n\xff\xfe\x00")
	if e := r.expect("MESSAGE"); e.Value("code") != "invalid_request" {
		t.Fatalf("binary body: %v", e)
	}
	r.send("SEND", strings.Repeat("é", 4001), "destination:/topic/busy")
	if e := r.expect("MESSAGE"); e.Value("code") != "too_long" {
		t.Fatalf("too long: %v", e)
	}
	r.send("UNSUBSCRIBE", "", "id:t", "receipt:u")
	r.expect("RECEIPT")
}

func TestSinceIDReplayWithoutGaps(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.user("ivan")
	pub := s.json(s.user("judy"))
	pub.send(map[string]any{"type": "join", "room": "hist"})
	pub.expect("joined")
	for i := 1; i <= 30; i++ {
		pub.send(map[string]any{"type": "publish", "room": "hist", "text": fmt.Sprint("m", i)})
	}
	waitFor(t, func() bool { n, _ := s.msgs.LastID(t.Context(), "hist"); return n == 30 })

	// A publisher keeps going while the subscription replays.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 31; i <= 80; i++ {
			select {
			case <-stop:
				return
			default:
			}
			pub.send(map[string]any{"type": "publish", "room": "hist", "text": fmt.Sprint("m", i)})
			time.Sleep(time.Millisecond)
		}
	}()
	r := s.raw("ticket="+s.ticket(tok), nil)
	r.connect()
	r.send("SUBSCRIBE", "", "id:h", "destination:/topic/hist", "since-id:10")
	for want := 11; want <= 80; want++ {
		f := r.expect("MESSAGE")
		if f.Value("message-id") != strconv.Itoa(want) || string(f.Body) != fmt.Sprint("m", want) {
			t.Fatalf("got id %s %q, want %d", f.Value("message-id"), f.Body, want)
		}
	}
	close(stop)
	<-done
	// since-id at or past the newest id: nothing to replay, live only.
	r2 := s.raw("ticket="+s.ticket(tok), nil)
	r2.connect()
	r2.send("SUBSCRIBE", "", "id:h", "destination:/topic/hist", "since-id:80", "receipt:x")
	r2.expect("RECEIPT")
	r2.send("SEND", "81", "destination:/topic/hist")
	if f := r2.expect("MESSAGE"); f.Value("message-id") != "81" {
		t.Fatalf("live after since-id: %v", f)
	}
	r2.send("SUBSCRIBE", "", "id:bad", "destination:/topic/hist", "since-id:-1")
	if e := r2.expect("MESSAGE"); e.Value("code") != "invalid_request" {
		t.Fatalf("negative since-id: %v", e)
	}
}

// TestReplayCatchesUpWhenLiveOverflows holds the history read while more
// live messages arrive than a replaying subscription keeps: the missing ids
// are read from the store again, so the client still sees every id once.
func TestReplayCatchesUpWhenLiveOverflows(t *testing.T) {
	s := newStack(t, stackOpts{ws: func(c *ws.Config) { c.SendQueue = 4096 }})
	tok := s.user("kate")
	pub := s.json(s.user("leo"))
	pub.send(map[string]any{"type": "join", "room": "flood"})
	pub.expect("joined")
	for i := 1; i <= 5; i++ {
		pub.send(map[string]any{"type": "publish", "room": "flood", "text": fmt.Sprint(i)})
	}
	waitFor(t, func() bool { n, _ := s.msgs.LastID(t.Context(), "flood"); return n == 5 })
	r := s.raw("ticket="+s.ticket(tok), nil)
	r.connect()
	waiting, release := s.msgs.holdNextHistory()
	r.send("SUBSCRIBE", "", "id:f", "destination:/topic/flood", "since-id:0", "receipt:sub")
	<-waiting
	const live = 400 // more than a replaying subscription buffers
	for i := 6; i < 6+live; i++ {
		pub.send(map[string]any{"type": "publish", "room": "flood", "text": fmt.Sprint(i)})
	}
	waitFor(t, func() bool { n, _ := s.msgs.LastID(t.Context(), "flood"); return n == 5+live })
	time.Sleep(100 * time.Millisecond) // let the broker deliver them to the replaying subscription
	release()
	for want := 1; want < 6+live; want++ {
		f := r.read()
		if f.Command == "RECEIPT" {
			want--
			continue
		}
		if f.Command != "MESSAGE" || f.Value("message-id") != strconv.Itoa(want) {
			t.Fatalf("got %v, want message %d", f, want)
		}
	}
}

func TestReplayIsBoundedToNewest(t *testing.T) {
	s := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.MaxReplay = 5 }})
	tok := s.user("mia")
	r := s.raw("ticket="+s.ticket(tok), nil)
	r.connect()
	r.send("SUBSCRIBE", "", "id:a", "destination:/topic/big")
	for i := 1; i <= 12; i++ {
		r.send("SEND", fmt.Sprint(i), "destination:/topic/big")
		r.expect("MESSAGE")
	}
	r2 := s.raw("ticket="+s.ticket(tok), nil)
	r2.connect()
	r2.send("SUBSCRIBE", "", "id:b", "destination:/topic/big", "since-id:0")
	for want := 8; want <= 12; want++ {
		if f := r2.expect("MESSAGE"); f.Value("message-id") != strconv.Itoa(want) {
			t.Fatalf("got %s, want %d", f.Value("message-id"), want)
		}
	}
}

func TestHeartbeats(t *testing.T) {
	s := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.Heartbeat = 150 * time.Millisecond }})
	tok := s.user("nick")

	// The server sends EOLs when the client asks for them.
	r := s.raw("ticket="+s.ticket(tok), nil)
	r.send("CONNECT", "", "accept-version:1.2", "heart-beat:0,100")
	if c := r.expect("CONNECTED"); c.Value("heart-beat") != "150,150" {
		t.Fatalf("CONNECTED heart-beat %q", c.Value("heart-beat"))
	}
	if _, err := r.next(700 * time.Millisecond); err == nil || r.beats < 2 {
		t.Fatalf("heart-beats received: %d (err %v)", r.beats, err)
	}

	// A client that keeps its promise stays connected while idle.
	alive := s.raw("ticket="+s.ticket(tok), nil)
	alive.send("CONNECT", "", "accept-version:1.2", "heart-beat:100,0")
	alive.expect("CONNECTED")
	for range 20 {
		time.Sleep(30 * time.Millisecond)
		alive.write("\n")
	}
	alive.send("SUBSCRIBE", "", "id:1", "destination:/topic/hb", "receipt:still-here")
	alive.expect("RECEIPT")

	// A client silent for twice the period is cut, with ERROR first.
	silent := s.raw("ticket="+s.ticket(tok), nil)
	silent.send("CONNECT", "", "accept-version:1.2", "heart-beat:100,0")
	silent.expect("CONNECTED")
	start := time.Now()
	e := silent.expect("ERROR")
	if !strings.Contains(e.Value("message"), "Heart-beat") {
		t.Fatalf("ERROR: %v", e)
	}
	if code, _ := silent.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close %d", code)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("cut after %s", d)
	}
}

func TestReceiptsAndTransactions(t *testing.T) {
	s := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.MaxTransactionFrames = 3 }})
	tok := s.user("olga")
	r := s.raw("ticket="+s.ticket(tok), nil)
	r.connect()
	r.send("SUBSCRIBE", "", "id:1", "destination:/topic/tx", "ack:client-individual", "receipt:a")
	r.expect("RECEIPT")
	r.send("BEGIN", "", "transaction:t1", "receipt:b")
	r.expect("RECEIPT")
	r.send("SEND", "one", "destination:/topic/tx", "transaction:t1", "receipt:s1")
	r.send("SEND", "two", "destination:/topic/tx", "transaction:t1")
	if rc := r.expect("RECEIPT"); rc.Value("receipt-id") != "s1" {
		t.Fatalf("receipt %v", rc)
	}
	r.send("BEGIN", "", "transaction:t2")
	r.send("SEND", "aborted", "destination:/topic/tx", "transaction:t2")
	r.send("ABORT", "", "transaction:t2", "receipt:ab")
	r.expect("RECEIPT") // nothing was delivered before it
	r.send("COMMIT", "", "transaction:t1", "receipt:c")
	m1, m2 := r.expect("MESSAGE"), r.expect("MESSAGE")
	if string(m1.Body) != "one" || string(m2.Body) != "two" || m1.Value("ack") == "" {
		t.Fatalf("committed: %q %q %v", m1.Body, m2.Body, m1)
	}
	r.expect("RECEIPT")
	r.send("ACK", "", "id:"+m1.Value("ack"), "receipt:k")
	r.expect("RECEIPT")
	r.send("NACK", "", "id:"+m2.Value("ack"))
	// The transaction buffer is bounded.
	r.send("BEGIN", "", "transaction:t3")
	for i := range 3 {
		r.send("SEND", fmt.Sprint(i), "destination:/topic/tx", "transaction:t3")
	}
	r.send("SEND", "over", "destination:/topic/tx", "transaction:t3")
	if e := r.expect("ERROR"); e.Value("code") != "invalid_request" {
		t.Fatalf("ERROR %v", e)
	}
	r.closed()
}

func TestVersions10And11(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.user("pete")
	r10 := s.raw("ticket="+s.ticket(tok), nil)
	r10.send("CONNECT", "", "login:pete")
	if c := r10.expect("CONNECTED"); c.Value("version") != "" {
		t.Fatalf("1.0 CONNECTED carries version: %v", c)
	}
	r10.send("SUBSCRIBE", "", "destination:/topic/v")
	r10.send("SEND", "a", "destination:/topic/v", "client-id:odd:value")
	if m := r10.expect("MESSAGE"); m.Value("subscription") != "" || m.Value("destination") != "/topic/v" {
		t.Fatalf("1.0 MESSAGE: %v", m)
	}
	r10.send("UNSUBSCRIBE", "", "destination:/topic/v", "receipt:u")
	r10.expect("RECEIPT")

	r11 := s.raw("ticket="+s.ticket(tok), nil)
	r11.send("CONNECT", "", "accept-version:1.0,1.1")
	if c := r11.expect("CONNECTED"); c.Value("version") != "1.1" {
		t.Fatalf("1.1 CONNECTED: %v", c)
	}
	r11.send("SUBSCRIBE", "", "id:a\\cb", "destination:/topic/v")
	r11.send("SEND", "b", "destination:/topic/v")
	if m := r11.expect("MESSAGE"); m.Value("subscription") != "a:b" {
		t.Fatalf("1.1 MESSAGE: %v", m)
	}
	r11.send("ACK", "", "message-id:2")
	if e := r11.expect("ERROR"); !strings.Contains(e.Value("message"), "subscription") {
		t.Fatalf("1.1 ACK needs subscription: %v", e)
	}
}

func TestFirstMessageAuth(t *testing.T) {
	s := newStack(t, stackOpts{firstMessage: true, proto: func(c *stomp.Config) { c.FirstMessageTimeout = 300 * time.Millisecond }})
	tok := s.user("quinn")
	other := s.user("rosa")
	good := s.raw("", nil)
	if c := good.connect("ticket:" + s.ticket(tok)); c.Value("user-name") != "quinn" {
		t.Fatalf("CONNECTED %v", c)
	}
	time.Sleep(400 * time.Millisecond) // past the deadline: stays open
	good.send("SUBSCRIBE", "", "id:1", "destination:/topic/fm", "receipt:r")
	good.expect("RECEIPT")

	jwt := s.raw("", nil)
	if c := jwt.connect("passcode:" + other); c.Value("user-name") != "rosa" {
		t.Fatalf("CONNECTED %v", c)
	}
	for name, tc := range map[string]struct {
		frame  string
		reason string
	}{
		"silent":           {"", "auth_timeout"},
		"SEND first":       {"SEND\ndestination:/topic/fm\n\nx\x00", "unauthenticated"},
		"no credential":    {"CONNECT\naccept-version:1.2\n\n\x00", "unauthenticated"},
		"bad ticket":       {"CONNECT\naccept-version:1.2\nticket:nope\n\n\x00", "invalid_ticket"},
		"ticket and token": {"CONNECT\naccept-version:1.2\nticket:" + s.ticket(tok) + "\npasscode:" + tok + "\n\n\x00", "unauthenticated"},
	} {
		t.Run(name, func(t *testing.T) {
			r := s.raw("", nil)
			if tc.frame != "" {
				r.write(tc.frame)
			}
			if e := r.expect("ERROR"); e.Value("code") != tc.reason {
				t.Fatalf("ERROR %v", e)
			}
			if code, reason := r.closed(); code != websocket.StatusPolicyViolation || reason != tc.reason {
				t.Fatalf("close %d %q", code, reason)
			}
		})
	}
	// A CONNECT-free handshake-authenticated socket has the same deadline.
	late := s.raw("ticket="+s.ticket(tok), nil)
	if e := late.expect("ERROR"); e.Value("code") != "auth_timeout" {
		t.Fatalf("ERROR %v", e)
	}
	s.checkLogs()
}

func TestExpiryWarningAndRefresh(t *testing.T) {
	s := newStack(t, stackOpts{
		auth: func(c *auth.Config) { c.AccessTTL = time.Minute },
		ws:   func(c *ws.Config) { c.ExpiryWarning = time.Minute - 1500*time.Millisecond },
	})
	tok := s.user("sam")
	r := s.raw("ticket="+s.ticket(tok), nil)
	r.connect()
	r.send("SUBSCRIBE", "", "id:auth", "destination:/user/queue/auth")
	w := r.expect("MESSAGE")
	if w.Value("destination") != "/user/queue/auth" || w.Value("event") != "token_expiring" ||
		w.Value("expires-at") == "" || w.Value("subscription") != "auth" || !strings.Contains(string(w.Body), "token_expiring") {
		t.Fatalf("warning %v %q", w, w.Body)
	}
	fresh := s.user("sam") // a second login: another session of the same user
	r.send("SEND", "", "destination:/app/refresh", "Authorization:Bearer "+fresh, "receipt:rf")
	if m := r.expect("MESSAGE"); m.Value("event") != "refreshed" {
		t.Fatalf("refreshed %v", m)
	}
	if rc := r.expect("RECEIPT"); rc.Value("expires-at") == "" {
		t.Fatalf("receipt %v", rc)
	}
	r.send("SEND", "", "destination:/app/refresh", "Authorization:Bearer "+s.user("tina"))
	if e := r.expect("ERROR"); e.Value("code") != "unauthenticated" {
		t.Fatalf("foreign refresh %v", e)
	}
	if code, _ := r.closed(); code != websocket.StatusPolicyViolation {
		t.Fatalf("close %d", code)
	}
	s.checkLogs()
}

// TestExpiryWarningBeforeConnect: a credential that expires within the
// warning period is warned at once, which for STOMP is right after CONNECTED.
func TestExpiryWarningBeforeConnect(t *testing.T) {
	s := newStack(t, stackOpts{
		auth: func(c *auth.Config) { c.AccessTTL = time.Minute },
		ws:   func(c *ws.Config) { c.ExpiryWarning = 2 * time.Minute },
	})
	r := s.raw("ticket="+s.ticket(s.user("sue")), nil)
	time.Sleep(50 * time.Millisecond) // the warning fires at once, before CONNECT
	r.connect()
	if w := r.expect("MESSAGE"); w.Value("event") != "token_expiring" || w.Value("destination") != "/user/queue/auth" {
		t.Fatalf("warning %v", w)
	}
}

func TestLogoutClosesWithError(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.user("uma")
	r := s.raw("", http.Header{"Authorization": {"Bearer " + tok}})
	r.connect()
	s.post("/api/auth/logout", tok, nil)
	if e := r.expect("ERROR"); e.Value("code") != "session_revoked" {
		t.Fatalf("ERROR %v", e)
	}
	if code, reason := r.closed(); code != websocket.StatusPolicyViolation || reason != "session_revoked" {
		t.Fatalf("close %d %q", code, reason)
	}
}

func TestMultipleSubscriptionsOneRoom(t *testing.T) {
	s := newStack(t, stackOpts{})
	tok := s.user("vera")
	r := s.raw("ticket="+s.ticket(tok), nil)
	r.connect()
	r.send("SUBSCRIBE", "", "id:x", "destination:/topic/dup")
	r.send("SUBSCRIBE", "", "id:y", "destination:/topic/dup", "receipt:r")
	r.expect("RECEIPT")
	r.send("SEND", "both", "destination:/topic/dup")
	got := map[string]bool{}
	for range 2 {
		got[r.expect("MESSAGE").Value("subscription")] = true
	}
	if !got["x"] || !got["y"] {
		t.Fatalf("subscriptions: %v", got)
	}
	r.send("UNSUBSCRIBE", "", "id:x")
	r.send("SEND", "one", "destination:/topic/dup")
	if m := r.expect("MESSAGE"); m.Value("subscription") != "y" {
		t.Fatalf("after UNSUBSCRIBE x: %v", m)
	}
	r.send("UNSUBSCRIBE", "", "id:y")
	r.send("SEND", "none", "destination:/topic/dup")
	if e := r.expect("MESSAGE"); e.Value("code") != "not_joined" {
		t.Fatalf("after the last UNSUBSCRIBE: %v", e)
	}
	r.send("UNSUBSCRIBE", "", "id:zz")
	if e := r.expect("MESSAGE"); e.Value("code") != "invalid_request" {
		t.Fatalf("unknown id: %v", e)
	}
}

// TestGarbageNeverPanics throws random and mutated frames at connected
// sockets: the server answers, closes or waits for more, but never panics,
// and keeps serving.
func TestGarbageNeverPanics(t *testing.T) {
	s := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.Limits.MaxFrameBytes = 2048 }})
	tok := s.user("garbage")
	valid := []string{
		"SEND\ndestination:/topic/g\ncontent-length:2\n\nhi\x00",
		"SUBSCRIBE\nid:1\ndestination:/topic/g\nsince-id:0\nreceipt:r\n\n\x00",
		"UNSUBSCRIBE\nid:1\n\n\x00",
		"BEGIN\ntransaction:t\n\n\x00SEND\ndestination:/app/g\ntransaction:t\n\nx\x00COMMIT\ntransaction:t\n\n\x00",
		"ACK\nid:1\n\n\x00NACK\nid:2\ntransaction:zz\n\n\x00",
		"SEND\ndestination:/app/refresh\nAuthorization:Bearer x\n\n\x00",
		"DISCONNECT\nreceipt:d\n\n\x00",
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 150 {
		b := []byte(valid[rnd.IntN(len(valid))])
		for range rnd.IntN(6) {
			switch rnd.IntN(4) {
			case 0:
				b[rnd.IntN(len(b))] = byte(rnd.IntN(256))
			case 1:
				p := rnd.IntN(len(b))
				b = append(b[:p:p], b[p+1:]...)
				if len(b) == 0 {
					b = []byte{0}
				}
			case 2:
				p := rnd.IntN(len(b))
				b = append(b[:p:p], append([]byte{"\x00\n\r:\\"[rnd.IntN(5)]}, b[p:]...)...)
			case 3:
				b = append(b, b...)
			}
		}
		r := s.raw("", http.Header{"Authorization": {"Bearer " + tok}})
		r.connect()
		r.writeBinary(string(b))
		if _, err := r.next(200 * time.Millisecond); err != nil && !strings.Contains(err.Error(), "deadline") &&
			!strings.Contains(err.Error(), "close") && !strings.Contains(err.Error(), "EOF") {
			if _, ok := err.(*stomp.FrameError); !ok {
				t.Fatalf("input %d: %v", i, err)
			}
		}
		r.c.CloseNow()
	}
	if strings.Contains(s.logs.String(), "panic") {
		t.Fatal("the server panicked")
	}
	r := s.raw("", http.Header{"Authorization": {"Bearer " + tok}})
	r.connect()
	r.send("SUBSCRIBE", "", "id:1", "destination:/topic/g", "receipt:alive")
	r.expect("RECEIPT")
}
