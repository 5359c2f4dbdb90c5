package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-ws/tollgate"
)

// errEmptyHash refuses a refresh token without a hash: stored, it would match
// a caller that hashed nothing.
var errEmptyHash = errors.New("empty refresh token hash")

const sessionColumns = "id, user_id, created_at, expires_at, revoked_at"

func scanSession(row pgx.Row, extra ...any) (tollgate.Session, error) {
	var s tollgate.Session
	var revoked *time.Time
	err := row.Scan(append([]any{&s.ID, &s.UserID, &s.CreatedAt, &s.ExpiresAt, &revoked}, extra...)...)
	s.CreatedAt, s.ExpiresAt, s.RevokedAt = utc(s.CreatedAt), utc(s.ExpiresAt), fromNullTime(revoked)
	return s, err
}

// CreateSession stores s together with its first refresh token (which belongs
// to s whatever first.SessionID says), in one statement. It returns an error
// wrapping [tollgate.ErrConflict] when the session id or the token hash is
// taken, one wrapping [tollgate.ErrNotFound] when the user does not exist,
// and an error when first.Hash is empty. Safe for concurrent use.
func (db *DB) CreateSession(ctx context.Context, s tollgate.Session, first tollgate.RefreshToken) error {
	op := "create session " + s.ID
	if first.Hash == "" {
		return fmt.Errorf("postgres: %s: %w", op, errEmptyHash)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	_, err := db.pool.Exec(ctx, `WITH s AS (
	INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5) RETURNING id
)
INSERT INTO refresh_tokens (hash, session_id, expires_at) SELECT $6, id, $7 FROM s`,
		s.ID, s.UserID, s.CreatedAt, s.ExpiresAt, nullTime(s.RevokedAt), first.Hash, first.ExpiresAt)
	return db.fail(op, err)
}

// Session returns the session, revoked or expired ones included, or an error
// wrapping [tollgate.ErrNotFound]. Safe for concurrent use.
func (db *DB) Session(ctx context.Context, id string) (tollgate.Session, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	s, err := scanSession(db.pool.QueryRow(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = $1", id))
	if err != nil {
		return tollgate.Session{}, db.fail("session "+id, err)
	}
	return s, nil
}

// RevokeSession marks the session revoked at `at`. It is idempotent: a
// session already revoked keeps its first revocation time. It returns an
// error wrapping [tollgate.ErrNotFound] if there is no such session. Safe for
// concurrent use.
func (db *DB) RevokeSession(ctx context.Context, id string, at time.Time) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	// PostgreSQL counts a matched row as updated even when coalesce keeps
	// the old value, so RowsAffected tells "unknown" from "already revoked".
	tag, err := db.pool.Exec(ctx, "UPDATE sessions SET revoked_at = coalesce(revoked_at, $1) WHERE id = $2", at, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return db.fail("revoke session "+id, err)
}

// RevokeUserSessions revokes, at `at`, every session of the user that is live
// at `at` ([tollgate.Session.Live]) and returns their ids in ascending order;
// sessions already revoked or expired are left as they are. One statement:
// safe for concurrent use, and of concurrent calls each session is reported
// by one only.
func (db *DB) RevokeUserSessions(ctx context.Context, userID string, at time.Time) ([]string, error) {
	op := "revoke sessions of user " + userID
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx,
		"UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL AND expires_at > $1 RETURNING id",
		at, userID)
	if err != nil {
		return nil, db.fail(op, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, db.fail(op, err)
	}
	slices.Sort(ids)
	return ids, nil
}

// RotateRefresh spends the refresh token whose hash is oldHash and stores next
// for the same session (whatever next.SessionID says), in one transaction,
// and returns the session. In this order: an unknown token, or one expired at
// now, gives an error wrapping [tollgate.ErrNotFound]; a token already spent
// gives the session and an error wrapping [tollgate.ErrReused]; a next.Hash
// that is taken gives [tollgate.ErrConflict] and spends nothing. It checks
// neither the session's expiry nor its revocation: the caller does. Safe for
// concurrent use, across nodes too: the transaction locks the token's row
// (SELECT … FOR UPDATE), so of concurrent rotations of one token exactly one
// succeeds and the others, once it commits, see the token spent.
func (db *DB) RotateRefresh(ctx context.Context, oldHash string, next tollgate.RefreshToken, now time.Time) (tollgate.Session, error) {
	const op = "rotate refresh token"
	if next.Hash == "" {
		return tollgate.Session{}, fmt.Errorf("postgres: %s: %w", op, errEmptyHash)
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return tollgate.Session{}, db.fail(op, err)
	}
	defer rollback(ctx, tx)
	var expires time.Time
	var spent *time.Time
	s, err := scanSession(tx.QueryRow(ctx,
		`SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, r.expires_at, r.spent_at
		FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.hash = $1 FOR UPDATE OF r`, oldHash),
		&expires, &spent)
	if err != nil {
		return tollgate.Session{}, db.fail(op, err)
	}
	if !now.Before(expires) {
		return tollgate.Session{}, fmt.Errorf("postgres: %s: expired: %w", op, tollgate.ErrNotFound)
	}
	if spent != nil {
		return s, fmt.Errorf("postgres: %s of session %s: %w", op, s.ID, tollgate.ErrReused)
	}
	if _, err := tx.Exec(ctx, "UPDATE refresh_tokens SET spent_at = $1 WHERE hash = $2", now, oldHash); err != nil {
		return tollgate.Session{}, db.fail(op, err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES ($1, $2, $3)",
		next.Hash, s.ID, next.ExpiresAt); err != nil {
		return tollgate.Session{}, db.fail(op+" of session "+s.ID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return tollgate.Session{}, db.fail(op, err)
	}
	return s, nil
}

// SessionsByID returns the sessions among ids that exist, keyed by id;
// unknown ids are left out, and the map is never nil. It runs one query
// (id = ANY of an array) whatever the number of ids. Safe for concurrent use.
func (db *DB) SessionsByID(ctx context.Context, ids []string) (map[string]tollgate.Session, error) {
	out := make(map[string]tollgate.Session, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, db.fail("sessions by id", err)
	}
	defer rows.Close()
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, db.fail("sessions by id", err)
		}
		out[s.ID] = s
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("sessions by id", err)
	}
	return out, nil
}

// PurgeExpired deletes the refresh tokens expired at now, spent or not, and
// the sessions expired at now together with their tokens, and the blocks
// that have ended, in one
// transaction, and returns how many rows it deleted. Without it both tables
// only grow (each refresh adds a token); run it now and then, e.g. hourly,
// from any one node or all of them. After the purge an expired spent token is
// unknown rather than reused, which RotateRefresh reports the same way
// (ErrNotFound: expiry is checked first). Safe for concurrent use.
func (db *DB) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	const op = "purge expired sessions"
	ctx, cancel := bound(ctx)
	defer cancel()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return 0, db.fail(op, err)
	}
	defer rollback(ctx, tx)
	var total int64
	for _, q := range []string{
		"DELETE FROM refresh_tokens WHERE expires_at <= $1",
		"DELETE FROM sessions WHERE expires_at <= $1", // cascades to their tokens
		"DELETE FROM blocks WHERE until <= $1",
	} {
		tag, err := tx.Exec(ctx, q, now)
		if err != nil {
			return 0, db.fail(op, err)
		}
		total += tag.RowsAffected()
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, db.fail(op, err)
	}
	return total, nil
}
