-- Blocks (docs/api.md, "Limits and blocks"): the durable copy. Nodes read
-- blocks from Redis on the hot path; this table is what a restarted Redis
-- is seeded from, so a block outlives a Redis restart.
CREATE TABLE blocks (
	kind       TEXT        NOT NULL CHECK (kind IN ('user', 'ip')),
	target     TEXT        NOT NULL,
	name       TEXT        NOT NULL DEFAULT '',
	reason     TEXT        NOT NULL,
	created_at TIMESTAMPTZ NOT NULL,
	until      TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (kind, target)
);
CREATE INDEX blocks_until ON blocks (until);
