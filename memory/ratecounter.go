package memory

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// DefaultMaxRateKeys is the number of keys a [RateCounter] holds at most when
// its MaxKeys field is zero. At about 150 bytes a key it bounds the counter
// near 150 MB.
const DefaultMaxRateKeys = 1_000_000

// rateShards is how many independently locked shards a [RateCounter] has at
// most; minRateShardKeys is the fewest keys a shard holds, so that small
// bounds use fewer shards (one shard below 2 × minRateShardKeys).
const (
	rateShards       = 64
	minRateShardKeys = 1024
)

var _ tollgate.RateCounter = (*RateCounter)(nil)

// RateCounter is an in-process [tollgate.RateCounter] for a single node:
// fixed-window counts per key in sharded maps, each shard behind its own
// mutex. It does not share counts between processes: a cluster uses the
// redis package.
//
// For each (key, window length) it keeps only the newest window's count and
// the count of the window before it, so a window two or more lengths old is
// forgotten as soon as the key is counted again. Keys that are not counted
// again are forgotten by [RateCounter.Purge], or evicted when the counter is
// full.
//
// Memory is bounded by MaxKeys. When a shard is full, counting a new key
// evicts the shard's least recently counted key: its counts restart from zero
// if it comes back. Counting is thus never refused for lack of room (a flood
// of new keys, such as many client addresses, cannot make the limiter fail
// closed for everyone); the cost is that a flood larger than MaxKeys within
// one window may forget the oldest counts. Size MaxKeys above the number of
// distinct users and addresses active within the longest window.
//
// RateCounter is safe for concurrent use. The zero value is ready to use;
// [NewRateCounter] returns one.
type RateCounter struct {
	// MaxKeys bounds the number of (key, window length) pairs held. Zero
	// means [DefaultMaxRateKeys]. Set it before first use.
	MaxKeys int
	// Now is the clock Run passes to Purge; nil means time.Now. Set it before
	// first use.
	Now func() time.Time

	once   sync.Once
	seed   maphash.Seed
	shards []rateShard
}

// rateKey identifies one counted series: a key counted in windows of one
// length.
type rateKey struct {
	key string
	w   time.Duration
}

// rateEntry is the newest window of a series and the count of the window
// before it. Entries of a shard form a list, most recently counted first.
type rateEntry struct {
	k          rateKey
	idx        int64 // index of the newest window: start = idx × w since the epoch
	cur, prev  int64 // counts of window idx and of window idx-1
	prevE, nxt *rateEntry
}

type rateShard struct {
	mu      sync.Mutex
	max     int
	entries map[rateKey]*rateEntry
	// head is the most recently counted entry, tail the least.
	head, tail *rateEntry
}

// NewRateCounter returns an empty RateCounter with the default bound.
func NewRateCounter() *RateCounter { return &RateCounter{} }

func (c *RateCounter) init() {
	c.once.Do(func() {
		limit := c.MaxKeys
		if limit <= 0 {
			limit = DefaultMaxRateKeys
		}
		n := min(rateShards, max(1, limit/minRateShardKeys))
		c.seed = maphash.MakeSeed()
		c.shards = make([]rateShard, n)
		for i := range c.shards {
			// Spread the bound; the first limit%n shards take one more.
			c.shards[i].max = limit / n
			if i < limit%n {
				c.shards[i].max++
			}
			c.shards[i].entries = make(map[rateKey]*rateEntry)
		}
	})
}

func (c *RateCounter) shard(key string) *rateShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	return &c.shards[maphash.String(c.seed, key)%uint64(len(c.shards))]
}

// Incr adds n (which may be negative, to take back an earlier count) to key's
// count in the window of length w that contains now, and returns that
// window's new count and the count of the window before it.
//
// A call whose now lies in the window before the key's newest one (a late or
// taken-back count) adds to that previous window and reports the window
// before it as 0, since it is no longer kept. A call older than that counts
// nothing and returns (n, 0).
//
// Incr fails when w is not positive, and with ctx's error when ctx has ended.
// Safe for concurrent use: concurrent calls on one key each see a distinct
// count, as if they ran one after the other.
func (c *RateCounter) Incr(ctx context.Context, key string, n int64, w time.Duration, now time.Time) (current, previous int64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("memory: count %q: %w", key, err)
	}
	if w <= 0 {
		return 0, 0, fmt.Errorf("memory: count %q: window %v is not positive", key, w)
	}
	c.init()
	idx := windowIndex(now, w)
	k := rateKey{key, w}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[k]
	if e == nil {
		if len(s.entries) >= s.max {
			s.remove(s.tail) // the least recently counted key
		}
		e = &rateEntry{k: k, idx: idx}
		s.entries[k] = e
		s.pushFront(e)
	} else {
		s.moveToFront(e)
	}
	switch d := idx - e.idx; {
	case d == 0:
		e.cur += n
		return e.cur, e.prev, nil
	case d == 1:
		e.idx, e.prev, e.cur = idx, e.cur, n
		return e.cur, e.prev, nil
	case d > 1:
		e.idx, e.prev, e.cur = idx, 0, n
		return e.cur, e.prev, nil
	case d == -1:
		e.prev += n
		return e.prev, 0, nil
	default: // older than anything kept
		return n, 0, nil
	}
}

// Purge forgets every key whose newest window and the window after it have
// both ended at now, and returns how many it forgot. It locks one shard at a
// time. Safe for concurrent use.
func (c *RateCounter) Purge(now time.Time) int {
	c.init()
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, e := range s.entries {
			if windowIndex(now, k.w)-e.idx >= 2 {
				s.remove(e)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Len returns the number of (key, window length) pairs held, expired ones
// not yet purged included. Safe for concurrent use.
func (c *RateCounter) Len() int {
	c.init()
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.entries)
		s.mu.Unlock()
	}
	return n
}

// Run purges expired keys every interval ([DefaultPurgeInterval] when
// interval is not positive) until ctx ends, then returns. The caller owns the
// goroutine that runs it and waits for it on shutdown. Without it, expired
// keys stay until they are counted again or evicted, within MaxKeys. Run at
// most one per counter.
func (c *RateCounter) Run(ctx context.Context, interval time.Duration) {
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
			now := time.Now
			if c.Now != nil {
				now = c.Now
			}
			c.Purge(now())
		}
	}
}

// windowIndex is the index of the window of length w containing t, counting
// windows from the Unix epoch (floor division, so times before 1970 work).
func windowIndex(t time.Time, w time.Duration) int64 {
	ns, d := t.UnixNano(), int64(w)
	q := ns / d
	if ns%d < 0 {
		q--
	}
	return q
}

func (s *rateShard) pushFront(e *rateEntry) {
	e.prevE, e.nxt = nil, s.head
	if s.head != nil {
		s.head.prevE = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *rateShard) unlink(e *rateEntry) {
	if e.prevE != nil {
		e.prevE.nxt = e.nxt
	} else {
		s.head = e.nxt
	}
	if e.nxt != nil {
		e.nxt.prevE = e.prevE
	} else {
		s.tail = e.prevE
	}
	e.prevE, e.nxt = nil, nil
}

func (s *rateShard) moveToFront(e *rateEntry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

func (s *rateShard) remove(e *rateEntry) {
	if e == nil {
		return
	}
	s.unlink(e)
	delete(s.entries, e.k)
}
