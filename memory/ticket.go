package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// DefaultMaxTickets is the number of tickets a [TicketStore] holds at most
// when its MaxTickets field is zero. At about 200 bytes a ticket it bounds the
// store near 200 MB; at the default 30 s lifetime it is reached only by more
// than 33,000 ticket requests a second, far beyond the per-IP and per-user
// limits in front of the store.
const DefaultMaxTickets = 1_000_000

// DefaultPurgeInterval is how often [TicketStore.Run] purges expired tickets
// when given a non-positive interval.
const DefaultPurgeInterval = time.Minute

var _ tollgate.TicketStore = (*TicketStore)(nil)

// TicketStore is an in-process [tollgate.TicketStore] for a single node: a map
// keyed by [tollgate.TicketHash] behind a mutex. It never holds a ticket's
// value, only its hash.
//
// TicketStore is safe for concurrent use. Redeem deletes and returns the ticket
// under the mutex in one step, so of any number of concurrent redeems of one
// ticket exactly one succeeds (docs/api.md, "WebSocket tickets"). It does not
// share tickets between processes: a cluster uses the redis package.
//
// Expired tickets are removed when a redeem finds them, and otherwise by
// [TicketStore.Purge]; run [TicketStore.Run] beside the server so that tickets
// that are never redeemed do not accumulate until MaxTickets refuses new ones.
//
// The zero value is ready to use; [NewTicketStore] returns one.
type TicketStore struct {
	// MaxTickets bounds the number of tickets held, expired ones included
	// until they are purged, so that a flood of ticket requests cannot exhaust
	// memory. Beyond it Put fails with an error wrapping
	// [tollgate.ErrUnavailable] (the caller answers 503 and fails closed).
	// Zero means [DefaultMaxTickets]. Set it before first use.
	MaxTickets int
	// Now is the clock Run passes to Purge; nil means time.Now. Set it before
	// first use.
	Now func() time.Time

	mu      sync.Mutex
	tickets map[tollgate.TicketHash]tollgate.Ticket
}

// NewTicketStore returns an empty TicketStore with the default bound.
func NewTicketStore() *TicketStore {
	return &TicketStore{tickets: make(map[tollgate.TicketHash]tollgate.Ticket)}
}

// Put keeps t until t.ExpiresAt, replacing a ticket with the same hash. It
// fails with an error wrapping [tollgate.ErrUnavailable] when the store already
// holds MaxTickets tickets, and with ctx's error when ctx has ended.
// Safe for concurrent use.
func (s *TicketStore) Put(ctx context.Context, t tollgate.Ticket) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: put ticket: %w", err)
	}
	limit := s.MaxTickets
	if limit <= 0 {
		limit = DefaultMaxTickets
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tickets == nil {
		s.tickets = make(map[tollgate.TicketHash]tollgate.Ticket)
	}
	if _, replace := s.tickets[t.Hash]; !replace && len(s.tickets) >= limit {
		return fmt.Errorf("memory: put ticket: store full (%d tickets): %w", limit, tollgate.ErrUnavailable)
	}
	s.tickets[t.Hash] = t
	return nil
}

// Redeem removes and returns the ticket whose hash is h. It returns an error
// wrapping [tollgate.ErrNotFound] when there is none, or when now is at or
// after its ExpiresAt (the expired ticket is removed too). Safe for concurrent
// use: of concurrent calls for one hash exactly one succeeds.
func (s *TicketStore) Redeem(ctx context.Context, h tollgate.TicketHash, now time.Time) (tollgate.Ticket, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.Ticket{}, fmt.Errorf("memory: redeem ticket: %w", err)
	}
	s.mu.Lock()
	t, ok := s.tickets[h]
	if ok {
		delete(s.tickets, h)
	}
	s.mu.Unlock()
	if !ok || !now.Before(t.ExpiresAt) {
		return tollgate.Ticket{}, fmt.Errorf("memory: redeem ticket: %w", tollgate.ErrNotFound)
	}
	return t, nil
}

// Purge removes every ticket whose ExpiresAt is at or before now and returns
// how many it removed. It holds the store's mutex for one pass over the map.
// Safe for concurrent use.
func (s *TicketStore) Purge(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for h, t := range s.tickets {
		if !now.Before(t.ExpiresAt) {
			delete(s.tickets, h)
			n++
		}
	}
	return n
}

// Len returns the number of tickets held, expired ones not yet purged
// included. Safe for concurrent use.
func (s *TicketStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tickets)
}

// Run purges expired tickets every interval ([DefaultPurgeInterval] when
// interval is not positive) until ctx ends, then returns. The caller owns the
// goroutine that runs it and waits for it on shutdown. Safe to run beside
// every other method; run at most one per store.
func (s *TicketStore) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultPurgeInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.Purge(s.now())
		}
	}
}

func (s *TicketStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
