package tollgate

import (
	"context"
	"crypto/sha256"
	"time"
)

// TicketHash is the SHA-256 of a ticket's value. Stores index tickets by it and
// never hold the value itself, so a map lookup leaks nothing useful through
// timing and a store dump cannot be replayed.
type TicketHash [32]byte

// HashTicket returns the hash under which the ticket value s is stored.
func HashTicket(s Secret) TicketHash { return sha256.Sum256([]byte(s.Reveal())) }

// Ticket is a one-time permission to open one WebSocket, minted by
// POST /api/auth/ws-ticket for an authenticated principal.
type Ticket struct {
	Hash      TicketHash
	UserID    string
	UserName  string
	SessionID string
	Admin     bool
	// Origin is the Origin header of the minting request, or "" when it had
	// none. A ticket bound to an Origin opens a socket only from that Origin.
	Origin string
	// CredentialExpiresAt is when the access credential that minted the
	// ticket expires; the socket it opens expires then too.
	CredentialExpiresAt time.Time
	ExpiresAt           time.Time
}

// TicketStore keeps one-time WebSocket tickets, indexed by a hash of the
// ticket value. Implementations are safe for concurrent use.
type TicketStore interface {
	// Put keeps t until t.ExpiresAt.
	Put(ctx context.Context, t Ticket) error
	// Redeem removes and returns the ticket. Of any number of concurrent
	// calls on any number of nodes exactly one succeeds; the others, and any
	// call at or after ExpiresAt, get ErrNotFound.
	Redeem(ctx context.Context, h TicketHash, now time.Time) (Ticket, error)
}
