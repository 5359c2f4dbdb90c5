package limit_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/internal/storetest"
	"github.com/tollgate-ws/tollgate/limit"
	"github.com/tollgate-ws/tollgate/memory"
)

func TestDurableBlocksIsABlocklist(t *testing.T) {
	storetest.Blocklist(t, func(t *testing.T) tollgate.Blocklist {
		return limit.DurableBlocks{Fast: memory.NewBlocklist(), Durable: memory.NewBlocklist()}
	})
}

// A block outlives the loss of the fast store: Reseed puts it back.
func TestDurableBlocksReseed(t *testing.T) {
	ctx := context.Background()
	durable := memory.NewBlocklist()
	d := limit.DurableBlocks{Fast: memory.NewBlocklist(), Durable: durable}
	now := time.Now()
	b := tollgate.Block{Kind: tollgate.BlockUser, Target: "u1", Reason: "admin", CreatedAt: now, Until: now.Add(time.Hour)}
	if err := d.Block(ctx, b); err != nil {
		t.Fatal(err)
	}
	d.Fast = memory.NewBlocklist() // the fast store restarted empty
	if _, ok, _ := d.Blocked(ctx, tollgate.BlockUser, "u1", now); ok {
		t.Fatal("an empty fast store reports a block")
	}
	if n, err := d.Reseed(ctx, now); err != nil || n != 1 {
		t.Fatalf("Reseed = %d, %v", n, err)
	}
	if got, ok, err := d.Blocked(ctx, tollgate.BlockUser, "u1", now); err != nil || !ok || got.Reason != "admin" {
		t.Fatalf("after Reseed: %+v %v %v", got, ok, err)
	}
	if removed, err := d.Unblock(ctx, tollgate.BlockUser, "u1"); err != nil || !removed {
		t.Fatalf("Unblock = %v, %v", removed, err)
	}
	if bs, _ := durable.List(ctx, now); len(bs) != 0 {
		t.Fatalf("the durable store keeps %v", bs)
	}
}
