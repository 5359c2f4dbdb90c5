// Package ws is the only importer of the WebSocket library (lxzan/gws). It
// upgrades requests that the HTTP edge has already authenticated, owns each
// socket's deadlines, bounded send queue, credential-expiry timers and close
// codes, and hands frames to a [Protocol] chosen by subprotocol.
//
// What it leaves to others: who may open a socket (auth, httpapi), what the
// frames mean (jsonproto, stomp), rooms and fan-out (hub).
//
// Threading: each socket has one read goroutine (the library's ReadLoop) that
// calls the Protocol's Message for one frame at a time. Writes go through the
// library's per-connection async queue, so senders never block; the queue is
// bounded by Config.SendQueue and a socket whose writes make no progress for
// Config.WriteTimeout is cut (a slow consumer must not grow memory).
package ws
