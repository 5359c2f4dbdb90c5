package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

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

// migrateLockClass is the first key of the advisory lock that serializes
// migrations ("tgmi"); the second is a hash of the schema being migrated, so
// that databases (or test schemas) migrate independently.
const migrateLockClass = 0x74676d69

// migration is one embedded schema step.
type migration = migrations.Migration

// loadMigrations reads migrations/*.sql from fsys (see migrations.Load).
func loadMigrations(fsys fs.FS) ([]migration, error) { return migrations.Load(fsys) }

// migrate applies the migrations newer than the schema's version on one
// connection that holds a session-level advisory lock for the whole run, so
// that nodes starting at once wait for each other and apply every migration
// exactly once. Each migration runs in its own transaction. The lock is
// released at the end, or with the connection if the process dies.
func (db *DB) migrate(ctx context.Context, migs []migration) (err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return db.fail("open: connect", err)
	}
	defer conn.Release()

	var schema *string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return db.fail("migrate", err)
	}
	if schema == nil {
		return errors.New("postgres: migrate: no schema of the search_path exists; create it first")
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, hashtext($2))", migrateLockClass, *schema); err != nil {
		return db.fail("migrate: take the migration lock", err)
	}
	defer func() {
		// Unlock even when ctx has ended; if that fails, drop the
		// connection, which drops the lock with the session.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1, hashtext($2))", migrateLockClass, *schema); uerr != nil {
			conn.Conn().Close(uctx)
			if err == nil {
				err = db.fail("migrate: release the migration lock", uerr)
			}
		}
	}()

	const create = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer     NOT NULL PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL
)`
	if _, err := conn.Exec(ctx, create); err != nil {
		return db.fail("migrate", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return db.fail("migrate: schema version", err)
	}
	latest := migs[len(migs)-1].Version
	if current > latest {
		return fmt.Errorf("postgres: migrate: schema %q at version %d, this build knows up to %d: %w", *schema, current, latest, ErrSchemaTooNew)
	}
	for _, m := range migs {
		if m.Version <= current {
			continue
		}
		if err := db.apply(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

// apply runs one migration and records it, in one transaction.
func (db *DB) apply(ctx context.Context, conn *pgxpool.Conn, m migration) error {
	op := "migrate " + m.Name
	tx, err := conn.Begin(ctx)
	if err != nil {
		return db.fail(op, err)
	}
	defer rollback(ctx, tx)
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return db.fail(op, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
		m.Version, m.Name, db.now()); err != nil {
		return db.fail(op, err)
	}
	return db.fail(op, tx.Commit(ctx))
}
