// Package jsonproto speaks the JSON protocol tollgate.v1 (docs/api.md, "JSON
// protocol"): it decodes one JSON object per frame, turns it into hub calls,
// and encodes the answers. It implements ws.Protocol.
//
// Requests refused without closing the socket get an error frame with the
// contract's code; credential failures (refresh with a bad or foreign token,
// first-message auth failures) close the socket 1008.
package jsonproto
