package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tollgate-ws/tollgate"
)

const messageColumns = "room, id, user_id, user_name, text, client_id, ts"

func scanMessage(s scanner) (tollgate.Message, error) {
	var m tollgate.Message
	var ts int64
	err := s.Scan(&m.Room, &m.ID, &m.UserID, &m.UserName, &m.Text, &m.ClientID, &ts)
	m.TS = fromMillis(ts)
	return m, err
}

// Append stores m with the room's next id, in one write transaction: look for
// a message of the same user with the same non-empty client id in the room
// (if there is one, return it with duplicate true and store nothing), bump
// rooms.last_id, insert. m.ID is ignored; m.TS is stored with millisecond
// precision in UTC (a zero TS becomes Now), and the returned message is what
// History will return. The message is on disk (the WAL fsynced, see
// [Synchronous]) when Append returns. Safe for concurrent use: appends are
// serialized on the writer connection, so ids are gap-free and unique.
func (db *DB) Append(ctx context.Context, m tollgate.Message) (tollgate.Message, bool, error) {
	const op = "append message"
	if m.TS.IsZero() {
		m.TS = db.now()
	}
	m.TS = fromMillis(millis(m.TS))
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return tollgate.Message{}, false, db.fail(op, err)
	}
	defer tx.Rollback()
	if m.ClientID != "" {
		dup, err := scanMessage(tx.QueryRowContext(ctx,
			"SELECT "+messageColumns+" FROM messages WHERE room = ? AND user_id = ? AND client_id = ?",
			m.Room, m.UserID, m.ClientID))
		if err == nil {
			return dup, true, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return tollgate.Message{}, false, db.fail(op, err)
		}
	}
	if err := tx.QueryRowContext(ctx,
		"INSERT INTO rooms (name, last_id) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET last_id = last_id + 1 RETURNING last_id",
		m.Room).Scan(&m.ID); err != nil {
		return tollgate.Message{}, false, db.fail(op, err)
	}
	if _, err := tx.ExecContext(ctx,
		"INSERT INTO messages ("+messageColumns+") VALUES (?, ?, ?, ?, ?, ?, ?)",
		m.Room, m.ID, m.UserID, m.UserName, m.Text, m.ClientID, millis(m.TS)); err != nil {
		return tollgate.Message{}, false, db.fail(op, err)
	}
	if err := tx.Commit(); err != nil {
		return tollgate.Message{}, false, db.fail(op, err)
	}
	return m, false, nil
}

// History returns up to limit messages of room with ID > since, oldest first;
// limit is clamped to 1..[tollgate.MaxHistoryLimit] and a negative since
// counts as 0. It reads through the reader pool and sees every Append that
// returned before it was called. Safe for concurrent use.
func (db *DB) History(ctx context.Context, room string, since int64, limit int) ([]tollgate.Message, error) {
	limit = min(max(limit, 1), tollgate.MaxHistoryLimit)
	rows, err := db.reader.QueryContext(ctx,
		"SELECT "+messageColumns+" FROM messages WHERE room = ? AND id > ? ORDER BY id LIMIT ?",
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
	var id int64
	err := db.reader.QueryRowContext(ctx, "SELECT last_id FROM rooms WHERE name = ?", room).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, db.fail("last id of "+room, err)
	}
	return id, nil
}
