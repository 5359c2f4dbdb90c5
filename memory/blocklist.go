package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// DefaultMaxBlocks is the number of blocks a [Blocklist] holds at most when
// its MaxBlocks field is zero.
const DefaultMaxBlocks = 1_000_000

var _ tollgate.Blocklist = (*Blocklist)(nil)

// Blocklist is an in-process [tollgate.Blocklist] for a single node: a map
// keyed by (kind, target) behind a mutex. It does not share blocks between
// processes: a cluster uses the redis package.
//
// Expired blocks are forgotten when Blocked or List meets them, when Block
// needs room, and by [Blocklist.Purge].
//
// Blocklist is safe for concurrent use. The zero value is ready to use;
// [NewBlocklist] returns one.
type Blocklist struct {
	// MaxBlocks bounds the number of blocks held. When it is reached, Block
	// first forgets expired blocks, then fails with an error wrapping
	// [tollgate.ErrUnavailable] rather than drop a block in force. Zero means
	// [DefaultMaxBlocks]. Set it before first use.
	MaxBlocks int
	// Now is the clock of Unblock (which reports whether a block was in
	// force) and of Block's purge when full; nil means time.Now. Set it
	// before first use.
	Now func() time.Time

	mu     sync.Mutex
	blocks map[blockKey]tollgate.Block
}

type blockKey struct {
	kind   tollgate.BlockKind
	target string
}

// NewBlocklist returns an empty Blocklist with the default bound.
func NewBlocklist() *Blocklist { return &Blocklist{} }

// Block adds or replaces the block of (b.Kind, b.Target). A block whose Until
// has passed is kept only until it is next met. It fails with an error
// wrapping [tollgate.ErrUnavailable] when MaxBlocks blocks are in force, and
// with ctx's error when ctx has ended. Safe for concurrent use.
func (l *Blocklist) Block(ctx context.Context, b tollgate.Block) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: block %s: %w", b.Kind, err)
	}
	limit := l.MaxBlocks
	if limit <= 0 {
		limit = DefaultMaxBlocks
	}
	k := blockKey{b.Kind, b.Target}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blocks == nil {
		l.blocks = make(map[blockKey]tollgate.Block)
	}
	if _, replace := l.blocks[k]; !replace && len(l.blocks) >= limit {
		l.purgeLocked(l.now())
		if len(l.blocks) >= limit {
			return fmt.Errorf("memory: block %s: blocklist full (%d blocks): %w", b.Kind, limit, tollgate.ErrUnavailable)
		}
	}
	l.blocks[k] = b
	return nil
}

// Unblock removes the block of (kind, target) and reports whether it was in
// force at Now. Safe for concurrent use.
func (l *Blocklist) Unblock(ctx context.Context, kind tollgate.BlockKind, target string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("memory: unblock %s: %w", kind, err)
	}
	k := blockKey{kind, target}
	l.mu.Lock()
	b, ok := l.blocks[k]
	delete(l.blocks, k)
	l.mu.Unlock()
	return ok && b.Active(l.now()), nil
}

// Blocked returns the block of (kind, target) in force at now, if any; an
// expired one is forgotten. Safe for concurrent use.
func (l *Blocklist) Blocked(ctx context.Context, kind tollgate.BlockKind, target string, now time.Time) (tollgate.Block, bool, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.Block{}, false, fmt.Errorf("memory: blocked %s: %w", kind, err)
	}
	k := blockKey{kind, target}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.blocks[k]
	if !ok {
		return tollgate.Block{}, false, nil
	}
	if !b.Active(now) {
		delete(l.blocks, k)
		return tollgate.Block{}, false, nil
	}
	return b, true, nil
}

// List returns the blocks in force at now, ordered by kind then target, and
// forgets the expired ones. Safe for concurrent use.
func (l *Blocklist) List(ctx context.Context, now time.Time) ([]tollgate.Block, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: list blocks: %w", err)
	}
	l.mu.Lock()
	l.purgeLocked(now)
	out := make([]tollgate.Block, 0, len(l.blocks))
	for _, b := range l.blocks {
		out = append(out, b)
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b tollgate.Block) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Target, b.Target))
	})
	return out, nil
}

// Purge forgets every block not in force at now and returns how many it
// forgot. Safe for concurrent use.
func (l *Blocklist) Purge(now time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.purgeLocked(now)
}

// Len returns the number of blocks held, expired ones not yet forgotten
// included. Safe for concurrent use.
func (l *Blocklist) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.blocks)
}

func (l *Blocklist) purgeLocked(now time.Time) int {
	n := 0
	for k, b := range l.blocks {
		if !b.Active(now) {
			delete(l.blocks, k)
			n++
		}
	}
	return n
}

func (l *Blocklist) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}
