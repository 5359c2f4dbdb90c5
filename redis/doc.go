// Package redis shares one-time WebSocket tickets, room messages, control
// events, rate counters and blocks between the nodes of a tollgate cluster,
// through a Redis server (6.2 or newer: Redeem uses GETDEL). [Client]
// implements tollgate.TicketStore, tollgate.Broker, tollgate.RateCounter and
// tollgate.Blocklist; a single node uses the memory package instead.
//
// The package owns its keys and channels, all under one prefix
// ([Options.Prefix], default [DefaultPrefix]), so several clusters (or test
// runs) can share one Redis:
//
//	<prefix>ticket:<hex sha-256>          a ticket, JSON, with a PX TTL
//	<prefix>broker:message                pub/sub channel of stored messages
//	<prefix>broker:control                pub/sub channel of control events
//	<prefix>rate:{<key>}:<w>:<n>          the count of window n of length w
//	<prefix>{block}:<kind>:<target>       a block, JSON, with a PX TTL
//	<prefix>{block}:index                 sorted set of blocks by their end
//
// It leaves to its callers every rule above storage: minting and hashing
// tickets, the Origin binding, rate limits and what counts as a violation,
// and delivery to sockets, which is the hub's job.
//
// # Delivery
//
// Redis pub/sub delivers at most once and only to subscribers connected at the
// time: a message published while a node's subscription is down is lost for
// that node. [Client.Run] resubscribes with exponential backoff and carries
// on. The hub recovers lost messages itself: room ids are gap-free, so the
// next message of a room reveals the gap and the hub fills it from the
// message store (and reconnecting clients ask for history). Control events
// lost that way are not recovered by the broker; the hub's periodic
// revalidation of sessions and users, and the blocklist checked at every
// handshake, close what they would have closed, only later.
//
// # Errors and secrets
//
// Errors wrap the root sentinels: tollgate.ErrNotFound for a missing or
// expired ticket, tollgate.ErrConflict for a ticket hash stored twice, and
// tollgate.ErrUnavailable whenever Redis cannot be reached, refuses service
// (LOADING, READONLY, auth failures …) or is too slow for the caller's
// deadline, so that callers fail closed. The Redis URL may hold a password:
// it never appears in an error or a log line of this package. Tickets are
// stored under their SHA-256 only.
//
// Every call is bounded: by the caller's context deadline, or by
// [DefaultTimeout] when the context has none.
package redis
