package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// migrationFiles holds the schema migrations, one file per version:
// migrations/NNNN_name.sql with NNNN = 1, 2, 3… Each is applied once, in its
// own transaction, and recorded in schema_migrations. Never edit a file that
// has been released: add the next one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrSchemaTooNew is wrapped by [Open] when the database was migrated by a
// newer build of tollgate than this one: running an older build on it could
// corrupt data that build does not know about.
var ErrSchemaTooNew = errors.New("database schema is newer than this build of tollgate")

type migration struct {
	version int
	name    string // file name, e.g. 0001_init.sql
	sql     string
}

// loadMigrations reads migrations/*.sql from fsys. Versions must run 1..N
// without gaps or repeats, so that a mistake in naming fails every test.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions run 1..N without gaps or repeats)", m.name, m.version, i+1)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	return out, nil
}

// migrate applies the migrations newer than the database's version, each in
// its own IMMEDIATE transaction on the writer. The version is read again
// inside each transaction, so that two processes opening one new database at
// once apply every migration exactly once.
func (db *DB) migrate(ctx context.Context, migs []migration) error {
	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
) STRICT`
	if _, err := db.writer.ExecContext(ctx, create); err != nil {
		return db.fail("migrate", err)
	}
	latest := migs[len(migs)-1].version
	current, err := db.schemaVersion(ctx, db.writer)
	if err != nil {
		return err
	}
	if current > latest {
		return fmt.Errorf("sqlite: migrate: database at version %d, this build knows up to %d: %w", current, latest, ErrSchemaTooNew)
	}
	for _, m := range migs {
		if m.version <= current {
			continue
		}
		if err := db.apply(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// apply runs one migration in its own transaction, unless another process
// has applied it meanwhile.
func (db *DB) apply(ctx context.Context, m migration) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return db.fail("migrate "+m.name, err)
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return db.fail("migrate "+m.name, err)
	}
	if current >= m.version {
		return nil
	}
	if current != m.version-1 {
		return fmt.Errorf("sqlite: migrate %s: database at version %d", m.name, current)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return db.fail("migrate "+m.name, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		m.version, m.name, millis(db.now())); err != nil {
		return db.fail("migrate "+m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return db.fail("migrate "+m.name, err)
	}
	return nil
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaVersion returns the newest applied migration, 0 for a new database.
func (db *DB) schemaVersion(ctx context.Context, q querier) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
		return 0, db.fail("schema version", err)
	}
	return v, nil
}
