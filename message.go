package tollgate

import (
	"context"
	"time"
	"unicode/utf8"
)

// Room and message limits (docs/api.md, "JSON protocol").
const (
	MaxRoomLen      = 64
	MaxTextChars    = 4000
	MaxHistoryLimit = 500
	MaxClientIDLen  = 128
)

// ValidRoom reports whether name is 1–64 of [a-z0-9_.-].
func ValidRoom(name string) bool {
	if len(name) < 1 || len(name) > MaxRoomLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// TextLen returns the length of a message text in characters (runes).
func TextLen(s string) int { return utf8.RuneCountInString(s) }

// Message is one message stored in a room. ID is assigned by the store:
// strictly increasing and gap-free per room, starting at 1.
type Message struct {
	Room     string
	ID       int64
	UserID   string
	UserName string
	Text     string
	// ClientID is the publisher's idempotency key; "" when none was given.
	ClientID string
	TS       time.Time
}

// MessageStore keeps room history. Implementations are safe for concurrent use.
type MessageStore interface {
	// Append stores m (m.ID ignored) with the room's next id and returns the
	// stored message. If the same user already stored a message with the same
	// non-empty ClientID in the room, it stores nothing and returns that
	// message with duplicate true. A message is durable when Append returns.
	Append(ctx context.Context, m Message) (stored Message, duplicate bool, err error)
	// History returns up to limit messages of room with ID > since, oldest first.
	History(ctx context.Context, room string, since int64, limit int) ([]Message, error)
	// LastID returns the newest id of room, 0 when it has no messages.
	LastID(ctx context.Context, room string) (int64, error)
}

// Broker carries stored messages and control events between the nodes of a
// cluster (on one node: back to itself). Delivery to local sockets is the
// hub's job; the broker only moves events from Publish to every node's
// handler. Implementations are safe for concurrent use.
type Broker interface {
	// Publish hands m, already stored, to every node's handler, this node's
	// included. Messages of one room published from one node arrive in order.
	Publish(ctx context.Context, m Message) error
	// PublishControl hands e to every node's handler, this node's included.
	PublishControl(ctx context.Context, e ControlEvent) error
	// Run delivers events to h until ctx ends; it is called once.
	Run(ctx context.Context, h BrokerHandler) error
}

// BrokerHandler receives what a Broker delivers. Calls may be concurrent
// across rooms and must not block for long.
type BrokerHandler interface {
	HandleMessage(m Message)
	HandleControl(e ControlEvent)
}

// ControlKind says what a ControlEvent does.
type ControlKind string

// Control events: each closes the matching live sockets on every node.
const (
	ControlRevokeSession ControlKind = "revoke_session" // Target: session id
	ControlDisableUser   ControlKind = "disable_user"   // Target: user id
	ControlBlockUser     ControlKind = "block_user"     // Target: user id
	ControlBlockIP       ControlKind = "block_ip"       // Target: IP address
)

// ControlEvent asks every node to close the sockets matching Target with Code.
type ControlEvent struct {
	Kind   ControlKind `json:"kind"`
	Target string      `json:"target"`
	Code   Code        `json:"code"`
	// At is when the event was raised (for revocation-to-close latency).
	At time.Time `json:"at"`
}
