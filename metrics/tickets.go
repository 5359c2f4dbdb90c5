package metrics

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-ws/tollgate"
)

// Bounds of the ticket ledger.
const (
	// defaultLedgerSize is the most tickets the ledger remembers: at about
	// 60 bytes each, 16 MB at most. Past it, new tickets are not followed
	// (their expiry is not counted, their replays count as unknown); at the
	// default 30 s lifetime that takes over 7,000 tickets a second.
	defaultLedgerSize = 1 << 18
	// ledgerRetain is how long after its expiry a ticket is remembered, so
	// that a late replay still counts as reused (or expired), not unknown.
	ledgerRetain = time.Minute
)

// ticketKey is the first 8 bytes of a ticket's hash: among the ledger's at
// most 2^18 tickets a collision has odds of about 2^-29, and a collision
// only misfiles one count.
type ticketKey uint64

type ticketState uint8

const (
	stateIssued ticketState = iota
	stateRedeemed
	stateExpired
)

// Outcomes of [ticketLedger.notFound].
type ticketOutcome uint8

const (
	ticketUnknown    ticketOutcome = iota // never issued here, or forgotten
	ticketReused                          // redeemed before: a replay
	ticketExpiredNow                      // ran out unredeemed; counted now
	ticketExpiredOld                      // ran out unredeemed; already counted
)

type ledgerEntry struct {
	exp   int64 // unix nanos
	state ticketState
}

type queued struct {
	key ticketKey
	at  int64 // unix nanos: when the entry moves on
}

// fifo is a queue of ledger entries in the order they were added.
type fifo struct {
	items []queued
	head  int
}

func (q *fifo) push(v queued) { q.items = append(q.items, v) }

func (q *fifo) peek() (queued, bool) {
	if q.head == len(q.items) {
		return queued{}, false
	}
	return q.items[q.head], true
}

func (q *fifo) pop() {
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		q.items, q.head = q.items[:n], 0
	}
}

// ticketLedger follows the tickets this node issued, by hash, so that a
// failed redeem can be told apart: a replay of a spent ticket, a ticket that
// expired, or one never seen. The stores answer all three "not found" (and
// must: a redeem reveals nothing), so the ledger is the metrics' own,
// node-local memory. In a cluster, a ticket issued on one node and redeemed
// on another counts as expired on the first and unknown-then-reused nowhere:
// the counts are exact for a single node and approximate behind a load
// balancer (docs/decisions.md).
//
// Entries live in two queues: live until their expiry (then an unredeemed
// one is counted expired), then retired for ledgerRetain (then forgotten).
// Both are in issue order; expiries are issue time plus the ticket lifetime,
// or earlier when the minting credential expires sooner, so a few entries
// move on late, never early. The ledger is bounded by max.
type ticketLedger struct {
	max    int
	retain int64

	mu      sync.Mutex
	entries map[ticketKey]ledgerEntry
	live    fifo
	retired fifo
}

func newTicketLedger(max int, retain time.Duration) *ticketLedger {
	return &ticketLedger{max: max, retain: int64(retain), entries: make(map[ticketKey]ledgerEntry)}
}

func keyOf(h tollgate.TicketHash) ticketKey { return ticketKey(binary.LittleEndian.Uint64(h[:8])) }

// issued remembers a new ticket. Expiries due by now are counted on expired.
func (l *ticketLedger) issued(h tollgate.TicketHash, exp, now time.Time, expired prometheus.Counter) {
	k := keyOf(h)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now.UnixNano(), expired)
	if len(l.entries) >= l.max {
		return
	}
	if _, dup := l.entries[k]; dup {
		return
	}
	l.entries[k] = ledgerEntry{exp: exp.UnixNano(), state: stateIssued}
	l.live.push(queued{key: k, at: exp.UnixNano()})
}

// redeemed marks a ticket spent.
func (l *ticketLedger) redeemed(h tollgate.TicketHash) {
	k := keyOf(h)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[k]; ok {
		e.state = stateRedeemed
		l.entries[k] = e
	}
}

// notFound classifies a redeem that found no ticket.
func (l *ticketLedger) notFound(h tollgate.TicketHash, now time.Time) ticketOutcome {
	k := keyOf(h)
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[k]
	switch {
	case !ok:
		return ticketUnknown
	case e.state == stateRedeemed:
		return ticketReused
	case e.state == stateExpired:
		return ticketExpiredOld
	}
	// Issued and not redeemed, yet the store has no ticket: it ran out (the
	// sweep has not come to it yet). Count it now, once.
	e.state = stateExpired
	l.entries[k] = e
	return ticketExpiredNow
}

// sweep moves on the entries due at now.
func (l *ticketLedger) sweep(now time.Time, expired prometheus.Counter) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now.UnixNano(), expired)
}

func (l *ticketLedger) sweepLocked(now int64, expired prometheus.Counter) {
	for {
		q, ok := l.live.peek()
		if !ok || q.at > now {
			break
		}
		l.live.pop()
		e, ok := l.entries[q.key]
		if !ok {
			continue
		}
		if e.state == stateIssued {
			e.state = stateExpired
			l.entries[q.key] = e
			expired.Inc()
		}
		l.retired.push(queued{key: q.key, at: e.exp + l.retain})
	}
	for {
		q, ok := l.retired.peek()
		if !ok || q.at > now {
			break
		}
		l.retired.pop()
		delete(l.entries, q.key)
	}
}

// len is the number of tickets remembered.
func (l *ticketLedger) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
