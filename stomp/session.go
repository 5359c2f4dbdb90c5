package stomp

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/ws"
)

// session is one STOMP connection; it is the hub.Conn of its socket.
//
// Threading: Message (the socket's read goroutine) owns dec and txs. The
// hub calls Deliver and Close from other goroutines, the ws layer calls
// Expiring from a timer, and the heart-beat and CONNECT deadline run on
// timers: everything they share is guarded by mu. Lock order: the hub's
// room lock, then mu; nothing calls into the hub while holding mu.
type session struct {
	pr  *Protocol
	c   *ws.Conn
	dec *Decoder

	txs     map[string]*transaction // read goroutine only
	txFrame int
	txBytes int

	lastRead  atomic.Int64 // monotonic nanoseconds since start
	lastWrite atomic.Int64
	start     time.Time

	mu           sync.Mutex
	pending      bool // first-message auth not done
	accepted     bool // CONNECT won the race with the CONNECT deadline
	connected    bool // CONNECTED is queued: other frames may follow it
	closed       bool
	version      Version
	connectTimer *time.Timer
	hbTimer      *time.Timer
	sendEvery    time.Duration // server heart-beats; 0: none
	readEvery    time.Duration // expected client heart-beats; 0: none
	subs         map[string]*subscription
	rooms        map[string][]*subscription
	seq          uint64    // ids of /user/queue messages
	warnAt       time.Time // an expiry warning that came before CONNECT
}

// transaction is an open STOMP transaction: its buffered SENDs.
type transaction struct {
	sends []*Frame
	bytes int
}

func newSession(pr *Protocol, c *ws.Conn) *session {
	s := &session{pr: pr, c: c, dec: NewDecoder(pr.cfg.Limits), start: time.Now()}
	s.touchRead()
	s.touchWrite()
	return s
}

func (s *session) ID() string                    { return s.c.ID() }
func (s *session) Principal() tollgate.Principal { return s.c.Principal() }
func (s *session) Client() tollgate.ClientInfo   { return s.c.Client() }

// Close implements hub.Conn: a control event (revocation, block) ends the
// connection with an ERROR frame naming the code, then the close.
func (s *session) Close(err *tollgate.Error) {
	if err != nil {
		s.sendError(err, nil)
	}
	s.c.Close(err)
}

func (s *session) sinceStart() int64 { return int64(time.Since(s.start)) }
func (s *session) touchRead()        { s.lastRead.Store(s.sinceStart()) }
func (s *session) touchWrite()       { s.lastWrite.Store(s.sinceStart()) }

func (s *session) getVersion() Version {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// shutdown stops the timers; the socket is gone.
func (s *session) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.connectTimer != nil {
		s.connectTimer.Stop()
	}
	if s.hbTimer != nil {
		s.hbTimer.Stop()
	}
}

// connectDeadline closes a socket that has not sent CONNECT in time.
func (s *session) connectDeadline() {
	s.mu.Lock()
	late := !s.accepted && !s.closed
	if late {
		s.closed = true // a CONNECT racing with the deadline loses
	}
	s.mu.Unlock()
	if late {
		e := tollgate.NewError(tollgate.CodeAuthTimeout)
		s.sendError(e, nil)
		s.c.Close(e)
	}
}

// startConnected accepts the CONNECT with version v and the client's
// heart-beat figures cx,cy; false when the CONNECT deadline fired first.
func (s *session) startConnected(v Version, cx, cy time.Duration) bool {
	h := s.pr.cfg.Heartbeat
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.connectTimer.Stop()
	s.accepted, s.pending, s.version = true, false, v
	if h > 0 && cy > 0 {
		s.sendEvery = max(h, cy)
	}
	if h > 0 && cx > 0 {
		s.readEvery = max(h, cx)
	}
	return true
}

// nextBeatLocked is the time until the heart-beat timer must run again.
func (s *session) nextBeatLocked() time.Duration {
	now := s.sinceStart()
	next := time.Hour
	if s.sendEvery > 0 {
		next = min(next, time.Duration(s.lastWrite.Load()+int64(s.sendEvery)-now))
	}
	if s.readEvery > 0 {
		next = min(next, time.Duration(s.lastRead.Load()+int64(2*s.readEvery)-now)+time.Millisecond)
	}
	return max(next, time.Millisecond)
}

// heartbeat sends an EOL when the server has been quiet for sendEvery, and
// cuts a client silent for twice readEvery (docs/api.md, "STOMP 1.2").
func (s *session) heartbeat() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	sendEvery, readEvery := s.sendEvery, s.readEvery
	s.mu.Unlock()
	now := s.sinceStart()
	if readEvery > 0 && now-s.lastRead.Load() > int64(2*readEvery) {
		s.sendError(tollgate.Errorf(tollgate.CodeSlowConsumer,
			"Heart-beat timeout: nothing received for %s.", time.Duration(now-s.lastRead.Load()).Round(time.Millisecond)), nil)
		s.c.Close(tollgate.NewError(tollgate.CodeSlowConsumer))
		return
	}
	if sendEvery > 0 && now-s.lastWrite.Load() >= int64(sendEvery) {
		s.touchWrite()
		s.c.Send([]byte{'\n'})
	}
	s.mu.Lock()
	if !s.closed {
		s.hbTimer.Reset(s.nextBeatLocked())
	}
	s.mu.Unlock()
}

// write queues one encoded frame (or several, for a replay chunk).
func (s *session) write(b []byte) bool {
	s.touchWrite()
	return s.c.Send(b)
}

// sendFrame encodes f for the connection's version and queues it.
func (s *session) sendFrame(f *Frame) bool {
	return s.write(AppendFrame(nil, f, s.getVersion()))
}

// connectedFrame answers CONNECT (STOMP 1.2, "CONNECTED Frame"), then
// lets other frames follow: an expiry warning that came early, heart-beats.
func (s *session) connectedFrame(req *Frame) {
	s.mu.Lock()
	v, sx := s.version, s.pr.cfg.Heartbeat
	s.mu.Unlock()
	ms := strconv.FormatInt(sx.Milliseconds(), 10)
	p := s.c.Principal()
	f := &Frame{Command: CmdConnected}
	if _, ok := req.Get("accept-version"); ok {
		f.Headers = append(f.Headers, Header{"version", v.String()})
	}
	f.Headers = append(f.Headers,
		Header{"heart-beat", ms + "," + ms},
		Header{"server", s.pr.cfg.ServerName},
		Header{"session", s.c.ID()},
		Header{"user-name", p.Name},
		Header{"user-id", p.UserID},
	)
	s.sendFrame(f)
	s.mu.Lock()
	s.connected = true
	warn := s.warnAt
	s.warnAt = time.Time{}
	s.touchRead()
	if !s.closed && (s.sendEvery > 0 || s.readEvery > 0) {
		s.hbTimer = time.AfterFunc(s.nextBeatLocked(), s.heartbeat)
	}
	s.mu.Unlock()
	if !warn.IsZero() && warn.Equal(p.ExpiresAt) {
		s.authEvent("token_expiring", warn)
	}
}

// sendError queues an ERROR frame for e: message (the client-safe text),
// code, and the receipt-id of the frame that caused it.
func (s *session) sendError(e *tollgate.Error, cause *Frame, extra ...Header) {
	msg := e.ClientMessage()
	f := &Frame{Command: CmdError, Headers: []Header{
		{"message", msg},
		{"code", string(e.Code)},
		{"content-type", "text/plain;charset=utf-8"},
	}, Body: []byte(msg)}
	if cause != nil {
		if r, ok := cause.Get("receipt"); ok {
			f.Headers = append(f.Headers, Header{"receipt-id", r})
		}
	}
	f.Headers = append(f.Headers, extra...)
	f.SetContentLength()
	s.sendFrame(f)
}

// fatal queues an ERROR frame and returns the error that closes the socket
// (every ERROR frame is followed by closing the socket, docs/api.md).
func (s *session) fatal(e *tollgate.Error, cause *Frame, extra ...Header) error {
	s.sendError(e, cause, extra...)
	return e
}

// userMessage queues a MESSAGE on one of the /user/queue destinations.
func (s *session) userMessage(dest string, headers []Header, contentType string, body []byte) {
	s.mu.Lock()
	if !s.connected || s.closed {
		s.mu.Unlock()
		return
	}
	s.seq++
	id := "u" + strconv.FormatUint(s.seq, 10)
	var sub *subscription
	for _, x := range s.subs {
		if x.dest == dest {
			sub = x
			break
		}
	}
	s.mu.Unlock()
	f := &Frame{Command: CmdMessage}
	if sub != nil && sub.hasID {
		f.Headers = append(f.Headers, Header{"subscription", sub.id})
	}
	f.Headers = append(f.Headers, Header{"message-id", id}, Header{"destination", dest})
	if sub != nil && sub.clientAck {
		f.Headers = append(f.Headers, Header{"ack", id})
	}
	f.Headers = append(f.Headers, headers...)
	f.Headers = append(f.Headers, Header{"content-type", contentType})
	f.Body = body
	f.SetContentLength()
	s.sendFrame(f)
}

// queueError reports an error that keeps the connection on /user/queue/errors.
func (s *session) queueError(e *tollgate.Error, cause *Frame) {
	msg := e.ClientMessage()
	h := []Header{{"code", string(e.Code)}, {"message", msg}}
	if e.RetryAfter > 0 {
		h = append(h, Header{"retry-after", strconv.Itoa(int((e.RetryAfter + time.Second - 1) / time.Second))})
	}
	if cause != nil {
		if r, ok := cause.Get("receipt"); ok {
			h = append(h, Header{"receipt-id", r})
		}
		if tx, ok := cause.Get("transaction"); ok {
			h = append(h, Header{"transaction", tx})
		}
	}
	s.userMessage(DestErrors, h, "text/plain;charset=utf-8", []byte(msg))
}

// authEvent reports token_expiring or refreshed on /user/queue/auth; the
// body is the JSON protocol's frame.
func (s *session) authEvent(event string, exp time.Time) {
	s.mu.Lock()
	early := !s.connected && !s.closed
	if early {
		s.warnAt = exp // sent right after CONNECTED
	}
	s.mu.Unlock()
	if early {
		return
	}
	at := exp.UTC().Format(time.RFC3339)
	body := `{"type":"` + event + `","expires_at":"` + at + `"}`
	s.userMessage(DestAuth, []Header{{"event", event}, {"expires-at", at}}, "application/json", []byte(body))
}

// receipt queues RECEIPT for a processed frame.
func (s *session) receipt(id string, extra []Header) {
	f := &Frame{Command: CmdReceipt, Headers: append([]Header{{"receipt-id", id}}, extra...)}
	s.sendFrame(f)
}

// buffer adds a SEND to an open transaction.
func (s *session) buffer(tx string, f *Frame) error {
	t, ok := s.txs[tx]
	if !ok {
		return violationf(tollgate.CodeInvalidRequest, "Unknown transaction.")
	}
	cfg := s.pr.cfg
	if s.txFrame+1 > cfg.MaxTransactionFrames || s.txBytes+len(f.Body) > cfg.MaxTransactionBytes {
		return violationf(tollgate.CodeInvalidRequest, "Transactions may buffer at most %d SENDs and %d bytes.",
			cfg.MaxTransactionFrames, cfg.MaxTransactionBytes)
	}
	t.sends = append(t.sends, f)
	t.bytes += len(f.Body)
	s.txFrame++
	s.txBytes += len(f.Body)
	return nil
}

func (s *session) endTx(name string, t *transaction) {
	delete(s.txs, name)
	s.txFrame -= len(t.sends)
	s.txBytes -= t.bytes
}

// Deliver implements hub.Conn: one MESSAGE per subscription of the room.
// The frame is encoded once per delivery for all connections that share a
// version, subscription id and ack mode (stompjs names its first
// subscription "sub-0" on every client, go-stomp "1"), and written with
// ws.SendShared. A subscription still replaying its since-id history keeps
// the message for after the replay.
func (s *session) Deliver(d *hub.Delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := true
	for _, sub := range s.rooms[d.Message.Room] {
		id := d.Message.ID
		if sub.replaying {
			if len(sub.pending) < maxPending {
				sub.pending = append(sub.pending, d.Message)
			} else {
				sub.dropped = max(sub.dropped, id)
			}
			continue
		}
		if id <= sub.sent {
			continue
		}
		sub.sent = id
		f := d.Encoded(sub.key, sub.build).(sharedFrame)
		s.touchWrite()
		ok = s.c.SendShared(f.Shared) && ok
	}
	return ok
}

// sharedFrame is a MESSAGE encoded once for many sockets; the hub releases
// it after fan-out.
type sharedFrame struct{ *ws.Shared }
