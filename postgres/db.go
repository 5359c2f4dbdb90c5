package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate-ws/tollgate"
)

var (
	_ tollgate.UserStore    = (*DB)(nil)
	_ tollgate.SessionStore = (*DB)(nil)
	_ tollgate.MessageStore = (*DB)(nil)
)

// DefaultTimeout bounds a call whose context has no deadline.
const DefaultTimeout = 10 * time.Second

// OpenTimeout bounds Open (connecting, waiting for the migration lock,
// migrating) when its context has no deadline.
const OpenTimeout = time.Minute

// connectTimeout is the dial timeout of pool connections when the URL sets
// none (connect_timeout).
const connectTimeout = 5 * time.Second

// DB is a pool of connections to one PostgreSQL database holding users,
// sessions and messages. It implements [tollgate.UserStore],
// [tollgate.SessionStore] and [tollgate.MessageStore], and is safe for
// concurrent use, also by several processes on one database.
type DB struct {
	// Now is the clock that stamps applied migrations and messages appended
	// with a zero TS; nil means time.Now. Set it right after Open, before
	// other use.
	Now func() time.Time

	pool   *pgxpool.Pool
	closed atomic.Bool
}

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value connection string, with pgx's and pgxpool's parameters, e.g.
// pool_max_conns, connect_timeout, sslmode, search_path) and brings its
// schema up to date. It refuses a database whose schema is newer than this
// build knows ([ErrSchemaTooNew]). An unreachable server gives an error
// wrapping [tollgate.ErrUnavailable]. ctx bounds Open only (or [OpenTimeout]
// when it has no deadline). No error of Open or of the DB quotes the URL or
// its password. Close the DB when done.
func Open(ctx context.Context, url string) (*DB, error) {
	ctx, cancel := boundTo(ctx, OpenTimeout)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx redacts passwords from its parse errors on a best-effort
		// basis only: report none of the input.
		return nil, errors.New("postgres: open: the connection URL cannot be parsed")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, errors.New("postgres: open: invalid pool configuration")
	}
	db := &DB{pool: pool}
	migs, err := loadMigrations(migrationFiles)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := db.migrate(ctx, migs); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Ping reports whether the database answers and holds tollgate's schema,
// within ctx (or [DefaultTimeout]). It returns nil or an error wrapping
// [tollgate.ErrUnavailable]; /readyz uses it. Safe for concurrent use.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	var n int64
	if err := db.pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		return db.fail("ping", unavailable(err))
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
// Every call after Close fails with an error wrapping
// [tollgate.ErrUnavailable]. Close is idempotent and safe for concurrent use.
func (db *DB) Close() error {
	if db.closed.Swap(true) {
		return nil
	}
	db.pool.Close()
	return nil
}

func (db *DB) now() time.Time {
	if db.Now != nil {
		return db.Now()
	}
	return time.Now()
}

// bound returns ctx, with DefaultTimeout when it has no deadline.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	return boundTo(ctx, DefaultTimeout)
}

func boundTo(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// SQLSTATE codes and classes the store branches on.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
)

// unavailableStates are the SQLSTATEs (and two-character classes) that mean
// the database cannot serve now rather than that the request was wrong.
var unavailableStates = []string{
	"08",    // connection exception
	"53",    // insufficient resources (disk full, out of memory, too many connections)
	"57P",   // operator intervention: admin or crash shutdown, cannot connect now
	"57014", // query canceled (statement_timeout)
	"58",    // system error (I/O)
	"40001", // serialization failure
	"40P01", // deadlock detected
	"55P03", // lock not available (lock_timeout)
	"25006", // read-only transaction: a standby, e.g. during a failover
	"3D000", // invalid catalog name: the database does not exist
	"28",    // invalid authorization: wrong password, no pg_hba entry
}

// fail wraps err for the operation op and maps it onto the root sentinels:
// no rows and foreign-key violations (a parent row is missing) become
// ErrNotFound, uniqueness violations ErrConflict, and a database that cannot
// be reached or used ErrUnavailable. Server messages name constraints and
// tables, never values (the values are in Detail, which pgx does not print).
func (db *DB) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: %s: %w", op, tollgate.ErrNotFound)
	}
	if errors.Is(err, tollgate.ErrNotFound) || errors.Is(err, tollgate.ErrConflict) ||
		errors.Is(err, tollgate.ErrUnavailable) || errors.Is(err, tollgate.ErrReused) {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == uniqueViolation:
			return fmt.Errorf("postgres: %s: %w: %w", op, tollgate.ErrConflict, err)
		case pe.Code == foreignKeyViolation:
			return fmt.Errorf("postgres: %s: %w: %w", op, tollgate.ErrNotFound, err)
		case unavailableState(pe.Code):
			return fmt.Errorf("postgres: %s: %w: %w", op, tollgate.ErrUnavailable, err)
		}
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	if db.closed.Load() || isConnectionError(err) {
		return fmt.Errorf("postgres: %s: %w: %w", op, tollgate.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

func unavailableState(code string) bool {
	for _, s := range unavailableStates {
		if strings.HasPrefix(code, s) {
			return true
		}
	}
	return false
}

// isConnectionError reports whether err (not a server error) comes from the
// connection or the caller's deadline rather than from the request.
func isConnectionError(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		strings.Contains(err.Error(), "closed pool") || strings.Contains(err.Error(), "conn closed")
}

// unavailable marks any error as ErrUnavailable (for Ping, where every
// failure means "not ready").
func unavailable(err error) error {
	if errors.Is(err, tollgate.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", tollgate.ErrUnavailable, err)
}

// rollbackTimeout bounds the ROLLBACK sent when a transaction fails, even
// after ctx has ended.
const rollbackTimeout = 5 * time.Second

// rollback ends tx if it is still open (after Commit it does nothing),
// within rollbackTimeout of ctx's values but not of its cancellation.
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// Times go in as they are (PostgreSQL keeps microseconds) and come out in
// UTC; optional times are NULL when zero.

func utc(t time.Time) time.Time { return t.UTC() }

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func fromNullTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
