package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tollgate-ws/tollgate"
)

var (
	_ tollgate.UserStore    = (*DB)(nil)
	_ tollgate.SessionStore = (*DB)(nil)
	_ tollgate.MessageStore = (*DB)(nil)
)

// BusyTimeout is how long a connection waits for a lock held by another
// connection or process (say, `tollgate user add` beside a running server)
// before failing with SQLITE_BUSY, which the store reports as
// [tollgate.ErrUnavailable].
const BusyTimeout = 5 * time.Second

// Synchronous is the synchronous pragma of the writer connection: FULL. The
// contract says a message is durable when Append returns (the ack follows
// the store), and a refresh token once spent must stay spent across a power
// cut, or a stolen one could be replayed. In WAL mode FULL fsyncs the WAL on
// every commit; NORMAL fsyncs only at checkpoints, so the last commits before
// a power loss (not a process crash) can vanish.
//
// Measured on a 2-core VM (ext4 on a virtio disk), 100-byte texts, with
// go test -run '^$' -bench Append -benchtime 1s ./sqlite/:
// one room FULL 346 µs/op, NORMAL 70 µs/op; 1,000 rooms FULL 480 µs/op,
// NORMAL 115 µs/op. FULL costs about 5x, an fsync per commit, and still
// stores ~2,000-2,900 messages a second: ~17,000 users publishing at the
// contract's default limit of 10 a minute. Reconsider (group commit in the
// hub, or NORMAL) only if a node must store more than that.
const Synchronous = "FULL"

// DB is a SQLite database holding users, sessions and messages. It
// implements [tollgate.UserStore], [tollgate.SessionStore] and
// [tollgate.MessageStore], and is safe for concurrent use.
//
// It keeps two connection pools on the same file. Every write goes through a
// pool of exactly one connection, whose transactions begin IMMEDIATE: SQLite
// admits one writer at a time anyway, and queueing writers in Go (on the
// pool) instead of in SQLite means they never meet SQLITE_BUSY among
// themselves — two deferred transactions on separate connections that both
// read and then write deadlock, and one of them fails at once with
// SQLITE_BUSY no matter the busy_timeout. It also makes every
// read-check-write transaction (duplicate check and id bump in Append,
// rotation in RotateRefresh) serial. Reads go through a second pool of
// several query_only connections; in WAL mode they run concurrently with the
// writer and with each other, and see every transaction committed before
// they start.
type DB struct {
	// Now is the clock that stamps applied migrations and messages appended
	// with a zero TS; nil means time.Now. Set it right after Open, before
	// other use.
	Now func() time.Time

	path   string
	writer *sql.DB // one connection: every write
	reader *sql.DB // query_only connections: reads
	closed atomic.Bool
}

// options are what tests and benchmarks may change in Open.
type options struct {
	synchronous string // pragma synchronous: FULL or NORMAL
}

// Open opens the SQLite database at path, creating the file with mode 0600 if
// it does not exist (its directory must exist), and brings its schema up to
// date. It refuses a database whose schema is newer than this build knows
// ([ErrSchemaTooNew]). path must name a file: an in-memory database would
// not be shared by the two connection pools. The returned DB is safe for
// concurrent use; Close it when done.
func Open(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, options{synchronous: Synchronous})
}

func open(ctx context.Context, path string, o options) (*DB, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: open: %q is not a file path", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// SQLite would create the file 0644 (less the umask); users and sessions
	// are nobody else's business. The -wal and -shm files SQLite creates
	// later copy the database file's mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("sqlite: open: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}

	busy := "busy_timeout(" + strconv.FormatInt(BusyTimeout.Milliseconds(), 10) + ")"
	writer, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {busy, "foreign_keys(1)", "journal_mode(WAL)", "synchronous(" + o.synchronous + ")"},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	readers := max(4, runtime.GOMAXPROCS(0))
	reader, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_pragma": {busy, "foreign_keys(1)", "query_only(1)"},
	}))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	reader.SetConnMaxLifetime(0)
	reader.SetConnMaxIdleTime(0)

	db := &DB{path: abs, writer: writer, reader: reader}
	if err := db.init(ctx); err != nil {
		reader.Close()
		writer.Close()
		return nil, err
	}
	return db, nil
}

// dsn returns the modernc.org/sqlite data source name for the file at the
// absolute path abs: a file: URI (so that '?' or '%' in the path are
// escaped, not parsed) whose _pragma parameters the driver runs on every new
// connection of the pool.
func dsn(abs string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}

// init checks the connection settings and migrates the schema.
func (db *DB) init(ctx context.Context) error {
	var mode string
	if err := db.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return db.fail("open", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open: journal_mode is %q, want wal (does the file system support it?)", mode)
	}
	migs, err := loadMigrations(migrationFiles)
	if err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	if err := db.migrate(ctx, migs); err != nil {
		return err
	}
	// The readers would fail their first query anyway; failing Open instead
	// reports a broken setup where it happens.
	if err := db.reader.PingContext(ctx); err != nil {
		return db.fail("open readers", err)
	}
	return nil
}

// Path returns the absolute path of the database file. Safe for concurrent
// use.
func (db *DB) Path() string { return db.path }

// Ping reports whether the database can be read and written: it queries the
// schema through the reader pool and waits for the writer connection, each
// within ctx. It returns nil or an error wrapping [tollgate.ErrUnavailable];
// /readyz uses it. Safe for concurrent use.
func (db *DB) Ping(ctx context.Context) error {
	var v int
	if err := db.reader.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&v); err != nil {
		return db.fail("ping", unavailable(err))
	}
	if err := db.writer.PingContext(ctx); err != nil {
		return db.fail("ping", unavailable(err))
	}
	return nil
}

// Close lets SQLite update its query planner statistics (PRAGMA optimize)
// and closes both pools; the last connection to close checkpoints the WAL
// into the database file. Calls in flight may fail with
// [tollgate.ErrUnavailable]; every call after Close does. Close is
// idempotent and safe for concurrent use.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, optErr := db.writer.ExecContext(ctx, "PRAGMA optimize")
	cancel()
	if optErr != nil {
		optErr = fmt.Errorf("sqlite: optimize: %w", optErr)
	}
	return errors.Join(optErr, db.reader.Close(), db.writer.Close())
}

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// fail wraps err for the operation op and maps it onto the root sentinels:
// no rows and foreign-key violations (a parent row is missing) become
// ErrNotFound, uniqueness violations ErrConflict, and a database that is
// busy, broken, full, closed or too slow for ctx ErrUnavailable. The
// driver's messages name tables and columns, never values.
func (db *DB) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: %s: %w", op, tollgate.ErrNotFound)
	}
	if errors.Is(err, tollgate.ErrNotFound) || errors.Is(err, tollgate.ErrConflict) ||
		errors.Is(err, tollgate.ErrUnavailable) || errors.Is(err, tollgate.ErrReused) {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch code := se.Code(); {
		case code == sqlite3.SQLITE_CONSTRAINT_UNIQUE, code == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("sqlite: %s: %w: %w", op, tollgate.ErrConflict, err)
		case code == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("sqlite: %s: %w: %w", op, tollgate.ErrNotFound, err)
		case isUnavailableCode(code & 0xff):
			return fmt.Errorf("sqlite: %s: %w: %w", op, tollgate.ErrUnavailable, err)
		}
	}
	if db.closed.Load() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("sqlite: %s: %w: %w", op, tollgate.ErrUnavailable, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// isUnavailableCode reports whether a primary SQLite result code means the
// database cannot be used right now, rather than that the request was wrong.
func isUnavailableCode(primary int) bool {
	switch primary {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_INTERRUPT:
		return true
	}
	return false
}

// unavailable marks any error as ErrUnavailable (for Ping, where every
// failure means "not ready").
func unavailable(err error) error {
	if errors.Is(err, tollgate.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", tollgate.ErrUnavailable, err)
}

// placeholders returns "?,?,…,?" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// maxIDsPerQuery bounds the ids bound into one IN (…) list: far below
// SQLite's limit on host parameters (32766), small enough to plan quickly.
const maxIDsPerQuery = 500

// chunks splits the distinct ids into groups of at most maxIDsPerQuery.
func chunks(ids []string) [][]any {
	seen := make(map[string]struct{}, len(ids))
	var out [][]any
	var cur []any
	for _, id := range ids {
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		if len(cur) == maxIDsPerQuery {
			out = append(out, cur)
			cur = nil
		}
		cur = append(cur, id)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// Times are stored as unix milliseconds, UTC; a zero time.Time round-trips
// (as year 1), and optional times are NULL when zero.

func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func nullMillis(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromNullMillis(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMillis(n.Int64)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
