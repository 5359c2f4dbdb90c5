package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/internal/storetest"
	"github.com/tollgate-ws/tollgate/internal/testenv"
)

// newSchema is a schema of its own for one test (see testenv.PostgresSchema).
func newSchema(t testing.TB) string { return testenv.PostgresSchema(t) }

// openURL opens the database at rawURL; it is closed when the test ends.
func openURL(t testing.TB, rawURL string) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := Open(ctx, rawURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

// openTemp opens a database in a new, empty schema.
func openTemp(t testing.TB) *DB { return openURL(t, newSchema(t)) }

func TestUsers(t *testing.T) {
	t.Parallel()
	storetest.Users(t, func(t *testing.T) tollgate.UserStore { return openTemp(t) })
}

func TestSessions(t *testing.T) {
	t.Parallel()
	storetest.Sessions(t, func(t *testing.T) (tollgate.UserStore, tollgate.SessionStore) {
		db := openTemp(t)
		return db, db
	})
}

func TestMessages(t *testing.T) {
	t.Parallel()
	storetest.Messages(t, func(t *testing.T) tollgate.MessageStore { return openTemp(t) })
}

func TestBlocklist(t *testing.T) {
	storetest.Blocklist(t, func(t *testing.T) tollgate.Blocklist { return openTemp(t) })
}

// TestAppendAcrossNodes appends to one room from several DB handles (each
// its own pool, as separate nodes would be), concurrently: the ids are
// exactly 1..N, and each handle saw its own ids increase.
func TestAppendAcrossNodes(t *testing.T) {
	t.Parallel()
	u := newSchema(t)
	const nodes, goroutines, each = 4, 6, 25
	dbs := make([]*DB, nodes)
	for i := range dbs {
		dbs[i] = openURL(t, u)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var all []int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range nodes * goroutines {
		wg.Go(func() {
			<-start
			db := dbs[g%nodes]
			var last int64
			for i := range each {
				// Every other message carries a client id, as publishes from
				// the hub do.
				cid := ""
				if i%2 == 0 {
					cid = fmt.Sprintf("c-%d-%d", g, i)
				}
				m, dup, err := db.Append(ctx, tollgate.Message{Room: "busy", UserID: fmt.Sprintf("u-%d", g),
					UserName: "n", Text: "t", ClientID: cid, TS: time.Now()})
				if err != nil || dup {
					t.Errorf("Append: %v (duplicate %v)", err, dup)
					return
				}
				if m.ID <= last {
					t.Errorf("goroutine %d: id %d after %d", g, m.ID, last)
				}
				last = m.ID
				mu.Lock()
				all = append(all, m.ID)
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	const n = nodes * goroutines * each
	slices.Sort(all)
	if len(all) != n {
		t.Fatalf("%d appends succeeded, want %d", len(all), n)
	}
	for i, id := range all {
		if id != int64(i+1) {
			t.Fatalf("ids are not 1..%d: position %d holds %d", n, i, id)
		}
	}
	h, err := dbs[0].History(ctx, "busy", 0, tollgate.MaxHistoryLimit)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != tollgate.MaxHistoryLimit || h[len(h)-1].ID != int64(len(h)) {
		t.Fatalf("History: %d messages", len(h))
	}
	last, err := dbs[nodes-1].LastID(ctx, "busy")
	if err != nil || last != n {
		t.Fatalf("LastID = %d, %v; want %d", last, err, n)
	}
}

// TestConcurrentOpen opens one new schema from several processes' worth of
// pools at once: the advisory lock makes them migrate once.
func TestConcurrentOpen(t *testing.T) {
	t.Parallel()
	u := newSchema(t)
	const n = 6
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			dbs[i], errs[i] = Open(ctx, u)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		dbs[i].Close()
	}
	db := openURL(t, u)
	migs, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	var count, maxVersion int
	if err := db.pool.QueryRow(t.Context(), "SELECT count(*), max(version) FROM schema_migrations").Scan(&count, &maxVersion); err != nil {
		t.Fatal(err)
	}
	if count != len(migs) || maxVersion != len(migs) {
		t.Fatalf("schema_migrations: %d rows up to version %d, want %d", count, maxVersion, len(migs))
	}
}

func TestSchemaTooNew(t *testing.T) {
	t.Parallel()
	u := newSchema(t)
	db := openURL(t, u)
	if _, err := db.pool.Exec(t.Context(), "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future.sql', now())"); err != nil {
		t.Fatal(err)
	}
	again, err := Open(t.Context(), u)
	if err == nil {
		again.Close()
	}
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew", err)
	}
}

func TestMissingSchema(t *testing.T) {
	t.Parallel()
	u := testenv.WithSearchPath(t, testenv.Postgres(t), "tollgate_test_does_not_exist")
	db, err := Open(t.Context(), u)
	if err == nil {
		db.Close()
		t.Fatal("Open with a search_path naming no existing schema succeeded")
	}
}

// TestUnreachable: a server that does not answer gives ErrUnavailable, and
// neither that error nor a parse error shows the password.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	const secret = "s3cret-Pa55word"
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, url   string
		unavailable bool
	}{
		{"closed port", "postgres://user:" + secret + "@127.0.0.1:1/test?connect_timeout=2", true},
		{"closed port, keyword form", "host=127.0.0.1 port=1 user=u password=" + secret + " dbname=test", true},
		{"unparsable", "postgres://user:" + secret + "@127.0.0.1:x/test", false},
		{"password breaks the authority", "postgres://u:" + secret + "/x@127.0.0.1/test", false},
		{"bad parameter", "postgres://u:" + secret + "@127.0.0.1/test?sslmode=" + secret, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(ctx, tc.url)
			if err == nil {
				db.Close()
				t.Fatal("Open succeeded")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), secret) {
				t.Errorf("the error shows the password: %v", err)
			}
			if errors.Is(err, tollgate.ErrUnavailable) != tc.unavailable {
				t.Errorf("Open = %v; wrapping ErrUnavailable: %v, want %v", err, !tc.unavailable, tc.unavailable)
			}
		})
	}
}

// TestWrongPassword: the server refuses the login; the error is
// ErrUnavailable and does not show the password.
func TestWrongPassword(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(testenv.Postgres(t))
	if err != nil || u.Scheme == "" {
		t.Skip("needs a URL-form test database address")
	}
	const secret = "s3cret-Pa55word"
	u.User = url.UserPassword("tollgate_no_such_role", secret)
	db, err := Open(t.Context(), u.String())
	if err == nil {
		db.Close()
		t.Skip("the server accepted an unknown role (trust for everyone)")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the password: %v", err)
	}
	if !errors.Is(err, tollgate.ErrUnavailable) {
		t.Errorf("Open with a wrong role = %v, want ErrUnavailable", err)
	}
}

// TestClosed: calls after Close fail with ErrUnavailable.
func TestClosed(t *testing.T) {
	t.Parallel()
	u := newSchema(t)
	db, err := Open(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := t.Context()
	if err := db.Ping(ctx); !errors.Is(err, tollgate.ErrUnavailable) {
		t.Errorf("Ping after Close = %v", err)
	}
	if _, err := db.UserByID(ctx, "u-1"); !errors.Is(err, tollgate.ErrUnavailable) {
		t.Errorf("UserByID after Close = %v", err)
	}
	if _, _, err := db.Append(ctx, tollgate.Message{Room: "r", UserID: "u", Text: "t"}); !errors.Is(err, tollgate.ErrUnavailable) {
		t.Errorf("Append after Close = %v", err)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestPurgeExpired(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	ctx := t.Context()
	base := time.UnixMilli(1_767_225_600_000).UTC()
	if err := db.CreateUser(ctx, tollgate.User{ID: "u-1", Name: "alice", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	// s-old expires at base+1h; s-new lives a month, with one token spent
	// and expired at base+1h and one live.
	for _, s := range []struct {
		id, hash string
		exp      time.Time
	}{{"s-old", "h-old", base.Add(time.Hour)}, {"s-new", "h-1", base.Add(time.Hour)}} {
		sess := tollgate.Session{ID: s.id, UserID: "u-1", CreatedAt: base, ExpiresAt: base.Add(720 * time.Hour)}
		if s.id == "s-old" {
			sess.ExpiresAt = s.exp
		}
		if err := db.CreateSession(ctx, sess, tollgate.RefreshToken{Hash: s.hash, ExpiresAt: s.exp}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RotateRefresh(ctx, "h-1", tollgate.RefreshToken{Hash: "h-2", ExpiresAt: base.Add(720 * time.Hour)}, base); err != nil {
		t.Fatal(err)
	}
	n, err := db.PurgeExpired(ctx, base.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// h-old and h-1 (expired tokens), then s-old.
	if n != 3 {
		t.Errorf("PurgeExpired deleted %d rows, want 3", n)
	}
	if _, err := db.Session(ctx, "s-old"); !errors.Is(err, tollgate.ErrNotFound) {
		t.Errorf("expired session after purge: %v", err)
	}
	if _, err := db.RotateRefresh(ctx, "h-1", tollgate.RefreshToken{Hash: "h-3", ExpiresAt: base.Add(720 * time.Hour)}, base.Add(2*time.Hour)); !errors.Is(err, tollgate.ErrNotFound) {
		t.Errorf("purged spent token: %v, want ErrNotFound", err)
	}
	if _, err := db.RotateRefresh(ctx, "h-2", tollgate.RefreshToken{Hash: "h-3", ExpiresAt: base.Add(720 * time.Hour)}, base.Add(2*time.Hour)); err != nil {
		t.Errorf("live token after purge: %v", err)
	}
}

// TestZeroTS: a message without a time gets Now, with microsecond precision,
// and History returns exactly what Append returned.
func TestZeroTS(t *testing.T) {
	t.Parallel()
	db := openTemp(t)
	at := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.FixedZone("x", 3600))
	db.Now = func() time.Time { return at }
	m, _, err := db.Append(t.Context(), tollgate.Message{Room: "r", UserID: "u", Text: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if !m.TS.Equal(at.Truncate(time.Microsecond)) || m.TS.Location() != time.UTC {
		t.Fatalf("TS = %v, want %v in UTC", m.TS, at.Truncate(time.Microsecond))
	}
	h, err := db.History(t.Context(), "r", 0, 1)
	if err != nil || len(h) != 1 || h[0] != m {
		t.Fatalf("History = %+v, %v; want %+v", h, err, m)
	}
}
