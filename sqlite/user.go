package sqlite

import (
	"context"
	"database/sql"

	"github.com/tollgate-ws/tollgate"
)

const userColumns = "id, name, password_hash, admin, disabled, created_at"

// scanner is what *sql.Row and *sql.Rows share.
type scanner interface{ Scan(dest ...any) error }

func scanUser(s scanner) (tollgate.User, error) {
	var u tollgate.User
	var created int64
	err := s.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Admin, &u.Disabled, &created)
	u.CreatedAt = fromMillis(created)
	return u, err
}

// CreateUser stores u under the unique key [tollgate.FoldUsername](u.Name).
// It returns an error wrapping [tollgate.ErrConflict] when the id or the
// folded name is taken. Safe for concurrent use: of concurrent creates of one
// name exactly one succeeds.
func (db *DB) CreateUser(ctx context.Context, u tollgate.User) error {
	_, err := db.writer.ExecContext(ctx,
		"INSERT INTO users (id, name, name_folded, password_hash, admin, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		u.ID, u.Name, tollgate.FoldUsername(u.Name), u.PasswordHash, boolInt(u.Admin), boolInt(u.Disabled), millis(u.CreatedAt))
	return db.fail("create user "+u.ID, err)
}

// UserByName returns the user whose name folds to the same key as name, or an
// error wrapping [tollgate.ErrNotFound]. Safe for concurrent use.
func (db *DB) UserByName(ctx context.Context, name string) (tollgate.User, error) {
	u, err := scanUser(db.reader.QueryRowContext(ctx,
		"SELECT "+userColumns+" FROM users WHERE name_folded = ?", tollgate.FoldUsername(name)))
	if err != nil {
		return tollgate.User{}, db.fail("user by name", err)
	}
	return u, nil
}

// UserByID returns the user or an error wrapping [tollgate.ErrNotFound]. Safe
// for concurrent use.
func (db *DB) UserByID(ctx context.Context, id string) (tollgate.User, error) {
	u, err := scanUser(db.reader.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE id = ?", id))
	if err != nil {
		return tollgate.User{}, db.fail("user "+id, err)
	}
	return u, nil
}

// SetUserDisabled disables or re-enables the user; an error wrapping
// [tollgate.ErrNotFound] if there is none. Safe for concurrent use.
func (db *DB) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	res, err := db.writer.ExecContext(ctx, "UPDATE users SET disabled = ? WHERE id = ?", boolInt(disabled), id)
	if err != nil {
		return db.fail("set user "+id+" disabled", err)
	}
	return db.fail("set user "+id+" disabled", oneRow(res))
}

// UsersByID returns the users among ids that exist, keyed by id; unknown ids
// are left out, and the map is never nil. It runs one query per 500 distinct
// ids. Safe for concurrent use.
func (db *DB) UsersByID(ctx context.Context, ids []string) (map[string]tollgate.User, error) {
	out := make(map[string]tollgate.User, len(ids))
	for _, chunk := range chunks(ids) {
		rows, err := db.reader.QueryContext(ctx,
			"SELECT "+userColumns+" FROM users WHERE id IN ("+placeholders(len(chunk))+")", chunk...)
		if err != nil {
			return nil, db.fail("users by id", err)
		}
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				rows.Close()
				return nil, db.fail("users by id", err)
			}
			out[u.ID] = u
		}
		if err := rows.Close(); err != nil {
			return nil, db.fail("users by id", err)
		}
		if err := rows.Err(); err != nil {
			return nil, db.fail("users by id", err)
		}
	}
	return out, nil
}

// oneRow returns sql.ErrNoRows when res changed no row.
func oneRow(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return sql.ErrNoRows
	}
	return nil
}
