package limit

import (
	"context"
	"errors"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// DurableBlocks is a Blocklist read from a fast shared store (Redis) and
// written through to a durable one (PostgreSQL), so that a block survives a
// restart of the fast store: Reseed copies the blocks in force back into
// it. Every check on the hot path (each handshake, login, ticket and
// publish) reads only the fast store.
type DurableBlocks struct {
	// Fast answers Blocked. Required.
	Fast tollgate.Blocklist
	// Durable keeps every block until it ends and answers List. Required.
	Durable tollgate.Blocklist
}

var _ tollgate.Blocklist = DurableBlocks{}

// Block writes b to the durable store first, then to the fast one.
func (d DurableBlocks) Block(ctx context.Context, b tollgate.Block) error {
	if err := d.Durable.Block(ctx, b); err != nil {
		return err
	}
	return d.Fast.Block(ctx, b)
}

// Unblock removes the block from both stores; it reports whether either had
// one in force.
func (d DurableBlocks) Unblock(ctx context.Context, kind tollgate.BlockKind, target string) (bool, error) {
	inDurable, errD := d.Durable.Unblock(ctx, kind, target)
	inFast, errF := d.Fast.Unblock(ctx, kind, target)
	return inDurable || inFast, errors.Join(errD, errF)
}

// Blocked asks the fast store.
func (d DurableBlocks) Blocked(ctx context.Context, kind tollgate.BlockKind, target string, now time.Time) (tollgate.Block, bool, error) {
	return d.Fast.Blocked(ctx, kind, target, now)
}

// List asks the durable store, which holds every block in force.
func (d DurableBlocks) List(ctx context.Context, now time.Time) ([]tollgate.Block, error) {
	return d.Durable.List(ctx, now)
}

// Reseed copies the blocks in force at now from the durable store into the
// fast one (replacing what is there) and returns how many it copied.
func (d DurableBlocks) Reseed(ctx context.Context, now time.Time) (int, error) {
	bs, err := d.Durable.List(ctx, now)
	if err != nil {
		return 0, err
	}
	for i, b := range bs {
		if err := d.Fast.Block(ctx, b); err != nil {
			return i, err
		}
	}
	return len(bs), nil
}
