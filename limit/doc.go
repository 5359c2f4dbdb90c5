// Package limit owns tollgate's rate limits, blocks and socket caps
// (docs/api.md, "Limits and blocks").
//
// [Limiter] decides, from state kept in a [tollgate.RateCounter] and a
// [tollgate.Blocklist]:
//   - publishes: PublishRate per user, AnonPublishRate per IP for anonymous
//     principals, per PublishWindow ([Limiter.AllowPublish], which the hub
//     calls before every publish);
//   - logins per IP and per username, handshakes per IP
//     ([Limiter.AllowLogin], [Limiter.AllowHandshake]);
//   - blocks: BlockViolations refused publishes or FailedAuthBlock failed
//     authentications within BlockWindow block the user or IP for
//     BlockDuration ([Limiter.FailedAuth]); admins block and unblock by hand
//     ([Limiter.Block], [Limiter.Unblock], [Limiter.List]); every entry point
//     checks them ([Limiter.CheckBlocked]).
//
// A new block is audited and published as a control event
// (ControlBlockUser or ControlBlockIP, code blocked) so that every node
// closes the target's live sockets 1008 blocked; the hub does the closing.
//
// Rate limits are sliding-window estimates over fixed windows: the current
// window's count plus the previous window's, weighted by how much of it is
// still within the last window length. A refused attempt is not counted
// against the limit (it was not served) but, for publishes, counts as a
// violation; RetryAfter is the whole seconds after which the next attempt is
// let through.
//
// Everything fails closed: when the counter or the blocklist cannot be
// reached, checks answer unavailable rather than let traffic through.
//
// [Sockets] caps concurrent sockets per user, per IP and per node. Its counts
// are node-local (see its doc).
//
// The package keeps no state of its own beyond Sockets' counts, holds no
// global state and starts no goroutines; it imports only the root package.
// What a refusal looks like on the wire (429 with Retry-After, an error
// frame, a close code) is the HTTP and protocol layers' business, read from
// the root's code table.
package limit
