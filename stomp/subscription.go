package stomp

import (
	"context"
	"strconv"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/ws"
)

const (
	// maxPending bounds the live messages one subscription holds while its
	// since-id history is replayed; beyond it they are fetched from the
	// store again after the replay.
	maxPending = 256
	// maxCatchUp bounds the store rounds of one replay that keeps falling
	// behind a busy room; the subscription then fails with unavailable.
	maxCatchUp = 8
	// replayChunk is the size a replay packs MESSAGE frames into, several
	// per WebSocket message (as STOMP over WebSocket allows), so that 500
	// replayed messages need few queued writes.
	replayChunk = 64 << 10
)

// subscription is one SUBSCRIBE of a connection.
type subscription struct {
	id        string
	hasID     bool // 1.0 SUBSCRIBE without id: MESSAGE carries no subscription header
	dest      string
	room      string // "" for /user/queue destinations
	clientAck bool   // ack client or client-individual: 1.2 MESSAGEs carry ack

	// key and build encode the subscription's MESSAGEs once per delivery
	// for every connection with the same key (made once, so Deliver does
	// not allocate).
	key   any
	build func(tollgate.Message) any

	// Guarded by session.mu.
	sent      int64 // highest id written to this subscription
	replaying bool
	pending   []tollgate.Message
	dropped   int64 // highest id not kept in pending (0: none)
}

// deliveryKey names one encoding of a room message in a hub.Delivery.
type deliveryKey struct {
	v         Version
	sub       string
	hasID     bool
	clientAck bool
}

// addSubscription records sub; the id must be new and the count bounded.
func (s *session) addSubscription(sub *subscription, v Version) error {
	key := deliveryKey{v: v, sub: sub.id, hasID: sub.hasID, clientAck: sub.clientAck}
	sub.key = key
	sub.build = func(m tollgate.Message) any {
		return sharedFrame{ws.NewShared(appendMessage(nil, m, key))}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.subs[sub.id]; dup {
		return tollgate.Errorf(tollgate.CodeInvalidRequest, "That subscription id is in use.")
	}
	if len(s.subs) >= s.pr.cfg.MaxSubscriptions {
		return tollgate.Errorf(tollgate.CodeForbidden, "Too many subscriptions (at most %d).", s.pr.cfg.MaxSubscriptions)
	}
	if s.subs == nil {
		s.subs = make(map[string]*subscription)
	}
	s.subs[sub.id] = sub
	return nil
}

// removeSubscription forgets the subscription id; last reports whether it
// was the last one of its room.
func (s *session) removeSubscription(id string) (sub *subscription, last bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub = s.subs[id]
	if sub == nil {
		return nil, false
	}
	delete(s.subs, id)
	if sub.room == "" {
		return sub, false
	}
	list := s.rooms[sub.room]
	for i, x := range list {
		if x == sub {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(s.rooms, sub.room)
		return sub, true
	}
	s.rooms[sub.room] = list
	return sub, false
}

// joinRoom joins the subscription's room. The subscription starts inside
// the hub's joined callback, which runs while the room's delivery is held:
// without since-id it receives every id above the room's last one live;
// with since-id it replays the stored ids in (since, last] first (at most
// MaxReplay, the newest) and then what arrived live meanwhile, so the
// client sees each id once, in order, with no gap.
func (pr *Protocol) joinRoom(ctx context.Context, s *session, sub *subscription, since int64) error {
	var last int64
	err := pr.cfg.Hub.Join(ctx, s, sub.room, func(l int64) {
		last = l
		s.mu.Lock()
		defer s.mu.Unlock()
		if since >= 0 && since < l {
			sub.replaying = true
			sub.sent = max(since, l-int64(pr.cfg.MaxReplay))
		} else {
			sub.sent = l
		}
		if s.rooms == nil {
			s.rooms = make(map[string][]*subscription)
		}
		s.rooms[sub.room] = append(s.rooms[sub.room], sub)
	})
	if err != nil || !sub.replaying {
		return err
	}
	return pr.replay(ctx, s, sub, last)
}

// replay writes the stored messages of sub's room after sub.sent up to
// upTo, then the live messages kept meanwhile, and switches sub to live.
// When the live messages overflowed their buffer, the missing ids are read
// from the store again, at most maxCatchUp times.
func (pr *Protocol) replay(ctx context.Context, s *session, sub *subscription, upTo int64) error {
	s.mu.Lock()
	sent := sub.sent
	s.mu.Unlock()
	for round := 0; ; round++ {
		if sent < upTo {
			msgs, err := pr.cfg.Hub.History(ctx, s, sub.room, sent, int(min(upTo-sent, int64(pr.cfg.MaxReplay))))
			if err != nil {
				return err
			}
			var chunk []byte
			for _, m := range msgs {
				if m.ID <= sent || m.ID > upTo {
					continue
				}
				chunk = s.appendChunked(chunk, m, sub.key.(deliveryKey))
				sent = m.ID
			}
			if len(chunk) > 0 {
				s.write(chunk)
			}
			if sent < upTo && len(msgs) > 0 && round < maxCatchUp {
				continue // a page shorter than asked for: read on
			}
		}
		s.mu.Lock()
		var chunk []byte
		// pending holds consecutive live ids (the hub fills gaps); those
		// not above sent were in the history just written.
		if len(sub.pending) > 0 && sub.pending[0].ID > sent+1 && round < maxCatchUp {
			upTo = sub.pending[0].ID - 1
			s.mu.Unlock()
			continue
		}
		for _, m := range sub.pending {
			if m.ID > sent {
				chunk = s.appendChunked(chunk, m, sub.key.(deliveryKey))
				sent = m.ID
			}
		}
		sub.pending = nil
		dropped := sub.dropped
		sub.dropped = 0
		if dropped <= sent || round >= maxCatchUp {
			sub.replaying = false
			sub.sent = sent
			if len(chunk) > 0 {
				s.write(chunk)
			}
			s.mu.Unlock()
			if dropped > sent {
				pr.cfg.Logger.Warn("stomp replay could not catch up with the room", "conn_id", s.c.ID(), "room", sub.room)
				return tollgate.Errorf(tollgate.CodeUnavailable, "The replay could not catch up with the room; subscribe again with since-id.")
			}
			return nil
		}
		s.mu.Unlock()
		if len(chunk) > 0 {
			s.write(chunk)
		}
		upTo = dropped
	}
}

// appendChunked appends m's MESSAGE to chunk; when that would pass
// replayChunk, the chunk so far is written first and m starts a new one.
func (s *session) appendChunked(chunk []byte, m tollgate.Message, k deliveryKey) []byte {
	before := len(chunk)
	chunk = appendMessage(chunk, m, k)
	if before > 0 && len(chunk) > replayChunk {
		s.write(chunk[:before:before])
		chunk = append([]byte(nil), chunk[before:]...)
	}
	return chunk
}

// appendMessage appends the MESSAGE frame of room message m as the
// subscription key k receives it (docs/api.md, "STOMP 1.2"; the sender and
// timestamp headers are tollgate's). It writes straight into dst: it runs
// once per delivery and key.
func appendMessage(dst []byte, m tollgate.Message, k deliveryKey) []byte {
	raw := rawHeaders(k.v, CmdMessage)
	if dst == nil {
		dst = make([]byte, 0, 256+len(m.Text))
	}
	var num [24]byte
	id := strconv.AppendInt(num[:0], m.ID, 10)
	dst = append(dst, "MESSAGE\n"...)
	if k.hasID {
		dst = appendHeader(dst, "subscription", k.sub, k.v, raw)
	}
	dst = appendHeader(dst, "message-id", id, k.v, raw)
	dst = append(dst, "destination:"...)
	dst = appendEscaped(dst, topicPrefix, k.v, raw)
	dst = appendEscaped(dst, m.Room, k.v, raw)
	dst = append(dst, "\ncontent-type:text/plain;charset=utf-8\ncontent-length:"...)
	dst = strconv.AppendInt(dst, int64(len(m.Text)), 10)
	dst = append(dst, '\n')
	dst = appendHeader(dst, "sender-id", m.UserID, k.v, raw)
	dst = appendHeader(dst, "sender-name", m.UserName, k.v, raw)
	var ts [48]byte
	dst = appendHeader(dst, "ts", m.TS.UTC().AppendFormat(ts[:0], time.RFC3339Nano), k.v, raw)
	if k.clientAck && k.v >= V12 {
		dst = append(dst, "ack:"...)
		dst = appendEscaped(dst, k.sub, k.v, raw)
		dst = append(dst, "\\c"...)
		dst = append(dst, id...)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, m.Text...)
	return append(dst, 0)
}

func appendHeader[T string | []byte](dst []byte, key string, value T, v Version, raw bool) []byte {
	dst = append(dst, key...)
	dst = append(dst, ':')
	dst = appendEscaped(dst, value, v, raw)
	return append(dst, '\n')
}
