// Package tollgate is the vocabulary of the tollgate chat and pub/sub server:
// users, login sessions, one-time WebSocket tickets, principals, rooms and
// messages, the store, broker and auditor interfaces that adapters implement,
// and the one table that maps contract error codes to HTTP statuses and
// WebSocket close codes.
//
// It imports only the standard library. Adapters (memory, sqlite, postgres,
// redis, audit) implement its interfaces; service packages (auth, hub, ws,
// httpapi) use them; cmd/tollgate wires one to the other.
package tollgate
