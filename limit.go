package tollgate

import (
	"context"
	"time"
)

// BlockKind says what a block targets.
type BlockKind string

// Block kinds.
const (
	BlockUser BlockKind = "user" // Target: user id
	BlockIP   BlockKind = "ip"   // Target: IP address
)

// Block is a temporary ban of a user or an IP address.
type Block struct {
	Kind   BlockKind `json:"kind"`
	Target string    `json:"target"`
	// Name is the user name for user blocks (display only).
	Name      string    `json:"name,omitempty"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	Until     time.Time `json:"until"`
}

// Active reports whether b is in force at now.
func (b Block) Active(now time.Time) bool { return now.Before(b.Until) }

// Blocklist keeps temporary blocks, shared by every node of a cluster.
// Implementations are safe for concurrent use and forget blocks once they
// have expired.
type Blocklist interface {
	// Block adds or replaces the block of (b.Kind, b.Target).
	Block(ctx context.Context, b Block) error
	// Unblock removes the block; it reports whether there was one in force.
	Unblock(ctx context.Context, kind BlockKind, target string) (bool, error)
	// Blocked returns the block in force for (kind, target) at now, if any.
	Blocked(ctx context.Context, kind BlockKind, target string, now time.Time) (Block, bool, error)
	// List returns the blocks in force at now.
	List(ctx context.Context, now time.Time) ([]Block, error)
}

// RateCounter counts events per key in fixed windows, shared by every node
// of a cluster. Limiters build sliding-window estimates from the current and
// previous window. Implementations are safe for concurrent use.
type RateCounter interface {
	// Incr adds n to key's count in the window of length w that contains
	// now (windows start at multiples of w since the Unix epoch) and returns
	// the new count of that window and the count of the window before it.
	Incr(ctx context.Context, key string, n int64, w time.Duration, now time.Time) (current, previous int64, err error)
}
