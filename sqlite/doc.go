// Package sqlite stores users, login sessions (with their refresh tokens) and
// room messages in one SQLite database file, through the pure-Go driver
// modernc.org/sqlite. [DB] implements tollgate.UserStore,
// tollgate.SessionStore and tollgate.MessageStore; it is the default store of
// a single-node tollgate (the postgres package serves clusters).
//
// The package owns the database file and its schema: [Open] creates the file
// (mode 0600) if needed, sets the connection pragmas (WAL, busy_timeout,
// foreign_keys, synchronous=FULL) and applies the embedded, versioned
// migrations in migrations/. It leaves to its callers the data directory
// (created by cmd/tollgate), tickets and the broker (memory, redis), and every
// rule above storage: validation of names and texts, hashing of secrets,
// expiry and revocation decisions. The store only ever sees hashes of
// secrets, and its errors carry ids at most, never a parameter value.
//
// Errors wrap the root sentinels: tollgate.ErrNotFound for missing rows (and
// for a session of an unknown user), tollgate.ErrConflict for uniqueness
// violations, tollgate.ErrUnavailable when the database cannot be used
// (busy beyond the timeout, I/O error, disk full, closed, or the caller's
// deadline passed), so that callers fail closed with 503.
package sqlite
