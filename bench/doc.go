// Package bench is tollgate's load generator: `tollgate bench connect|idle|
// fanout` against a tollgate server, and `tollgate bench baseline`, a bare
// WebSocket server on the same library (no auth, no storage) that marks the
// machine's limit, so results are written as ratios measured in one run.
//
// Safety: every run is bounded in count (at most MaxSockets sockets per
// process: open files are capped at 20,000 here) and in time (Config.Timeout),
// and targets only loopback unless an address is given explicitly. Clients
// are spread over 127.0.0.x source addresses so one address's ephemeral ports
// are not exhausted.
package bench
