package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/tollgate-ws/tollgate/internal/migrations"
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

// migration is one embedded schema step.
type migration = migrations.Migration

// loadMigrations reads migrations/*.sql from fsys (see migrations.Load).
func loadMigrations(fsys fs.FS) ([]migration, error) { return migrations.Load(fsys) }

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
	latest := migs[len(migs)-1].Version
	current, err := db.schemaVersion(ctx, db.writer)
	if err != nil {
		return err
	}
	if current > latest {
		return fmt.Errorf("sqlite: migrate: database at version %d, this build knows up to %d: %w", current, latest, ErrSchemaTooNew)
	}
	for _, m := range migs {
		if m.Version <= current {
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
		return db.fail("migrate "+m.Name, err)
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return db.fail("migrate "+m.Name, err)
	}
	if current >= m.Version {
		return nil
	}
	if current != m.Version-1 {
		return fmt.Errorf("sqlite: migrate %s: database at version %d", m.Name, current)
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return db.fail("migrate "+m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		m.Version, m.Name, millis(db.now())); err != nil {
		return db.fail("migrate "+m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return db.fail("migrate "+m.Name, err)
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
