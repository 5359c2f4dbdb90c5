package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// errEmptyHash refuses a refresh token without a hash: stored, it would match
// a caller that hashed nothing.
var errEmptyHash = errors.New("empty refresh token hash")

const sessionColumns = "id, user_id, created_at, expires_at, revoked_at"

func scanSession(s scanner, extra ...any) (tollgate.Session, error) {
	var sess tollgate.Session
	var created, expires int64
	var revoked sql.NullInt64
	err := s.Scan(append([]any{&sess.ID, &sess.UserID, &created, &expires, &revoked}, extra...)...)
	sess.CreatedAt, sess.ExpiresAt, sess.RevokedAt = fromMillis(created), fromMillis(expires), fromNullMillis(revoked)
	return sess, err
}

// CreateSession stores s together with its first refresh token (which belongs
// to s whatever first.SessionID says), in one transaction. It returns an
// error wrapping [tollgate.ErrConflict] when the session id or the token hash
// is taken, one wrapping [tollgate.ErrNotFound] when the user does not exist,
// and an error when first.Hash is empty. Safe for concurrent use.
func (db *DB) CreateSession(ctx context.Context, s tollgate.Session, first tollgate.RefreshToken) error {
	op := "create session " + s.ID
	if first.Hash == "" {
		return fmt.Errorf("sqlite: %s: %w", op, errEmptyHash)
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return db.fail(op, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO sessions (id, user_id, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?)",
		s.ID, s.UserID, millis(s.CreatedAt), millis(s.ExpiresAt), nullMillis(s.RevokedAt)); err != nil {
		return db.fail(op, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES (?, ?, ?)",
		first.Hash, s.ID, millis(first.ExpiresAt)); err != nil {
		return db.fail(op, err)
	}
	return db.fail(op, tx.Commit())
}

// Session returns the session, revoked or expired ones included, or an error
// wrapping [tollgate.ErrNotFound]. Safe for concurrent use.
func (db *DB) Session(ctx context.Context, id string) (tollgate.Session, error) {
	s, err := scanSession(db.reader.QueryRowContext(ctx, "SELECT "+sessionColumns+" FROM sessions WHERE id = ?", id))
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
	// SQLite counts a matched row as changed even when coalesce keeps the
	// old value, so RowsAffected tells "unknown" from "already revoked".
	res, err := db.writer.ExecContext(ctx, "UPDATE sessions SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
		millis(at), id)
	if err != nil {
		return db.fail("revoke session "+id, err)
	}
	return db.fail("revoke session "+id, oneRow(res))
}

// RevokeUserSessions revokes, at `at`, every session of the user that is live
// at `at` ([tollgate.Session.Live]) and returns their ids in ascending order;
// sessions already revoked or expired are left as they are. Safe for
// concurrent use.
func (db *DB) RevokeUserSessions(ctx context.Context, userID string, at time.Time) ([]string, error) {
	op := "revoke sessions of user " + userID
	rows, err := db.writer.QueryContext(ctx,
		"UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? RETURNING id",
		millis(at), userID, millis(at))
	if err != nil {
		return nil, db.fail(op, err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, db.fail(op, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return nil, db.fail(op, err)
	}
	if err := rows.Err(); err != nil {
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
// concurrent use: rotations are serialized on the writer connection, so of
// concurrent rotations of one token exactly one succeeds.
func (db *DB) RotateRefresh(ctx context.Context, oldHash string, next tollgate.RefreshToken, now time.Time) (tollgate.Session, error) {
	const op = "rotate refresh token"
	if next.Hash == "" {
		return tollgate.Session{}, fmt.Errorf("sqlite: %s: %w", op, errEmptyHash)
	}
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return tollgate.Session{}, db.fail(op, err)
	}
	defer tx.Rollback()
	var expires int64
	var spent sql.NullInt64
	s, err := scanSession(tx.QueryRowContext(ctx,
		`SELECT s.id, s.user_id, s.created_at, s.expires_at, s.revoked_at, r.expires_at, r.spent_at
		FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.hash = ?`, oldHash), &expires, &spent)
	if err != nil {
		return tollgate.Session{}, db.fail(op, err)
	}
	if !now.Before(fromMillis(expires)) {
		return tollgate.Session{}, fmt.Errorf("sqlite: %s: expired: %w", op, tollgate.ErrNotFound)
	}
	if spent.Valid {
		return s, fmt.Errorf("sqlite: %s of session %s: %w", op, s.ID, tollgate.ErrReused)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE refresh_tokens SET spent_at = ? WHERE hash = ?", millis(now), oldHash); err != nil {
		return tollgate.Session{}, db.fail(op, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO refresh_tokens (hash, session_id, expires_at) VALUES (?, ?, ?)",
		next.Hash, s.ID, millis(next.ExpiresAt)); err != nil {
		return tollgate.Session{}, db.fail(op+" of session "+s.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return tollgate.Session{}, db.fail(op, err)
	}
	return s, nil
}

// SessionsByID returns the sessions among ids that exist, keyed by id;
// unknown ids are left out, and the map is never nil. It runs one query per
// 500 distinct ids. Safe for concurrent use.
func (db *DB) SessionsByID(ctx context.Context, ids []string) (map[string]tollgate.Session, error) {
	out := make(map[string]tollgate.Session, len(ids))
	for _, chunk := range chunks(ids) {
		rows, err := db.reader.QueryContext(ctx,
			"SELECT "+sessionColumns+" FROM sessions WHERE id IN ("+placeholders(len(chunk))+")", chunk...)
		if err != nil {
			return nil, db.fail("sessions by id", err)
		}
		for rows.Next() {
			s, err := scanSession(rows)
			if err != nil {
				rows.Close()
				return nil, db.fail("sessions by id", err)
			}
			out[s.ID] = s
		}
		if err := rows.Close(); err != nil {
			return nil, db.fail("sessions by id", err)
		}
		if err := rows.Err(); err != nil {
			return nil, db.fail("sessions by id", err)
		}
	}
	return out, nil
}

// PurgeExpired deletes the refresh tokens expired at now, spent or not, and
// the sessions expired at now together with their tokens, and returns how
// many rows it deleted. Without it both tables only grow (each refresh adds a
// token); run it now and then, e.g. hourly. After the purge an expired spent
// token is unknown rather than reused, which RotateRefresh reports the same
// way (ErrNotFound: expiry is checked first). Safe for concurrent use.
func (db *DB) PurgeExpired(ctx context.Context, now time.Time) (int64, error) {
	const op = "purge expired sessions"
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return 0, db.fail(op, err)
	}
	defer tx.Rollback()
	var total int64
	for _, q := range []string{
		"DELETE FROM refresh_tokens WHERE expires_at <= ?",
		"DELETE FROM sessions WHERE expires_at <= ?", // cascades to their tokens
	} {
		res, err := tx.ExecContext(ctx, q, millis(now))
		if err != nil {
			return 0, db.fail(op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, db.fail(op, err)
		}
		total += n
	}
	if err := tx.Commit(); err != nil {
		return 0, db.fail(op, err)
	}
	return total, nil
}
