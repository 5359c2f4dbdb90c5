// Package memory holds in-process implementations of tollgate's store and
// broker interfaces.
//
// Two of them are production code for a single node: [TicketStore] (one-time
// WebSocket tickets, kept only for their 30-second life, so losing them on a
// restart costs a client one retry) and [Broker] (a loopback that hands each
// published event straight to this node's hub). A cluster replaces both with
// the redis package, which also shares tickets and events between nodes.
//
// The other three — [UserStore], [SessionStore] and [MessageStore] — follow
// the root interfaces' documented semantics exactly and serve as fast test
// doubles for other packages' tests. They keep everything in memory, without
// bounds, and lose it on exit: durable storage is the sqlite and postgres
// packages' job.
//
// Every type is safe for concurrent use. The package imports only the root
// package and the standard library, and holds no global state. Its
// conformance to the root interfaces is checked by the shared suites in
// internal/storetest.
package memory
