-- 0001: users, login sessions with their refresh tokens, rooms and messages.
-- Times are unix milliseconds, UTC. Tables are STRICT: a value of the wrong
-- type is an error, not a silent conversion.

CREATE TABLE users (
	id            TEXT    NOT NULL PRIMARY KEY,
	name          TEXT    NOT NULL,
	-- tollgate.FoldUsername(name): names are unique case-insensitively.
	name_folded   TEXT    NOT NULL UNIQUE,
	password_hash TEXT    NOT NULL,
	admin         INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
	disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
	created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
	id         TEXT    NOT NULL PRIMARY KEY,
	user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER -- NULL while live
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id);

-- Only hashes of refresh tokens are stored. Spent tokens stay until they
-- expire, so that presenting one again is recognised as reuse.
CREATE TABLE refresh_tokens (
	hash       TEXT    NOT NULL PRIMARY KEY,
	session_id TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	expires_at INTEGER NOT NULL,
	spent_at   INTEGER -- NULL until rotated
) STRICT;

CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- rooms.last_id is the newest message id of the room; Append bumps it in the
-- same transaction as the insert, so ids are gap-free.
CREATE TABLE rooms (
	name    TEXT    NOT NULL PRIMARY KEY,
	last_id INTEGER NOT NULL
) STRICT;

-- messages.user_id has no foreign key: anonymous principals publish too.
CREATE TABLE messages (
	room      TEXT    NOT NULL REFERENCES rooms (name),
	id        INTEGER NOT NULL,
	user_id   TEXT    NOT NULL,
	user_name TEXT    NOT NULL,
	text      TEXT    NOT NULL,
	client_id TEXT    NOT NULL DEFAULT '',
	ts        INTEGER NOT NULL,
	PRIMARY KEY (room, id)
) STRICT;

-- A publish retried with the same client id is stored once per user and room.
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id) WHERE client_id <> '';
