-- 0001: users, login sessions with their refresh tokens, rooms and messages.
-- Times are timestamptz (microseconds, UTC on the way out).

CREATE TABLE users (
	id            text        NOT NULL PRIMARY KEY,
	name          text        NOT NULL,
	-- tollgate.FoldUsername(name): names are unique case-insensitively.
	name_folded   text        NOT NULL UNIQUE,
	password_hash text        NOT NULL,
	admin         boolean     NOT NULL DEFAULT false,
	disabled      boolean     NOT NULL DEFAULT false,
	created_at    timestamptz NOT NULL
);

CREATE TABLE sessions (
	id         text        NOT NULL PRIMARY KEY,
	user_id    text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	revoked_at timestamptz -- NULL while live
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Only hashes of refresh tokens are stored. Spent tokens stay until they
-- expire, so that presenting one again is recognised as reuse.
CREATE TABLE refresh_tokens (
	hash       text        NOT NULL PRIMARY KEY,
	session_id text        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
	expires_at timestamptz NOT NULL,
	spent_at   timestamptz -- NULL until rotated
);

CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- rooms.last_id is the newest message id of the room. Append bumps it in the
-- statement that inserts the message; the row lock the bump takes
-- serializes a room's appends across every node, so ids are gap-free.
CREATE TABLE rooms (
	name    text   NOT NULL PRIMARY KEY,
	last_id bigint NOT NULL
);

-- messages.user_id has no foreign key: anonymous principals publish too.
CREATE TABLE messages (
	room      text        NOT NULL REFERENCES rooms (name),
	id        bigint      NOT NULL,
	user_id   text        NOT NULL,
	user_name text        NOT NULL,
	text      text        NOT NULL,
	client_id text        NOT NULL DEFAULT '',
	ts        timestamptz NOT NULL,
	PRIMARY KEY (room, id)
);

-- A publish retried with the same client id is stored once per user and room.
CREATE UNIQUE INDEX messages_client_id ON messages (room, user_id, client_id) WHERE client_id <> '';
