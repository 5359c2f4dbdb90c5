package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/tollgate-ws/tollgate"
)

var _ tollgate.Blocklist = (*DB)(nil)

const blockColumns = "kind, target, name, reason, created_at, until"

// Block adds or replaces the block of (b.Kind, b.Target). Expired blocks are
// deleted by PurgeExpired. Safe for concurrent use.
func (db *DB) Block(ctx context.Context, b tollgate.Block) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	_, err := db.pool.Exec(ctx, `INSERT INTO blocks (`+blockColumns+`) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (kind, target) DO UPDATE SET name = $3, reason = $4, created_at = $5, until = $6`,
		string(b.Kind), b.Target, b.Name, b.Reason, b.CreatedAt, b.Until)
	return db.fail("block", err)
}

// Unblock removes the block of (kind, target) and reports whether one was in
// force. Safe for concurrent use.
func (db *DB) Unblock(ctx context.Context, kind tollgate.BlockKind, target string) (bool, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var until time.Time
	err := db.pool.QueryRow(ctx, "DELETE FROM blocks WHERE kind = $1 AND target = $2 RETURNING until",
		string(kind), target).Scan(&until)
	if err != nil {
		if err = db.fail("unblock", err); isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	return time.Now().Before(until), nil
}

// Blocked returns the block of (kind, target) in force at now, if any.
func (db *DB) Blocked(ctx context.Context, kind tollgate.BlockKind, target string, now time.Time) (tollgate.Block, bool, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	b, err := scanBlock(db.pool.QueryRow(ctx, "SELECT "+blockColumns+" FROM blocks WHERE kind = $1 AND target = $2 AND until > $3",
		string(kind), target, now))
	if err != nil {
		if err = db.fail("blocked", err); isNotFound(err) {
			return tollgate.Block{}, false, nil
		}
		return tollgate.Block{}, false, err
	}
	return b, true, nil
}

// List returns the blocks in force at now, by kind and target.
func (db *DB) List(ctx context.Context, now time.Time) ([]tollgate.Block, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+blockColumns+" FROM blocks WHERE until > $1 ORDER BY kind, target", now)
	if err != nil {
		return nil, db.fail("list blocks", err)
	}
	defer rows.Close()
	var out []tollgate.Block
	for rows.Next() {
		b, err := scanBlock(rows)
		if err != nil {
			return nil, db.fail("list blocks", err)
		}
		out = append(out, b)
	}
	return out, db.fail("list blocks", rows.Err())
}

type rowScanner interface{ Scan(dest ...any) error }

func scanBlock(row rowScanner) (tollgate.Block, error) {
	var b tollgate.Block
	var kind string
	err := row.Scan(&kind, &b.Target, &b.Name, &b.Reason, &b.CreatedAt, &b.Until)
	b.Kind, b.CreatedAt, b.Until = tollgate.BlockKind(kind), utc(b.CreatedAt), utc(b.Until)
	return b, err
}

func isNotFound(err error) bool { return errors.Is(err, tollgate.ErrNotFound) }
