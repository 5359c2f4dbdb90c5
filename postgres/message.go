package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-ws/tollgate"
)

const messageColumns = "room, id, user_id, user_name, text, client_id, ts"

// clientIDIndex is the unique index that makes a retried publish idempotent.
const clientIDIndex = "messages_client_id"

func scanMessage(row pgx.Row) (tollgate.Message, error) {
	var m tollgate.Message
	err := row.Scan(&m.Room, &m.ID, &m.UserID, &m.UserName, &m.Text, &m.ClientID, &m.TS)
	m.TS = utc(m.TS)
	return m, err
}

// appendSQL bumps the room's last_id (creating the room at 1) and inserts
// the message with that id, in one statement, so in one implicit
// transaction. The bump's row lock serializes the room's appends, from every
// node, until the statement commits: ids are strictly increasing, unique and
// gap-free. When the insert breaks the client-id index, the whole statement,
// bump included, is rolled back.
const appendSQL = `WITH r AS (
	INSERT INTO rooms AS r (name, last_id) VALUES ($1, 1)
	ON CONFLICT (name) DO UPDATE SET last_id = r.last_id + 1
	RETURNING last_id
)
INSERT INTO messages (room, id, user_id, user_name, text, client_id, ts)
SELECT $1, last_id, $2, $3, $4, $5, $6 FROM r
RETURNING id`

// Append stores m with the room's next id in one statement (see the package
// documentation). If the same user already stored a message with the same
// non-empty client id in the room, the statement fails on the unique index,
// stores nothing, and Append returns that message with duplicate true. m.ID
// is ignored; m.TS is stored with microsecond precision and returned in UTC
// (a zero TS becomes Now), so the returned message is what History will
// return. The message is committed, and durable as the server's
// synchronous_commit setting makes it, when Append returns. Safe for
// concurrent use, across nodes too.
//
// PostgreSQL text cannot hold the NUL character: a text or name containing
// one is refused with an error (not a sentinel).
func (db *DB) Append(ctx context.Context, m tollgate.Message) (tollgate.Message, bool, error) {
	const op = "append message"
	if m.TS.IsZero() {
		m.TS = db.now()
	}
	m.TS = m.TS.Truncate(time.Microsecond).UTC()
	ctx, cancel := bound(ctx)
	defer cancel()
	err := db.pool.QueryRow(ctx, appendSQL, m.Room, m.UserID, m.UserName, m.Text, m.ClientID, m.TS).Scan(&m.ID)
	if err == nil {
		return m, false, nil
	}
	var pe *pgconn.PgError
	if m.ClientID == "" || !errors.As(err, &pe) || pe.Code != uniqueViolation || pe.ConstraintName != clientIDIndex {
		return tollgate.Message{}, false, db.fail(op, err)
	}
	dup, err := scanMessage(db.pool.QueryRow(ctx,
		"SELECT "+messageColumns+" FROM messages WHERE room = $1 AND user_id = $2 AND client_id = $3",
		m.Room, m.UserID, m.ClientID))
	if errors.Is(err, pgx.ErrNoRows) {
		// Only a deletion between the two statements gets here.
		return tollgate.Message{}, false, fmt.Errorf("postgres: %s: duplicate vanished: %w", op, tollgate.ErrConflict)
	}
	if err != nil {
		return tollgate.Message{}, false, db.fail(op, err)
	}
	return dup, true, nil
}

// History returns up to limit messages of room with ID > since, oldest first;
// limit is clamped to 1..[tollgate.MaxHistoryLimit] and a negative since
// counts as 0. It sees every Append that returned before it was called, on
// any node. Safe for concurrent use.
func (db *DB) History(ctx context.Context, room string, since int64, limit int) ([]tollgate.Message, error) {
	limit = min(max(limit, 1), tollgate.MaxHistoryLimit)
	ctx, cancel := bound(ctx)
	defer cancel()
	rows, err := db.pool.Query(ctx,
		"SELECT "+messageColumns+" FROM messages WHERE room = $1 AND id > $2 ORDER BY id LIMIT $3",
		room, max(since, 0), limit)
	if err != nil {
		return nil, db.fail("history of "+room, err)
	}
	defer rows.Close()
	out := make([]tollgate.Message, 0, min(limit, 64))
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, db.fail("history of "+room, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("history of "+room, err)
	}
	return out, nil
}

// LastID returns the newest id of room, 0 when it has no messages. Safe for
// concurrent use.
func (db *DB) LastID(ctx context.Context, room string) (int64, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var id int64
	err := db.pool.QueryRow(ctx, "SELECT last_id FROM rooms WHERE name = $1", room).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, db.fail("last id of "+room, err)
	}
	return id, nil
}
