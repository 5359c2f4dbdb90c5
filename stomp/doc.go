// Package stomp speaks STOMP 1.2 (and 1.1, 1.0) over tollgate's sockets
// (docs/api.md, "STOMP 1.2"), so that STOMP clients (@stomp/stompjs,
// Spring's WebSocketStompClient, go-stomp) and JSON clients chat in the same
// rooms. It implements ws.Protocol for the subprotocols v12.stomp, v11.stomp
// and v10.stomp.
//
// What it owns: a streaming frame codec with hard bounds ([Decoder],
// [AppendFrame]); CONNECT with version and heart-beat negotiation; the
// binding of in-band credentials (a JWT on CONNECT, on SEND in send-token
// mode, on /app/refresh, a ticket on a first-message CONNECT) to the
// handshake's user; destinations (/topic/<room>, /app/<room>, /app/refresh,
// /user/queue/errors, /user/queue/auth); since-id replay; receipts;
// transactions; heart-beats in both directions.
//
// What it leaves to others: who may open a socket (auth, httpapi), the
// socket itself, its deadlines and send queue (ws), rooms, history, rate
// limits and blocks (hub).
//
// Errors: a frame the server cannot process (malformed, an unknown command,
// a missing required header, an authentication failure) is answered with an
// ERROR frame (headers message and code; receipt-id when the frame asked for
// a receipt) and the socket is closed: 1008 with the code as reason for
// authentication failures, 1009 for a frame over the size limit, 1011 when a
// store is down, 1000 otherwise. A request the server refuses but
// understands (rate_limited, not_joined, forbidden, invalid_request,
// too_long) is answered with a MESSAGE on /user/queue/errors and the
// connection stays. No ERROR frame, error message or log line ever holds
// input bytes or a credential.
package stomp
