// Package postgres stores users, login sessions (with their refresh tokens)
// and room messages in PostgreSQL, through pgx and its connection pool. [DB]
// implements tollgate.UserStore, tollgate.SessionStore and
// tollgate.MessageStore; it is the store of a tollgate cluster, where every
// node opens the same database (a single node uses the sqlite package).
//
// The package owns its tables and their schema: [Open] applies the embedded,
// versioned migrations in migrations/ under a PostgreSQL advisory lock, so
// that nodes starting together migrate once. The tables live in the first
// schema of the search_path; to give tollgate a schema of its own, create it
// and add search_path=NAME to the URL.
//
// Room ids are gap-free and strictly increasing across every node: Append
// bumps rooms.last_id and inserts the message in one statement, and the row
// lock the bump takes serializes a room's appends until the insert commits.
// A publish retried with the same client id is stored once (a unique index
// on room, user and client id).
//
// It leaves to its callers every rule above storage: validation of names and
// texts, hashing of secrets, expiry and revocation decisions. The store only
// ever sees hashes of secrets, and its errors carry ids at most, never a
// parameter value or the connection URL (which may hold a password).
//
// Errors wrap the root sentinels: tollgate.ErrNotFound for missing rows (and
// for a session of an unknown user), tollgate.ErrConflict for uniqueness
// violations, tollgate.ErrUnavailable when the database cannot be used
// (connection refused or lost, server shutting down or out of resources,
// deadlock or serialization failure, the pool closed, or the caller's
// deadline passed), so that callers fail closed with 503. Every call is
// bounded by the caller's deadline, or by [DefaultTimeout] when its context
// has none.
package postgres
