package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Sessions checks an implementation of [tollgate.SessionStore]. newStores is
// called once per subtest, possibly concurrently, and returns an empty
// session store with the user store it belongs to (SQL stores refuse a
// session of an unknown user); both may be one value. The suite creates the
// users its sessions name.
func Sessions(t *testing.T, newStores func(t *testing.T) (tollgate.UserStore, tollgate.SessionStore)) {
	t.Helper()

	// setup returns a session store whose users alice (u-a) and bob (u-b) exist.
	setup := func(t *testing.T) tollgate.SessionStore {
		t.Helper()
		ctx := testContext(t)
		users, sessions := newStores(t)
		noErr(t, "CreateUser", users.CreateUser(ctx, tollgate.User{ID: "u-a", Name: "alice", CreatedAt: baseTime}))
		noErr(t, "CreateUser", users.CreateUser(ctx, tollgate.User{ID: "u-b", Name: "bob", CreatedAt: baseTime}))
		return sessions
	}
	session := func(id, user string) tollgate.Session {
		return tollgate.Session{ID: id, UserID: user, CreatedAt: baseTime, ExpiresAt: baseTime.Add(720 * time.Hour)}
	}
	token := func(hash, sid string) tollgate.RefreshToken {
		return tollgate.RefreshToken{Hash: hash, SessionID: sid, ExpiresAt: baseTime.Add(720 * time.Hour)}
	}
	during := baseTime.Add(time.Hour) // a "now" while sessions and tokens live

	t.Run("create and read back", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		want := session("s-1", "u-a")
		noErr(t, "CreateSession", s.CreateSession(ctx, want, token("h-1", "s-1")))
		got, err := s.Session(ctx, "s-1")
		noErr(t, "Session", err)
		sameSession(t, got, want)
		if !got.RevokedAt.IsZero() || !got.Live(during) {
			t.Errorf("a new session is not live: %+v", got)
		}
	})

	t.Run("conflicts", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		noErr(t, "CreateSession", s.CreateSession(ctx, session("s-1", "u-a"), token("h-1", "s-1")))
		wantErr(t, "same session id", s.CreateSession(ctx, session("s-1", "u-b"), token("h-2", "s-1")), tollgate.ErrConflict)
		wantErr(t, "same token hash", s.CreateSession(ctx, session("s-2", "u-a"), token("h-1", "s-2")), tollgate.ErrConflict)
		_, err := s.Session(ctx, "s-2")
		wantErr(t, "Session after a failed create", err, tollgate.ErrNotFound)
		got, err := s.Session(ctx, "s-1")
		noErr(t, "Session", err)
		if got.UserID != "u-a" {
			t.Errorf("a failed create changed the session: %+v", got)
		}
	})

	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		_, err := s.Session(ctx, "nope")
		wantErr(t, "Session", err, tollgate.ErrNotFound)
		wantErr(t, "RevokeSession", s.RevokeSession(ctx, "nope", during), tollgate.ErrNotFound)
		got, err := s.RevokeUserSessions(ctx, "u-nobody", during)
		noErr(t, "RevokeUserSessions of an unknown user", err)
		if len(got) != 0 {
			t.Errorf("RevokeUserSessions of an unknown user = %v", got)
		}
		sess, err := s.RotateRefresh(ctx, "h-nope", token("h-next", ""), during)
		wantErr(t, "RotateRefresh unknown", err, tollgate.ErrNotFound)
		if sess.ID != "" {
			t.Errorf("RotateRefresh of an unknown token returned session %q", sess.ID)
		}
	})

	t.Run("revoke one", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		noErr(t, "CreateSession", s.CreateSession(ctx, session("s-1", "u-a"), token("h-1", "s-1")))
		noErr(t, "CreateSession", s.CreateSession(ctx, session("s-2", "u-a"), token("h-2", "s-2")))
		noErr(t, "RevokeSession", s.RevokeSession(ctx, "s-1", during))
		// Idempotent: a second revoke succeeds and keeps the first time.
		noErr(t, "RevokeSession again", s.RevokeSession(ctx, "s-1", during.Add(time.Minute)))
		got, err := s.Session(ctx, "s-1")
		noErr(t, "Session", err)
		if !got.RevokedAt.Equal(during) || got.Live(during) {
			t.Errorf("revoked session: RevokedAt = %v, want %v, and not live", got.RevokedAt, during)
		}
		other, err := s.Session(ctx, "s-2")
		noErr(t, "Session", err)
		if !other.RevokedAt.IsZero() {
			t.Errorf("revoking s-1 revoked s-2 too: %+v", other)
		}
	})

	t.Run("revoke all of a user", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		for _, sess := range []tollgate.Session{
			session("s-a1", "u-a"),
			session("s-a2", "u-a"),
			session("s-a3", "u-a"), // revoked before
			{ID: "s-a4", UserID: "u-a", CreatedAt: baseTime, ExpiresAt: during}, // expired at `during`
			session("s-b1", "u-b"),
		} {
			noErr(t, "CreateSession", s.CreateSession(ctx, sess, token("h-"+sess.ID, sess.ID)))
		}
		earlier := during.Add(-time.Minute)
		noErr(t, "RevokeSession", s.RevokeSession(ctx, "s-a3", earlier))

		got, err := s.RevokeUserSessions(ctx, "u-a", during)
		noErr(t, "RevokeUserSessions", err)
		slices.Sort(got)
		if !slices.Equal(got, []string{"s-a1", "s-a2"}) {
			t.Fatalf("RevokeUserSessions = %v, want the live ones [s-a1 s-a2]", got)
		}
		all, err := s.SessionsByID(ctx, []string{"s-a1", "s-a2", "s-a3", "s-b1"})
		noErr(t, "SessionsByID", err)
		for id, want := range map[string]time.Time{"s-a1": during, "s-a2": during, "s-a3": earlier, "s-b1": {}} {
			if !sameTime(all[id].RevokedAt, want) {
				t.Errorf("%s: RevokedAt = %v, want %v", id, all[id].RevokedAt, want)
			}
		}
		again, err := s.RevokeUserSessions(ctx, "u-a", during.Add(time.Minute))
		noErr(t, "RevokeUserSessions again", err)
		if len(again) != 0 {
			t.Errorf("second RevokeUserSessions = %v, want none", again)
		}
	})

	t.Run("refresh rotation", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		want := session("s-1", "u-a")
		noErr(t, "CreateSession", s.CreateSession(ctx, want, token("h-1", "s-1")))
		// A chain of rotations: each spends the last token.
		for i := 1; i <= 3; i++ {
			got, err := s.RotateRefresh(ctx, fmt.Sprintf("h-%d", i), token(fmt.Sprintf("h-%d", i+1), "s-1"), during)
			noErr(t, fmt.Sprintf("RotateRefresh h-%d", i), err)
			sameSession(t, got, want)
		}
		// Every spent token is a reuse, and returns the session so the caller can revoke it.
		for _, h := range []string{"h-1", "h-3"} {
			got, err := s.RotateRefresh(ctx, h, token("h-x-"+h, "s-1"), during)
			wantErr(t, "RotateRefresh of spent "+h, err, tollgate.ErrReused)
			if got.ID != "s-1" || got.UserID != "u-a" {
				t.Errorf("reuse of %s returned session %+v, want s-1", h, got)
			}
		}
		// The live token is still good after the reuse attempts (revoking is the caller's call).
		_, err := s.RotateRefresh(ctx, "h-4", token("h-5", "s-1"), during)
		noErr(t, "RotateRefresh h-4", err)
	})

	t.Run("expired refresh token", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		first := tollgate.RefreshToken{Hash: "h-1", SessionID: "s-1", ExpiresAt: during}
		noErr(t, "CreateSession", s.CreateSession(ctx, session("s-1", "u-a"), first))
		for _, now := range []time.Time{during, during.Add(time.Millisecond), during.Add(time.Hour)} {
			_, err := s.RotateRefresh(ctx, "h-1", token("h-2", "s-1"), now)
			wantErr(t, fmt.Sprintf("RotateRefresh at %v", now), err, tollgate.ErrNotFound)
		}
		// The expired attempts spent nothing and stored nothing.
		_, err := s.RotateRefresh(ctx, "h-2", token("h-3", "s-1"), during.Add(-time.Minute))
		wantErr(t, "RotateRefresh of the refused next token", err, tollgate.ErrNotFound)
		_, err = s.RotateRefresh(ctx, "h-1", token("h-2", "s-1"), during.Add(-time.Millisecond))
		noErr(t, "RotateRefresh just before expiry", err)
	})

	t.Run("concurrent rotations of one token: exactly one wins", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		noErr(t, "CreateSession", s.CreateSession(ctx, session("s-1", "u-a"), token("h-1", "s-1")))
		const n = 16
		var won, reused atomic.Int32
		Parallel(n, func(i int) {
			sess, err := s.RotateRefresh(ctx, "h-1", token(fmt.Sprintf("h-next-%d", i), "s-1"), during)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, tollgate.ErrReused):
				reused.Add(1)
				if sess.ID != "s-1" {
					t.Errorf("ErrReused with session %q, want s-1", sess.ID)
				}
			default:
				t.Errorf("RotateRefresh: %v", err)
			}
		})
		if won.Load() != 1 || reused.Load() != n-1 {
			t.Fatalf("%d rotations won, %d reused; want 1 and %d", won.Load(), reused.Load(), n-1)
		}
	})

	t.Run("SessionsByID", func(t *testing.T) {
		t.Parallel()
		ctx, s := testContext(t), setup(t)
		all := ids("s", 1001)
		known := []string{all[0], all[500], all[1000]}
		for _, id := range known {
			noErr(t, "CreateSession", s.CreateSession(ctx, session(id, "u-a"), token("h-"+id, id)))
		}
		noErr(t, "RevokeSession", s.RevokeSession(ctx, all[500], during))
		for _, tc := range []struct {
			name string
			ids  []string
			want []string
		}{
			{"nil", nil, nil},
			{"unknown only", []string{"x"}, nil},
			{"duplicates", []string{all[0], all[0]}, known[:1]},
			{"across chunks", all, known},
		} {
			got, err := s.SessionsByID(ctx, tc.ids)
			noErr(t, "SessionsByID "+tc.name, err)
			if got == nil || len(got) != len(tc.want) {
				t.Errorf("%s: got %d sessions (map %v), want %d", tc.name, len(got), got != nil, len(tc.want))
			}
			for _, id := range tc.want {
				sess, ok := got[id]
				if !ok || sess.ID != id || sess.UserID != "u-a" {
					t.Errorf("%s: session %s = %+v, %v", tc.name, id, sess, ok)
				}
				if sess.RevokedAt.IsZero() == (id == all[500]) {
					t.Errorf("%s: session %s RevokedAt = %v", tc.name, id, sess.RevokedAt)
				}
			}
		}
	})
}

func sameSession(t *testing.T, got, want tollgate.Session) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || !sameTime(got.CreatedAt, want.CreatedAt) ||
		!sameTime(got.ExpiresAt, want.ExpiresAt) || !sameTime(got.RevokedAt, want.RevokedAt) {
		t.Fatalf("session = %+v, want %+v", got, want)
	}
}
