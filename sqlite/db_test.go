package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tollgate-ws/tollgate"
)

func openAt(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRestartKeepsDataAndSkipsMigrations(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "tollgate.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_767_225_600_123).UTC()
	if err := db.CreateUser(ctx, tollgate.User{ID: "u-1", Name: "Alice", PasswordHash: "h", CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSession(ctx, tollgate.Session{ID: "s-1", UserID: "u-1", CreatedAt: at, ExpiresAt: at.Add(time.Hour)},
		tollgate.RefreshToken{Hash: "r-1", ExpiresAt: at.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RotateRefresh(ctx, "r-1", tollgate.RefreshToken{Hash: "r-2", ExpiresAt: at.Add(time.Hour)}, at); err != nil {
		t.Fatal(err)
	}
	stored, _, err := db.Append(ctx, tollgate.Message{Room: "general", UserID: "u-1", UserName: "Alice", Text: "hi", ClientID: "c-1", TS: at})
	if err != nil {
		t.Fatal(err)
	}
	before := appliedMigrations(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the WAL is still there after Close (checkpoint on close): %v", err)
	}

	db = openAt(t, path)
	if after := appliedMigrations(t, db); after != before {
		t.Fatalf("schema_migrations changed on reopen:\nbefore %s\nafter  %s", before, after)
	}
	u, err := db.UserByName(ctx, "alice")
	if err != nil || u.ID != "u-1" || !u.CreatedAt.Equal(at) {
		t.Fatalf("user after reopen: %+v, %v", u, err)
	}
	if _, err := db.RotateRefresh(ctx, "r-1", tollgate.RefreshToken{Hash: "r-3", ExpiresAt: at.Add(time.Hour)}, at); !errors.Is(err, tollgate.ErrReused) {
		t.Fatalf("spent token after reopen: %v, want ErrReused", err)
	}
	h, err := db.History(ctx, "general", 0, 10)
	if err != nil || len(h) != 1 || h[0] != stored {
		t.Fatalf("history after reopen: %+v, %v; want %+v", h, err, stored)
	}
	m, dup, err := db.Append(ctx, tollgate.Message{Room: "general", UserID: "u-1", Text: "hi", ClientID: "c-1", TS: at})
	if err != nil || !dup || m.ID != 1 {
		t.Fatalf("retry after reopen: %+v dup %v %v", m, dup, err)
	}
	m, _, err = db.Append(ctx, tollgate.Message{Room: "general", UserID: "u-1", Text: "again", TS: at})
	if err != nil || m.ID != 2 {
		t.Fatalf("append after reopen: id %d, %v; want 2", m.ID, err)
	}
}

// appliedMigrations renders schema_migrations.
func appliedMigrations(t *testing.T, db *DB) string {
	t.Helper()
	rows, err := db.reader.QueryContext(t.Context(), "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	n := 0
	for rows.Next() {
		var v, at int64
		var name string
		if err := rows.Scan(&v, &name, &at); err != nil {
			t.Fatal(err)
		}
		n++
		b.WriteString(name + "@" + time.UnixMilli(at).UTC().Format(time.RFC3339Nano) + " ")
	}
	migs, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(migs) {
		t.Fatalf("%d migrations applied, want %d", n, len(migs))
	}
	return b.String()
}

func TestRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tollgate.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.ExecContext(t.Context(),
		"INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(t.Context(), path)
	if !errors.Is(err, ErrSchemaTooNew) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaTooNew", err)
	}
}

func TestFileModes(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tollgate.db")
	db := openAt(t, path)
	if _, _, err := db.Append(t.Context(), tollgate.Message{Room: "r", Text: "x"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode&0o077 != 0 {
			t.Errorf("%s: mode %v, want no group or other access", filepath.Base(p), mode)
		}
	}
}

func TestOpenExistingFileKeepsItsMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tollgate.db")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	openAt(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode of an existing file changed to %v", fi.Mode().Perm())
	}
}

func TestOpenRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct{ name, path string }{
		{"empty", ""},
		{"memory", ":memory:"},
		{"uri", "file:x.db?mode=memory"},
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "x.db")},
		{"a directory", dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := Open(t.Context(), tc.path)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
		})
	}
	// Not a database: SQLite's error, marked unavailable.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(t.Context(), junk); !errors.Is(err, tollgate.ErrUnavailable) {
		if db != nil {
			db.Close()
		}
		t.Errorf("Open of a junk file: %v, want ErrUnavailable", err)
	}
}

func TestPathWithURISpecialCharacters(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data #1 ?x=y %41")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "tollgate.db")
	openAt(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not where it was asked to be: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "tollgate.db") {
			t.Errorf("stray file %q", e.Name())
		}
	}
}

// Every pooled connection gets the pragmas (they are in the DSN, not run once).
func TestPragmasOnEveryConnection(t *testing.T) {
	t.Parallel()
	db := openAt(t, filepath.Join(t.TempDir(), "tollgate.db"))
	ctx := t.Context()
	check := func(name string, c *sql.Conn, want map[string]string) {
		t.Helper()
		for pragma, w := range want {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if !strings.EqualFold(got, w) {
				t.Errorf("%s: PRAGMA %s = %s, want %s", name, pragma, got, w)
			}
		}
	}
	// Hold several reader connections at once so that they are distinct.
	var conns []*sql.Conn
	for range 4 {
		c, err := db.reader.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		check("reader", c, map[string]string{"busy_timeout": "5000", "foreign_keys": "1", "query_only": "1", "journal_mode": "wal"})
		c.Close()
	}
	w, err := db.writer.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// synchronous: 2 = FULL.
	check("writer", w, map[string]string{"busy_timeout": "5000", "foreign_keys": "1", "query_only": "0", "journal_mode": "wal", "synchronous": "2"})
	w.Close()
	if got := db.writer.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool: %d connections, want 1", got)
	}
}

func TestReadersCannotWrite(t *testing.T) {
	t.Parallel()
	db := openAt(t, filepath.Join(t.TempDir(), "tollgate.db"))
	if _, err := db.reader.ExecContext(t.Context(), "INSERT INTO rooms (name, last_id) VALUES ('x', 1)"); err == nil {
		t.Fatal("a reader connection wrote")
	}
}

// Two processes (here: two DBs) opening one new file at once apply each
// migration once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tollgate.db")
	const n = 4
	dbs := make([]*DB, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { dbs[i], errs[i] = Open(t.Context(), path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		defer dbs[i].Close()
	}
	appliedMigrations(t, dbs[0])
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	for _, tc := range []struct {
		name  string
		files fstest.MapFS
		want  []int // nil: an error
	}{
		{"ordered", fstest.MapFS{"migrations/0002_b.sql": file("b"), "migrations/0001_a.sql": file("a")}, []int{1, 2}},
		{"none", fstest.MapFS{}, nil},
		{"gap", fstest.MapFS{"migrations/0001_a.sql": file("a"), "migrations/0003_c.sql": file("c")}, nil},
		{"repeat", fstest.MapFS{"migrations/0001_a.sql": file("a"), "migrations/001_b.sql": file("b")}, nil},
		{"no number", fstest.MapFS{"migrations/init.sql": file("a")}, nil},
		{"zero", fstest.MapFS{"migrations/0000_a.sql": file("a")}, nil},
		{"starts at 2", fstest.MapFS{"migrations/0002_a.sql": file("a")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			migs, err := loadMigrations(tc.files)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("loadMigrations succeeded: %+v", migs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range migs {
				if m.Version != tc.want[i] {
					t.Errorf("migration %d: version %d, want %d", i, m.Version, tc.want[i])
				}
			}
		})
	}
	if _, err := loadMigrations(migrationFiles); err != nil {
		t.Fatalf("the embedded migrations: %v", err)
	}
}

func TestErrorsAfterClose(t *testing.T) {
	t.Parallel()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := t.Context()
	for name, err := range map[string]error{
		"Ping":       db.Ping(ctx),
		"CreateUser": db.CreateUser(ctx, tollgate.User{ID: "u", Name: "u"}),
		"History":    func() error { _, err := db.History(ctx, "r", 0, 1); return err }(),
		"Append":     func() error { _, _, err := db.Append(ctx, tollgate.Message{Room: "r"}); return err }(),
	} {
		if !errors.Is(err, tollgate.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", name, err)
		}
	}
}

func TestDeadlineIsUnavailable(t *testing.T) {
	t.Parallel()
	db := openAt(t, filepath.Join(t.TempDir(), "tollgate.db"))
	// Hold the only writer connection, so that a write waits for it.
	conn, err := db.writer.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, _, err = db.Append(ctx, tollgate.Message{Room: "r", Text: "x"})
	if !errors.Is(err, tollgate.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append past its deadline: %v, want ErrUnavailable and DeadlineExceeded", err)
	}
	if tollgate.ErrorCode(err) != tollgate.CodeUnavailable {
		t.Errorf("ErrorCode = %q", tollgate.ErrorCode(err))
	}
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	db := openAt(t, filepath.Join(t.TempDir(), "tollgate.db"))
	ctx := t.Context()
	at := time.UnixMilli(1_767_225_600_000)
	// A session of an unknown user: the foreign key says the user is not found.
	err := db.CreateSession(ctx, tollgate.Session{ID: "s-1", UserID: "nobody", ExpiresAt: at},
		tollgate.RefreshToken{Hash: "r-1", ExpiresAt: at})
	if !errors.Is(err, tollgate.ErrNotFound) {
		t.Errorf("session of an unknown user: %v, want ErrNotFound", err)
	}
	if err := db.CreateUser(ctx, tollgate.User{ID: "u-1", Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	err = db.CreateUser(ctx, tollgate.User{ID: "u-2", Name: "ALICE", PasswordHash: "$argon2id$secret-hash"})
	if !errors.Is(err, tollgate.ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	// Errors name ids, tables and columns, never values.
	for _, leaked := range []string{"ALICE", "alice", "secret-hash"} {
		if strings.Contains(err.Error(), leaked) {
			t.Errorf("error %q contains the value %q", err, leaked)
		}
	}
	// Empty hashes are refused.
	if err := db.CreateSession(ctx, tollgate.Session{ID: "s-2", UserID: "u-1", ExpiresAt: at}, tollgate.RefreshToken{}); err == nil {
		t.Error("CreateSession with an empty token hash succeeded")
	}
}

func TestPurgeExpired(t *testing.T) {
	t.Parallel()
	db := openAt(t, filepath.Join(t.TempDir(), "tollgate.db"))
	ctx := t.Context()
	t0 := time.UnixMilli(1_767_225_600_000).UTC()
	if err := db.CreateUser(ctx, tollgate.User{ID: "u-1", Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	// s-old ended at t0; s-new lives on, with a spent token that expired at t0.
	for _, s := range []struct {
		id      string
		expires time.Time
	}{{"s-old", t0}, {"s-new", t0.Add(time.Hour)}} {
		if err := db.CreateSession(ctx, tollgate.Session{ID: s.id, UserID: "u-1", ExpiresAt: s.expires},
			tollgate.RefreshToken{Hash: "r-" + s.id, ExpiresAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.RotateRefresh(ctx, "r-s-new", tollgate.RefreshToken{Hash: "r-s-new-2", ExpiresAt: t0.Add(time.Hour)}, t0.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := db.PurgeExpired(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 { // r-s-old, r-s-new (spent, expired), s-old
		t.Errorf("PurgeExpired = %d, want 3", n)
	}
	if _, err := db.Session(ctx, "s-old"); !errors.Is(err, tollgate.ErrNotFound) {
		t.Errorf("expired session: %v", err)
	}
	if _, err := db.RotateRefresh(ctx, "r-s-new-2", tollgate.RefreshToken{Hash: "r-s-new-3", ExpiresAt: t0.Add(time.Hour)}, t0); err != nil {
		t.Errorf("the live token after a purge: %v", err)
	}
	if n, err := db.PurgeExpired(ctx, t0); err != nil || n != 0 {
		t.Errorf("second PurgeExpired = %d, %v", n, err)
	}
}

func TestChunks(t *testing.T) {
	t.Parallel()
	many := make([]string, 1001)
	for i := range many {
		many[i] = string(rune('a'+i%26)) + strings.Repeat("x", i/26)
	}
	for _, tc := range []struct {
		name  string
		ids   []string
		sizes []int
	}{
		{"nil", nil, nil},
		{"duplicates", []string{"a", "a", "b"}, []int{2}},
		{"1001", many, []int{500, 500, 1}},
		{"1001 twice", append(append([]string{}, many...), many...), []int{500, 500, 1}},
	} {
		got := chunks(tc.ids)
		if len(got) != len(tc.sizes) {
			t.Fatalf("%s: %d chunks, want %d", tc.name, len(got), len(tc.sizes))
		}
		for i, c := range got {
			if len(c) != tc.sizes[i] {
				t.Errorf("%s: chunk %d has %d ids, want %d", tc.name, i, len(c), tc.sizes[i])
			}
		}
	}
	if p := placeholders(3); p != "?,?,?" {
		t.Errorf("placeholders(3) = %q", p)
	}
}
