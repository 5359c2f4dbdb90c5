package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Messages checks an implementation of [tollgate.MessageStore]. newStore is
// called once per subtest, possibly concurrently, and returns an empty store.
// Messages name users that need not exist (anonymous principals publish too).
func Messages(t *testing.T, newStore func(t *testing.T) tollgate.MessageStore) {
	t.Helper()

	msg := func(room, user, text, clientID string, i int) tollgate.Message {
		return tollgate.Message{Room: room, UserID: user, UserName: "name-" + user, Text: text,
			ClientID: clientID, TS: baseTime.Add(time.Duration(i) * time.Millisecond)}
	}
	// appendN appends n messages to room and returns them as stored.
	appendN := func(t *testing.T, s tollgate.MessageStore, room string, n int) []tollgate.Message {
		t.Helper()
		ctx := testContext(t)
		out := make([]tollgate.Message, 0, n)
		for i := range n {
			m, dup, err := s.Append(ctx, msg(room, "u-1", fmt.Sprintf("text %d", i), "", i))
			noErr(t, "Append", err)
			if dup {
				t.Fatal("Append without client id reported a duplicate")
			}
			out = append(out, m)
		}
		return out
	}

	t.Run("empty room", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		last, err := s.LastID(ctx, "general")
		noErr(t, "LastID", err)
		if last != 0 {
			t.Errorf("LastID of an empty room = %d", last)
		}
		h, err := s.History(ctx, "general", 0, 10)
		noErr(t, "History", err)
		if len(h) != 0 {
			t.Errorf("History of an empty room = %v", h)
		}
	})

	t.Run("append assigns ids and keeps every field", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		text := strings.Repeat("ü€😀", tollgate.MaxTextChars/3) + "é"
		for i, want := range []tollgate.Message{
			msg("general", "u-1", "hello", "c-1", 0),
			msg("general", "u-2", text, "", 1),
			msg("general", "anon-7", "x", strings.Repeat("k", tollgate.MaxClientIDLen), 2),
		} {
			want.ID = 99 // ignored
			got, dup, err := s.Append(ctx, want)
			noErr(t, "Append", err)
			want.ID = int64(i + 1)
			if dup {
				t.Errorf("message %d: duplicate", i)
			}
			sameMessage(t, got, want)
			last, err := s.LastID(ctx, "general")
			noErr(t, "LastID", err)
			if last != want.ID {
				t.Errorf("LastID = %d, want %d", last, want.ID)
			}
			h, err := s.History(ctx, "general", want.ID-1, 1)
			noErr(t, "History", err)
			if len(h) != 1 {
				t.Fatalf("History after %d = %v", want.ID-1, h)
			}
			sameMessage(t, h[0], want)
		}
	})

	t.Run("rooms count separately", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		for i, room := range []string{"a", "b", "a", "c", "a", "b"} {
			m, _, err := s.Append(ctx, msg(room, "u-1", "t", "", i))
			noErr(t, "Append", err)
			want := map[int]int64{0: 1, 1: 1, 2: 2, 3: 1, 4: 3, 5: 2}[i]
			if m.ID != want || m.Room != room {
				t.Errorf("append %d to %s: id %d room %s, want id %d", i, room, m.ID, m.Room, want)
			}
		}
		for room, want := range map[string]int64{"a": 3, "b": 2, "c": 1, "d": 0} {
			last, err := s.LastID(ctx, room)
			noErr(t, "LastID", err)
			if last != want {
				t.Errorf("LastID(%s) = %d, want %d", room, last, want)
			}
		}
	})

	t.Run("history since and limit", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		stored := appendN(t, s, "general", 10)
		appendN(t, s, "other", 3)
		for _, tc := range []struct {
			name         string
			since        int64
			limit        int
			first, count int64 // expected ids first..first+count-1
		}{
			{"from the start", 0, 100, 1, 10},
			{"limited", 0, 3, 1, 3},
			{"since, limited", 3, 4, 4, 4},
			{"since, to the end", 7, 100, 8, 3},
			{"since the last", 10, 100, 0, 0},
			{"since beyond the last", 50, 100, 0, 0},
			{"negative since counts as 0", -5, 2, 1, 2},
			{"limit 1", 9, 1, 10, 1},
			{"limit 0 is clamped to 1", 0, 0, 1, 1},
			{"negative limit is clamped to 1", 4, -1, 5, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h, err := s.History(ctx, "general", tc.since, tc.limit)
				noErr(t, "History", err)
				if int64(len(h)) != tc.count {
					t.Fatalf("History(since %d, limit %d): %d messages, want %d", tc.since, tc.limit, len(h), tc.count)
				}
				for i, m := range h {
					sameMessage(t, m, stored[tc.first-1+int64(i)])
				}
			})
		}
	})

	t.Run("history limit is clamped to MaxHistoryLimit", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		appendN(t, s, "big", tollgate.MaxHistoryLimit+5)
		h, err := s.History(ctx, "big", 0, tollgate.MaxHistoryLimit*10)
		noErr(t, "History", err)
		if len(h) != tollgate.MaxHistoryLimit {
			t.Fatalf("History with a huge limit: %d messages, want %d", len(h), tollgate.MaxHistoryLimit)
		}
		for i, m := range h {
			if m.ID != int64(i+1) {
				t.Fatalf("History[%d].ID = %d: not oldest first", i, m.ID)
			}
		}
		h, err = s.History(ctx, "big", tollgate.MaxHistoryLimit, tollgate.MaxHistoryLimit)
		noErr(t, "History", err)
		if len(h) != 5 || h[0].ID != tollgate.MaxHistoryLimit+1 {
			t.Fatalf("History after %d: %d messages", tollgate.MaxHistoryLimit, len(h))
		}
	})

	t.Run("client id makes a publish idempotent", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		first, dup, err := s.Append(ctx, msg("general", "u-1", "hello", "c-1", 0))
		noErr(t, "Append", err)
		if dup || first.ID != 1 {
			t.Fatalf("first Append: id %d duplicate %v", first.ID, dup)
		}
		// A retry (even with another text) returns the stored message.
		again, dup, err := s.Append(ctx, msg("general", "u-1", "hello, edited", "c-1", 5))
		noErr(t, "Append retry", err)
		if !dup {
			t.Error("retry: duplicate = false")
		}
		sameMessage(t, again, first)
		last, err := s.LastID(ctx, "general")
		noErr(t, "LastID", err)
		if last != 1 {
			t.Errorf("LastID after a retry = %d, want 1", last)
		}
		// Another user with the same client id, the same user in another
		// room, and messages without a client id are new messages.
		for _, tc := range []struct {
			name   string
			m      tollgate.Message
			wantID int64
		}{
			{"other user, same client id", msg("general", "u-2", "hi", "c-1", 1), 2},
			{"same user, other room", msg("random", "u-1", "hi", "c-1", 2), 1},
			{"same user, other client id", msg("general", "u-1", "hi", "c-2", 3), 3},
			{"no client id", msg("general", "u-1", "hi", "", 4), 4},
			{"no client id again", msg("general", "u-1", "hi", "", 5), 5},
		} {
			got, dup, err := s.Append(ctx, tc.m)
			noErr(t, tc.name, err)
			if dup || got.ID != tc.wantID {
				t.Errorf("%s: id %d duplicate %v, want id %d and no duplicate", tc.name, got.ID, dup, tc.wantID)
			}
		}
		// The other user's retry is a duplicate of their own message.
		got, dup, err := s.Append(ctx, msg("general", "u-2", "hi", "c-1", 9))
		noErr(t, "Append", err)
		if !dup || got.ID != 2 || got.UserID != "u-2" {
			t.Errorf("u-2 retry: id %d user %s duplicate %v, want id 2 duplicate", got.ID, got.UserID, dup)
		}
	})

	t.Run("concurrent appends get ids 1..n without gaps", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		const goroutines, each = 20, 10
		const n = goroutines * each
		got := make([][]int64, goroutines)
		Parallel(goroutines, func(g int) {
			for i := range each {
				m, dup, err := s.Append(ctx, msg("busy", fmt.Sprintf("u-%d", g), fmt.Sprintf("%d/%d", g, i), "", i))
				if err != nil || dup {
					t.Errorf("Append: %v, duplicate %v", err, dup)
					return
				}
				got[g] = append(got[g], m.ID)
			}
		})
		var all []int64
		for g, own := range got {
			if !slices.IsSorted(own) {
				t.Errorf("goroutine %d got ids out of order: %v", g, own)
			}
			all = append(all, own...)
		}
		slices.Sort(all)
		for i, id := range all {
			if id != int64(i+1) {
				t.Fatalf("ids %v: want exactly 1..%d", all, n)
			}
		}
		if len(all) != n {
			t.Fatalf("%d ids, want %d", len(all), n)
		}
		h, err := s.History(ctx, "busy", 0, tollgate.MaxHistoryLimit)
		noErr(t, "History", err)
		if len(h) != n {
			t.Fatalf("History: %d messages, want %d", len(h), n)
		}
		for i, m := range h {
			if m.ID != int64(i+1) {
				t.Fatalf("History[%d].ID = %d", i, m.ID)
			}
		}
		last, err := s.LastID(ctx, "busy")
		noErr(t, "LastID", err)
		if last != n {
			t.Errorf("LastID = %d, want %d", last, n)
		}
	})

	t.Run("concurrent retries store one message", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		const n = 32
		var fresh atomic.Int32
		ids := make([]int64, n)
		Parallel(n, func(i int) {
			m, dup, err := s.Append(ctx, msg("general", "u-1", "once", "c-1", i))
			if err != nil {
				t.Errorf("Append: %v", err)
				return
			}
			if !dup {
				fresh.Add(1)
			}
			ids[i] = m.ID
		})
		if fresh.Load() != 1 {
			t.Errorf("%d appends stored a message, want 1", fresh.Load())
		}
		for i, id := range ids {
			if id != 1 {
				t.Errorf("append %d returned id %d, want 1", i, id)
			}
		}
		last, err := s.LastID(ctx, "general")
		noErr(t, "LastID", err)
		if last != 1 {
			t.Errorf("LastID = %d, want 1", last)
		}
	})
}

func sameMessage(t *testing.T, got, want tollgate.Message) {
	t.Helper()
	if got.Room != want.Room || got.ID != want.ID || got.UserID != want.UserID || got.UserName != want.UserName ||
		got.Text != want.Text || got.ClientID != want.ClientID || !sameTime(got.TS, want.TS) {
		t.Fatalf("message = %+v, want %+v", trim(got), trim(want))
	}
}

// trim shortens a message's text for failure output.
func trim(m tollgate.Message) tollgate.Message {
	if len(m.Text) > 40 {
		m.Text = m.Text[:40] + "…"
	}
	return m
}
