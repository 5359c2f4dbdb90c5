package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-ws/tollgate"
)

const userColumns = "id, name, password_hash, admin, disabled, created_at"

func scanUser(row pgx.Row) (tollgate.User, error) {
	var u tollgate.User
	err := row.Scan(&u.ID, &u.Name, &u.PasswordHash, &u.Admin, &u.Disabled, &u.CreatedAt)
	u.CreatedAt = utc(u.CreatedAt)
	return u, err
}

// CreateUser stores u under the unique key [tollgate.FoldUsername](u.Name).
// It returns an error wrapping [tollgate.ErrConflict] when the id or the
// folded name is taken. Safe for concurrent use, across nodes too: of
// concurrent creates of one name exactly one succeeds (the unique index
// decides).
func (db *DB) CreateUser(ctx context.Context, u tollgate.User) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	_, err := db.pool.Exec(ctx,
		"INSERT INTO users (id, name, name_folded, password_hash, admin, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
		u.ID, u.Name, tollgate.FoldUsername(u.Name), u.PasswordHash, u.Admin, u.Disabled, u.CreatedAt)
	return db.fail("create user "+u.ID, err)
}

// UserByName returns the user whose name folds to the same key as name, or an
// error wrapping [tollgate.ErrNotFound]. Safe for concurrent use.
func (db *DB) UserByName(ctx context.Context, name string) (tollgate.User, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	u, err := scanUser(db.pool.QueryRow(ctx,
		"SELECT "+userColumns+" FROM users WHERE name_folded = $1", tollgate.FoldUsername(name)))
	if err != nil {
		return tollgate.User{}, db.fail("user by name", err)
	}
	return u, nil
}

// UserByID returns the user or an error wrapping [tollgate.ErrNotFound]. Safe
// for concurrent use.
func (db *DB) UserByID(ctx context.Context, id string) (tollgate.User, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	u, err := scanUser(db.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", id))
	if err != nil {
		return tollgate.User{}, db.fail("user "+id, err)
	}
	return u, nil
}

// SetUserDisabled disables or re-enables the user; an error wrapping
// [tollgate.ErrNotFound] if there is none. Safe for concurrent use.
func (db *DB) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	tag, err := db.pool.Exec(ctx, "UPDATE users SET disabled = $1 WHERE id = $2", disabled, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return db.fail("set user "+id+" disabled", err)
}

// UsersByID returns the users among ids that exist, keyed by id; unknown ids
// are left out, and the map is never nil. It runs one query (id = ANY of an
// array) whatever the number of ids. Safe for concurrent use.
func (db *DB) UsersByID(ctx context.Context, ids []string) (map[string]tollgate.User, error) {
	out := make(map[string]tollgate.User, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx, "SELECT "+userColumns+" FROM users WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, db.fail("users by id", err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, db.fail("users by id", err)
		}
		out[u.ID] = u
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("users by id", err)
	}
	return out, nil
}
