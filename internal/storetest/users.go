package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/tollgate-ws/tollgate"
)

// Users checks an implementation of [tollgate.UserStore]. newStore is called
// once per subtest, possibly concurrently, and returns an empty store.
func Users(t *testing.T, newStore func(t *testing.T) tollgate.UserStore) {
	t.Helper()

	t.Run("create and read back", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		u := tollgate.User{ID: "u-1", Name: "Alice_1.x", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA",
			Admin: true, CreatedAt: baseTime}
		noErr(t, "CreateUser", s.CreateUser(ctx, u))
		got, err := s.UserByID(ctx, "u-1")
		noErr(t, "UserByID", err)
		sameUser(t, got, u)
		got, err = s.UserByName(ctx, "Alice_1.x")
		noErr(t, "UserByName", err)
		sameUser(t, got, u)
	})

	t.Run("name lookup is case-insensitive and keeps the spelling", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		noErr(t, "CreateUser", s.CreateUser(ctx, tollgate.User{ID: "u-1", Name: "Alice", CreatedAt: baseTime}))
		for _, name := range []string{"alice", "ALICE", "aLiCe", "Alice"} {
			got, err := s.UserByName(ctx, name)
			noErr(t, "UserByName "+name, err)
			if got.ID != "u-1" || got.Name != "Alice" {
				t.Errorf("UserByName(%q) = %q %q, want u-1 Alice", name, got.ID, got.Name)
			}
		}
	})

	t.Run("conflicts", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name string
			u    tollgate.User
		}{
			{"same name", tollgate.User{ID: "u-2", Name: "Alice"}},
			{"name differing in case", tollgate.User{ID: "u-2", Name: "aLICE"}},
			{"same id", tollgate.User{ID: "u-1", Name: "bob"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				ctx, s := testContext(t), newStore(t)
				noErr(t, "CreateUser", s.CreateUser(ctx, tollgate.User{ID: "u-1", Name: "Alice", CreatedAt: baseTime}))
				tc.u.CreatedAt = baseTime
				wantErr(t, "second CreateUser", s.CreateUser(ctx, tc.u), tollgate.ErrConflict)
				got, err := s.UserByName(ctx, "alice")
				noErr(t, "UserByName", err)
				if got.ID != "u-1" {
					t.Errorf("the failed create changed the user: %+v", got)
				}
			})
		}
	})

	t.Run("concurrent creates of one name: exactly one wins", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		const n = 16
		var won, conflicts atomic.Int32
		Parallel(n, func(i int) {
			name := "carol"
			if i%2 == 1 {
				name = "CAROL"
			}
			err := s.CreateUser(ctx, tollgate.User{ID: fmt.Sprintf("u-%d", i), Name: name, CreatedAt: baseTime})
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, tollgate.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("CreateUser: %v", err)
			}
		})
		if won.Load() != 1 || conflicts.Load() != n-1 {
			t.Fatalf("%d created, %d conflicts; want 1 and %d", won.Load(), conflicts.Load(), n-1)
		}
	})

	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		noErr(t, "CreateUser", s.CreateUser(ctx, tollgate.User{ID: "u-1", Name: "alice", CreatedAt: baseTime}))
		_, err := s.UserByID(ctx, "u-2")
		wantErr(t, "UserByID unknown", err, tollgate.ErrNotFound)
		_, err = s.UserByName(ctx, "bob")
		wantErr(t, "UserByName unknown", err, tollgate.ErrNotFound)
		_, err = s.UserByName(ctx, "alic")
		wantErr(t, "UserByName prefix", err, tollgate.ErrNotFound)
		wantErr(t, "SetUserDisabled unknown", s.SetUserDisabled(ctx, "u-2", true), tollgate.ErrNotFound)
	})

	t.Run("disable and re-enable", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		noErr(t, "CreateUser", s.CreateUser(ctx, tollgate.User{ID: "u-1", Name: "alice", CreatedAt: baseTime}))
		for _, disabled := range []bool{true, true, false, false, true} {
			noErr(t, "SetUserDisabled", s.SetUserDisabled(ctx, "u-1", disabled))
			got, err := s.UserByID(ctx, "u-1")
			noErr(t, "UserByID", err)
			if got.Disabled != disabled {
				t.Fatalf("Disabled = %v after SetUserDisabled(%v)", got.Disabled, disabled)
			}
			got, err = s.UserByName(ctx, "ALICE")
			noErr(t, "UserByName", err)
			if got.Disabled != disabled {
				t.Fatalf("UserByName: Disabled = %v after SetUserDisabled(%v)", got.Disabled, disabled)
			}
		}
	})

	t.Run("UsersByID", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), newStore(t)
		// More ids than one SQL statement's chunk, the known ones spread out.
		all := ids("u", 1203)
		known := map[string]bool{all[0]: true, all[499]: true, all[500]: true, all[1202]: true}
		for id := range known {
			noErr(t, "CreateUser", s.CreateUser(ctx, tollgate.User{ID: id, Name: "n" + id, CreatedAt: baseTime}))
		}
		noErr(t, "SetUserDisabled", s.SetUserDisabled(ctx, all[500], true))
		for _, tc := range []struct {
			name string
			ids  []string
			want []string
		}{
			{"nil", nil, nil},
			{"empty", []string{}, nil},
			{"unknown only", []string{"x", "y"}, nil},
			{"one", []string{all[0]}, []string{all[0]}},
			{"duplicates", []string{all[0], all[0], "x", all[0]}, []string{all[0]}},
			{"across chunks", all, []string{all[0], all[499], all[500], all[1202]}},
		} {
			got, err := s.UsersByID(ctx, tc.ids)
			noErr(t, "UsersByID "+tc.name, err)
			if got == nil {
				t.Errorf("%s: nil map", tc.name)
			}
			if len(got) != len(tc.want) {
				t.Errorf("%s: got %d users, want %d", tc.name, len(got), len(tc.want))
			}
			for _, id := range tc.want {
				u, ok := got[id]
				if !ok || u.ID != id || u.Name != "n"+id {
					t.Errorf("%s: user %s = %+v, %v", tc.name, id, u, ok)
				}
				if u.Disabled != (id == all[500]) {
					t.Errorf("%s: user %s Disabled = %v", tc.name, id, u.Disabled)
				}
			}
		}
	})
}

func sameUser(t *testing.T, got, want tollgate.User) {
	t.Helper()
	if got.ID != want.ID || got.Name != want.Name || got.PasswordHash != want.PasswordHash ||
		got.Admin != want.Admin || got.Disabled != want.Disabled || !sameTime(got.CreatedAt, want.CreatedAt) {
		t.Fatalf("user = %+v (created %v), want %+v (created %v)", got, got.CreatedAt, want, want.CreatedAt)
	}
}
