package storetest

import (
	"cmp"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Blocklist checks an implementation of [tollgate.Blocklist]. newList is
// called once per subtest, possibly concurrently, and returns an empty
// blocklist. Blocks are made from the wall clock's now (and last up to an
// hour), so that lists with their own expiry (Redis TTLs) keep them for the
// length of a subtest; Unblock, which takes no time, is asked only about
// blocks in force for that hour or already over when they were added. Within
// a subtest the now passed to Blocked and List never goes back, since a list
// may forget a block as soon as it has been asked about it after its Until.
func Blocklist(t *testing.T, newList func(t *testing.T) tollgate.Blocklist) {
	t.Helper()

	// block returns a block of (kind, target) made now that lasts d.
	block := func(kind tollgate.BlockKind, target string, d time.Duration) tollgate.Block {
		now := nowMilli()
		b := tollgate.Block{Kind: kind, Target: target, Reason: "rate_limit_violations", CreatedAt: now, Until: now.Add(d)}
		if kind == tollgate.BlockUser {
			b.Name = "name-" + target
		}
		return b
	}

	t.Run("block and read back", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		for _, want := range []tollgate.Block{
			block(tollgate.BlockUser, "u-1", time.Hour),
			block(tollgate.BlockIP, "192.0.2.7", time.Hour),
			block(tollgate.BlockIP, "2001:db8::7", time.Hour),
		} {
			noErr(t, "Block", l.Block(ctx, want))
			got, ok, err := l.Blocked(ctx, want.Kind, want.Target, want.CreatedAt)
			noErr(t, "Blocked", err)
			if !ok {
				t.Fatalf("Blocked(%s, %s) = not blocked", want.Kind, want.Target)
			}
			sameBlock(t, got, want)
		}
	})

	t.Run("fields survive, empty ones too", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		want := block(tollgate.BlockUser, "u-1", time.Hour)
		want.Name, want.Reason = "", ""
		noErr(t, "Block", l.Block(ctx, want))
		got, ok, err := l.Blocked(ctx, want.Kind, want.Target, want.CreatedAt)
		noErr(t, "Blocked", err)
		if !ok {
			t.Fatal("not blocked")
		}
		sameBlock(t, got, want)
	})

	t.Run("not blocked", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		now := nowMilli()
		if _, ok, err := l.Blocked(ctx, tollgate.BlockUser, "u-1", now); err != nil || ok {
			t.Fatalf("Blocked on an empty list = %v, %v", ok, err)
		}
		got, err := l.List(ctx, now)
		noErr(t, "List", err)
		if len(got) != 0 {
			t.Fatalf("List on an empty list = %+v", got)
		}
		noErr(t, "Block", l.Block(ctx, block(tollgate.BlockUser, "u-1", time.Hour)))
		for _, tc := range []struct {
			kind   tollgate.BlockKind
			target string
		}{
			{tollgate.BlockIP, "u-1"},    // kinds are separate
			{tollgate.BlockUser, "u-"},   // no prefix match
			{tollgate.BlockUser, "u-1 "}, // no trimming
			{tollgate.BlockUser, "U-1"},  // case matters
			{tollgate.BlockUser, ""},
		} {
			if _, ok, err := l.Blocked(ctx, tc.kind, tc.target, now); err != nil || ok {
				t.Errorf("Blocked(%s, %q) = %v, %v; want not blocked", tc.kind, tc.target, ok, err)
			}
		}
	})

	t.Run("a block ends at Until", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		b := block(tollgate.BlockIP, "192.0.2.1", time.Hour)
		noErr(t, "Block", l.Block(ctx, b))
		for _, tc := range []struct {
			at     time.Time
			active bool
		}{
			{b.CreatedAt, true},
			{b.Until.Add(-time.Millisecond), true},
			{b.Until, false},
			{b.Until.Add(time.Hour), false},
		} {
			_, ok, err := l.Blocked(ctx, b.Kind, b.Target, tc.at)
			noErr(t, "Blocked", err)
			if ok != tc.active {
				t.Errorf("Blocked at Until%+v = %v, want %v", tc.at.Sub(b.Until), ok, tc.active)
			}
			list, err := l.List(ctx, tc.at)
			noErr(t, "List", err)
			if (len(list) == 1) != tc.active || len(list) > 1 {
				t.Errorf("List at Until%+v = %+v, want the block: %v", tc.at.Sub(b.Until), list, tc.active)
			}
		}
	})

	t.Run("a block replaces the one before", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		first := block(tollgate.BlockUser, "u-1", time.Hour)
		noErr(t, "Block", l.Block(ctx, first))
		second := block(tollgate.BlockUser, "u-1", 10*time.Minute) // shorter: replace, not extend
		second.Reason = "admin"
		noErr(t, "Block", l.Block(ctx, second))
		got, ok, err := l.Blocked(ctx, second.Kind, second.Target, second.CreatedAt)
		noErr(t, "Blocked", err)
		if !ok {
			t.Fatal("not blocked")
		}
		sameBlock(t, got, second)
		list, err := l.List(ctx, second.CreatedAt)
		noErr(t, "List", err)
		if len(list) != 1 {
			t.Fatalf("List = %+v, want one block", list)
		}
		sameBlock(t, list[0], second)
		if _, ok, _ := l.Blocked(ctx, second.Kind, second.Target, second.Until); ok {
			t.Error("the replaced, longer block is still in force")
		}
	})

	t.Run("unblock", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		b := block(tollgate.BlockUser, "u-1", time.Hour)
		other := block(tollgate.BlockIP, "u-1", time.Hour)
		noErr(t, "Block", l.Block(ctx, b))
		noErr(t, "Block", l.Block(ctx, other))
		ok, err := l.Unblock(ctx, b.Kind, b.Target)
		noErr(t, "Unblock", err)
		if !ok {
			t.Fatal("Unblock of a block in force reported none")
		}
		if _, ok, _ := l.Blocked(ctx, b.Kind, b.Target, b.CreatedAt); ok {
			t.Fatal("still blocked after Unblock")
		}
		if _, ok, _ := l.Blocked(ctx, other.Kind, other.Target, other.CreatedAt); !ok {
			t.Fatal("Unblock removed the block of another kind")
		}
		if ok, err := l.Unblock(ctx, b.Kind, b.Target); err != nil || ok {
			t.Fatalf("second Unblock = %v, %v; want false", ok, err)
		}
		if ok, err := l.Unblock(ctx, tollgate.BlockIP, "198.51.100.1"); err != nil || ok {
			t.Fatalf("Unblock of an unknown target = %v, %v; want false", ok, err)
		}
		list, err := l.List(ctx, b.CreatedAt)
		noErr(t, "List", err)
		if len(list) != 1 {
			t.Fatalf("List = %+v, want only the other block", list)
		}
		sameBlock(t, list[0], other)
		// Blocking again after an unblock works.
		noErr(t, "Block", l.Block(ctx, b))
		if _, ok, _ := l.Blocked(ctx, b.Kind, b.Target, b.CreatedAt); !ok {
			t.Fatal("not blocked again")
		}
	})

	t.Run("a block over before it was added is not in force", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		b := block(tollgate.BlockIP, "192.0.2.9", time.Hour)
		b.CreatedAt, b.Until = b.CreatedAt.Add(-2*time.Hour), b.CreatedAt.Add(-time.Hour)
		noErr(t, "Block", l.Block(ctx, b))
		now := nowMilli()
		if _, ok, err := l.Blocked(ctx, b.Kind, b.Target, now); err != nil || ok {
			t.Fatalf("Blocked = %v, %v; want not blocked", ok, err)
		}
		list, err := l.List(ctx, now)
		noErr(t, "List", err)
		if len(list) != 0 {
			t.Fatalf("List = %+v, want none", list)
		}
		if ok, err := l.Unblock(ctx, b.Kind, b.Target); err != nil || ok {
			t.Fatalf("Unblock = %v, %v; want false: the block was not in force", ok, err)
		}
	})

	t.Run("list returns every block in force", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		var want []tollgate.Block
		for i, id := range ids("u", 40) {
			d := time.Hour
			if i%4 == 0 {
				d = time.Minute // over at the second List
			}
			b := block(tollgate.BlockUser, id, d)
			want = append(want, b)
			ip := block(tollgate.BlockIP, "192.0.2."+id[len(id)-2:], d)
			want = append(want, ip)
		}
		for _, b := range want {
			noErr(t, "Block", l.Block(ctx, b))
		}
		check := func(at time.Time) {
			t.Helper()
			var active []tollgate.Block
			for _, b := range want {
				if b.Active(at) {
					active = append(active, b)
				}
			}
			got, err := l.List(ctx, at)
			noErr(t, "List", err)
			sortBlocks(got)
			sortBlocks(active)
			if len(got) != len(active) {
				t.Fatalf("List = %d blocks, want %d", len(got), len(active))
			}
			for i := range got {
				sameBlock(t, got[i], active[i])
			}
		}
		check(nowMilli())
		check(nowMilli().Add(2 * time.Minute))
	})

	t.Run("concurrent blocks, and racing unblocks: one wins each", func(t *testing.T) {
		t.Parallel()
		ctx, l := testContext(t), newList(t)
		targets := ids("u", 100)
		Parallel(len(targets), func(i int) {
			if err := l.Block(ctx, block(tollgate.BlockUser, targets[i], time.Hour)); err != nil {
				t.Errorf("Block: %v", err)
			}
		})
		list, err := l.List(ctx, nowMilli())
		noErr(t, "List", err)
		if len(list) != len(targets) {
			t.Fatalf("List = %d blocks, want %d", len(list), len(targets))
		}
		const racers = 4
		var wins [100]atomic.Int32
		Parallel(len(targets)*racers, func(i int) {
			ok, err := l.Unblock(ctx, tollgate.BlockUser, targets[i%len(targets)])
			if err != nil {
				t.Errorf("Unblock: %v", err)
			}
			if ok {
				wins[i%len(targets)].Add(1)
			}
		})
		for i := range targets {
			if n := wins[i].Load(); n != 1 {
				t.Errorf("%s: %d unblocks reported a block, want 1", targets[i], n)
			}
		}
	})
}

func sortBlocks(bs []tollgate.Block) {
	slices.SortFunc(bs, func(a, b tollgate.Block) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Target, b.Target))
	})
}

func sameBlock(t *testing.T, got, want tollgate.Block) {
	t.Helper()
	if got.Kind != want.Kind || got.Target != want.Target || got.Name != want.Name || got.Reason != want.Reason ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.Until, want.Until) {
		t.Fatalf("block = %+v, want %+v", got, want)
	}
}
