// Package hub is one node's registry of live sockets and rooms. It joins and
// leaves rooms, publishes (store, then broker, then local fan-out), answers
// history, and closes sockets by session, user or IP when the broker brings a
// control event (revocation, disable, block).
//
// Ordering: publishes to one room are serialized on this node from Append to
// Broker.Publish, so ids leave in order. On delivery the hub remembers each
// room's last delivered id: an id it has already delivered is dropped, and a
// gap (a message the broker lost, e.g. during a Redis hiccup, or a publish
// whose broker step failed) is filled from the message store before the new
// message is delivered, so members see every id once, in order.
//
// The hub reaches sockets only through its own [Conn] interface; it never
// imports the WebSocket layer.
package hub
