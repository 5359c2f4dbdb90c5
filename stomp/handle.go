package stomp

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate-ws/tollgate"
)

// Destinations (docs/api.md, "STOMP 1.2").
const (
	topicPrefix = "/topic/"
	appPrefix   = "/app/"
	// DestRefresh takes a SEND whose Authorization carries a new access JWT.
	DestRefresh = "/app/refresh"
	// DestErrors carries the errors that keep the connection open.
	DestErrors = "/user/queue/errors"
	// DestAuth carries token_expiring and refreshed events.
	DestAuth = "/user/queue/auth"
)

// maxHeartbeatMillis caps a heart-beat figure of CONNECT (24 h).
const maxHeartbeatMillis = 24 * 60 * 60 * 1000

// violation is a frame the server cannot process at all: it is answered
// with ERROR and the socket is closed (STOMP 1.2, "ERROR"). Errors that are
// not violations keep the connection and arrive on /user/queue/errors.
type violation struct{ e *tollgate.Error }

func (v *violation) Error() string { return v.e.Error() }

func violationf(code tollgate.Code, format string, args ...any) error {
	return &violation{tollgate.Errorf(code, format, args...)}
}

func violationOf(e *tollgate.Error) error { return &violation{e} }

// closesSocket lists the codes that end a connection whenever a request
// meets them (the JSON protocol's set, docs/api.md); other codes of a
// request arrive on /user/queue/errors.
func closesSocket(c tollgate.Code) bool {
	switch c {
	case tollgate.CodeBlocked, tollgate.CodeSessionRevoked, tollgate.CodeUserDisabled,
		tollgate.CodeTokenExpired, tollgate.CodeUnauthenticated, tollgate.CodeInvalidTicket,
		tollgate.CodeAuthTimeout:
		return true
	}
	return false
}

// handle processes one decoded frame. A returned error closes the socket
// (after the ERROR frame, or the DISCONNECT receipt, it has queued).
func (pr *Protocol) handle(s *session, f *Frame) error {
	s.mu.Lock()
	connected, pending := s.connected, s.pending
	s.mu.Unlock()
	if !connected {
		if f.Command != CmdConnect && f.Command != CmdStomp {
			if pending {
				// The first frame must authenticate; nothing else is accepted before.
				return s.fatal(tollgate.NewError(tollgate.CodeUnauthenticated), f)
			}
			return s.fatal(tollgate.Errorf(tollgate.CodeInvalidRequest, "The first frame must be CONNECT."), f)
		}
		return pr.connect(s, f)
	}
	// The connection id names the socket in what the frame causes (audit).
	ctx, cancel := context.WithTimeout(tollgate.NewContextWithConnID(context.Background(), s.c.ID()), pr.cfg.RequestTimeout)
	defer cancel()
	extra, err := pr.dispatch(ctx, s, f)
	if err != nil {
		if err == errDisconnect {
			return tollgate.NewError(tollgate.CodeNormal)
		}
		var v *violation
		if errors.As(err, &v) {
			return s.fatal(v.e, f)
		}
		e := tollgate.AsError(err)
		if closesSocket(e.Code) {
			return s.fatal(e, f)
		}
		if e.Code == tollgate.CodeInternal || e.Code == tollgate.CodeUnavailable {
			pr.cfg.Logger.Error("stomp request failed", "conn_id", s.c.ID(), "command", f.Command, "error", e.Err)
		}
		s.queueError(e, f)
	}
	if r, ok := f.Get("receipt"); ok {
		s.receipt(r, extra)
	}
	return nil
}

// errDisconnect ends the connection after a DISCONNECT (close 1000).
var errDisconnect = errors.New("stomp: disconnect")

func (pr *Protocol) dispatch(ctx context.Context, s *session, f *Frame) ([]Header, error) {
	switch f.Command {
	case CmdSend:
		return pr.send(ctx, s, f)
	case CmdSubscribe:
		return nil, pr.subscribe(ctx, s, f)
	case CmdUnsubscribe:
		return nil, pr.unsubscribe(s, f)
	case CmdAck, CmdNack:
		return nil, pr.ack(s, f)
	case CmdBegin, CmdCommit, CmdAbort:
		return pr.transaction(ctx, s, f)
	case CmdDisconnect:
		s.txs = nil
		if r, ok := f.Get("receipt"); ok {
			s.receipt(r, nil)
		}
		return nil, errDisconnect
	case CmdConnect, CmdStomp:
		return nil, violationf(tollgate.CodeInvalidRequest, "Already connected.")
	default:
		return nil, violationf(tollgate.CodeInvalidRequest, "Unknown command.")
	}
}

// negotiate picks the highest version of accept-version that tollgate
// speaks; no header means 1.0 (STOMP 1.2, "Protocol Negotiation").
func negotiate(f *Frame) (Version, bool) {
	av, ok := f.Get("accept-version")
	if !ok {
		return V10, true
	}
	best := Version(0)
	for _, p := range strings.Split(av, ",") {
		var v Version
		switch strings.TrimSpace(p) {
		case "1.0":
			v = V10
		case "1.1":
			v = V11
		case "1.2":
			v = V12
		}
		best = max(best, v)
	}
	return best, best != 0
}

// parseHeartbeat reads "cx,cy" in milliseconds.
func parseHeartbeat(s string) (cx, cy time.Duration, ok bool) {
	a, b, found := strings.Cut(s, ",")
	if !found {
		return 0, 0, false
	}
	x, ok1 := millis(strings.TrimSpace(a))
	y, ok2 := millis(strings.TrimSpace(b))
	return x, y, ok1 && ok2
}

func millis(s string) (time.Duration, bool) {
	if s == "" || len(s) > 12 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return time.Duration(min(n, maxHeartbeatMillis)) * time.Millisecond, true
}

// bearer reads the one Authorization header of f ("Bearer <JWT>"; the
// header name in any case). present is false when there is none; err is
// set when it is repeated or not one Bearer token.
func bearer(f *Frame) (tok tollgate.Secret, present bool, err error) {
	for _, h := range f.Headers {
		if !strings.EqualFold(h.Key, "authorization") {
			continue
		}
		if present {
			// A credential given twice is refused rather than guessed at.
			return "", true, tollgate.NewError(tollgate.CodeUnauthenticated)
		}
		present = true
		scheme, rest, ok := strings.Cut(strings.TrimSpace(h.Value), " ")
		rest = strings.TrimSpace(rest)
		if !ok || !strings.EqualFold(scheme, "bearer") || rest == "" || strings.ContainsAny(rest, " \t") {
			return "", true, tollgate.NewError(tollgate.CodeUnauthenticated)
		}
		tok = tollgate.Secret(rest)
	}
	return tok, present, nil
}

// single returns the one entry of key; a repeated credential is refused.
func single(f *Frame, key string) (tollgate.Secret, bool, error) {
	var v tollgate.Secret
	found := false
	for _, h := range f.Headers {
		if h.Key == key {
			if found {
				return "", true, tollgate.NewError(tollgate.CodeUnauthenticated)
			}
			v, found = tollgate.Secret(h.Value), true
		}
	}
	return v, found, nil
}

// connectCredentials reads the JWT (Authorization: Bearer, or passcode)
// and the ticket of a CONNECT frame. Authorization and passcode together
// must carry the same token.
func connectCredentials(f *Frame) (token, ticket tollgate.Secret, err error) {
	tok, hasTok, err := bearer(f)
	if err != nil {
		return "", "", err
	}
	pass, hasPass, err := single(f, "passcode")
	if err != nil {
		return "", "", err
	}
	tk, hasTicket, err := single(f, "ticket")
	if err != nil {
		return "", "", err
	}
	switch {
	case hasTok && hasPass && pass != tok:
		return "", "", tollgate.NewError(tollgate.CodeUnauthenticated)
	case hasPass && !hasTok:
		tok, hasTok = pass, true
	}
	if (hasTok && tok.Empty()) || (hasTicket && tk.Empty()) {
		return "", "", tollgate.NewError(tollgate.CodeUnauthenticated)
	}
	return tok, tk, nil
}

// authFailure maps a verifier error to the error that closes the socket:
// token_expired, invalid_ticket and unavailable keep their codes, anything
// else is unauthenticated with the default message (auth failures never
// say which part was wrong, docs/api.md "Errors").
func authFailure(err error) *tollgate.Error {
	e := tollgate.AsError(err)
	switch e.Code {
	case tollgate.CodeTokenExpired, tollgate.CodeInvalidTicket, tollgate.CodeUnavailable,
		tollgate.CodeSessionRevoked, tollgate.CodeUserDisabled, tollgate.CodeBlocked:
		return &tollgate.Error{Code: e.Code, Err: e.Err}
	}
	return &tollgate.Error{Code: tollgate.CodeUnauthenticated, Err: e.Err}
}

// connect handles CONNECT or STOMP: version, heart-beats, credentials. The
// handshake's principal can never be switched: a JWT on CONNECT must name
// the same user (docs/api.md, "STOMP 1.2").
func (pr *Protocol) connect(s *session, f *Frame) error {
	v, ok := negotiate(f)
	if !ok {
		return s.fatal(tollgate.Errorf(tollgate.CodeInvalidRequest, "Supported protocol versions are 1.0 1.1 1.2."), f,
			Header{"version", "1.0,1.1,1.2"})
	}
	var cx, cy time.Duration
	if hb, ok := f.Get("heart-beat"); ok {
		if cx, cy, ok = parseHeartbeat(hb); !ok {
			return s.fatal(tollgate.Errorf(tollgate.CodeInvalidRequest, "Invalid heart-beat header."), f)
		}
	}
	token, ticket, err := connectCredentials(f)
	if err != nil {
		return s.fatal(authFailure(err), f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pr.cfg.RequestTimeout)
	defer cancel()
	s.mu.Lock()
	pending := s.pending
	s.mu.Unlock()
	old := s.c.Principal()
	var p tollgate.Principal
	switch {
	case pending && !ticket.Empty() && token.Empty():
		p, err = pr.cfg.Verifier.RedeemTicket(ctx, ticket, s.c.Client())
	case pending && !token.Empty() && ticket.Empty():
		p, err = pr.cfg.Verifier.VerifyAccess(ctx, token)
	case pending:
		err = tollgate.NewError(tollgate.CodeUnauthenticated)
	case !ticket.Empty():
		// A ticket is spent only by a socket that has no credential yet.
		err = tollgate.NewError(tollgate.CodeUnauthenticated)
	case !token.Empty():
		p, err = pr.cfg.Verifier.VerifyAccess(ctx, token)
		if err == nil && (p.UserID != old.UserID || old.Anonymous) {
			// A connection can never switch principal.
			err = tollgate.NewError(tollgate.CodeUnauthenticated)
		}
		p.Credential = old.Credential
	}
	if err != nil {
		e := authFailure(err)
		if e.Code == tollgate.CodeUnavailable || e.Code == tollgate.CodeInternal {
			pr.cfg.Logger.Error("stomp connect: verifier failed", "conn_id", s.c.ID(), "error", e.Err)
		}
		return s.fatal(e, f)
	}
	if !s.startConnected(v, cx, cy) {
		return s.fatal(tollgate.NewError(tollgate.CodeAuthTimeout), f)
	}
	s.dec.SetVersion(v)
	if p.UserID != "" {
		s.c.SetPrincipal(p)
	}
	if pending {
		pr.cfg.Hub.Register(s)
		if pr.cfg.OnAuthenticated != nil {
			pr.cfg.OnAuthenticated(s.c)
		}
	} else if p.UserID != "" {
		pr.cfg.Hub.UpdatePrincipal(s)
	}
	s.connectedFrame(f)
	return nil
}

// sendToken enforces --stomp-send-token=required: the SEND must carry a
// valid JWT of the socket's user.
func (pr *Protocol) sendToken(ctx context.Context, s *session, f *Frame) error {
	tok, present, err := bearer(f)
	if err != nil || !present {
		return violationOf(tollgate.Errorf(tollgate.CodeUnauthenticated, "SEND needs Authorization: Bearer <JWT>."))
	}
	p, err := pr.cfg.Verifier.VerifyAccess(ctx, tok)
	if err != nil {
		e := authFailure(err)
		if e.Code == tollgate.CodeUnavailable || e.Code == tollgate.CodeInternal {
			return e // the store is down, not the client's fault: the socket stays
		}
		return violationOf(e)
	}
	if cur := s.c.Principal(); p.UserID != cur.UserID || cur.Anonymous {
		return violationOf(tollgate.NewError(tollgate.CodeUnauthenticated))
	}
	return nil
}

// send handles SEND: to a transaction's buffer, to /app/refresh, or to a room.
func (pr *Protocol) send(ctx context.Context, s *session, f *Frame) ([]Header, error) {
	dest, ok := f.Get("destination")
	if !ok {
		return nil, violationf(tollgate.CodeInvalidRequest, "SEND needs a destination header.")
	}
	if pr.cfg.SendTokenRequired && dest != DestRefresh {
		if err := pr.sendToken(ctx, s, f); err != nil {
			return nil, err
		}
	}
	if tx, ok := f.Get("transaction"); ok {
		return nil, s.buffer(tx, f)
	}
	return pr.publish(ctx, s, f)
}

// publish performs a SEND outside a transaction (or at its COMMIT).
func (pr *Protocol) publish(ctx context.Context, s *session, f *Frame) ([]Header, error) {
	dest := f.Value("destination")
	var room string
	switch {
	case dest == DestRefresh:
		return pr.refresh(ctx, s, f)
	case strings.HasPrefix(dest, topicPrefix):
		room = dest[len(topicPrefix):]
	case strings.HasPrefix(dest, appPrefix):
		room = dest[len(appPrefix):]
	default:
		return nil, tollgate.Errorf(tollgate.CodeInvalidRequest, "SEND to /topic/<room> or /app/<room>.")
	}
	if !utf8.Valid(f.Body) {
		return nil, tollgate.Errorf(tollgate.CodeInvalidRequest, "The body is not UTF-8 text.")
	}
	m, _, err := pr.cfg.Hub.Publish(ctx, s, room, string(f.Body), f.Value("client-id"))
	if err != nil {
		return nil, err
	}
	return []Header{{"message-id", strconv.FormatInt(m.ID, 10)}, {"destination", topicPrefix + m.Room}}, nil
}

// refresh extends the socket with a new access token for the same user
// and a live session (docs/api.md, "STOMP 1.2": SEND to /app/refresh).
func (pr *Protocol) refresh(ctx context.Context, s *session, f *Frame) ([]Header, error) {
	old := s.c.Principal()
	tok, present, err := bearer(f)
	if err != nil {
		return nil, violationOf(tollgate.NewError(tollgate.CodeUnauthenticated))
	}
	if !present {
		return nil, tollgate.Errorf(tollgate.CodeInvalidRequest, "refresh needs Authorization: Bearer <JWT>.")
	}
	if old.Anonymous {
		return nil, tollgate.Errorf(tollgate.CodeForbidden, "Anonymous sockets have nothing to refresh.")
	}
	p, err := pr.cfg.Verifier.VerifyAccess(ctx, tok)
	if err != nil {
		e := authFailure(err)
		if e.Code == tollgate.CodeUnavailable {
			return nil, e // keep the socket: the store is down, not the client's fault
		}
		return nil, violationOf(e)
	}
	if p.UserID != old.UserID {
		// A connection can never switch principal.
		return nil, violationOf(tollgate.NewError(tollgate.CodeUnauthenticated))
	}
	p.Credential = old.Credential
	s.c.SetPrincipal(p)
	pr.cfg.Hub.UpdatePrincipal(s)
	pr.cfg.Auditor.Record(ctx, tollgate.AuditEvent{TS: pr.cfg.Now().UTC(), Event: tollgate.AuditTokenRefreshed,
		User: p.Name, IP: s.c.Client().IP, ConnID: s.c.ID(), Credential: p.Credential, Reason: "in_band"})
	s.authEvent("refreshed", p.ExpiresAt)
	return []Header{{"expires-at", p.ExpiresAt.UTC().Format(time.RFC3339)}}, nil
}

// subscribe handles SUBSCRIBE to /topic/<room> (with optional since-id),
// /user/queue/errors or /user/queue/auth.
func (pr *Protocol) subscribe(ctx context.Context, s *session, f *Frame) error {
	dest, ok := f.Get("destination")
	if !ok {
		return violationf(tollgate.CodeInvalidRequest, "SUBSCRIBE needs a destination header.")
	}
	v := s.getVersion()
	id, hasID := f.Get("id")
	if !hasID && v >= V11 {
		return violationf(tollgate.CodeInvalidRequest, "SUBSCRIBE needs an id header.")
	}
	ack := f.Value("ack")
	switch ack {
	case "":
		ack = "auto"
	case "auto", "client", "client-individual":
	default:
		return violationf(tollgate.CodeInvalidRequest, "ack is auto, client or client-individual.")
	}
	if !hasID {
		id = dest // STOMP 1.0: the destination names the subscription
	}
	sub := &subscription{id: id, hasID: hasID, dest: dest, clientAck: ack != "auto"}
	var since int64 = -1
	switch {
	case dest == DestErrors || dest == DestAuth:
	case strings.HasPrefix(dest, topicPrefix):
		sub.room = dest[len(topicPrefix):]
		if !tollgate.ValidRoom(sub.room) {
			return tollgate.Errorf(tollgate.CodeInvalidRequest, "Room names are 1-64 of a-z 0-9 _ . -")
		}
		if raw, ok := f.Get("since-id"); ok {
			n, err := strconv.ParseInt(raw, 10, 64)
			if err != nil || n < 0 {
				return tollgate.Errorf(tollgate.CodeInvalidRequest, "since-id is a message id (0 or more).")
			}
			since = n
		}
	default:
		return tollgate.Errorf(tollgate.CodeInvalidRequest, "SUBSCRIBE to /topic/<room>, %s or %s.", DestErrors, DestAuth)
	}
	if err := s.addSubscription(sub, v); err != nil {
		return err
	}
	if sub.room == "" {
		return nil
	}
	if err := pr.joinRoom(ctx, s, sub, since); err != nil {
		if _, last := s.removeSubscription(sub.id); last {
			_ = pr.cfg.Hub.Leave(s, sub.room) // not_joined when Join itself failed
		}
		return err
	}
	return nil
}

// unsubscribe handles UNSUBSCRIBE: the room is left with its last subscription.
func (pr *Protocol) unsubscribe(s *session, f *Frame) error {
	id, ok := f.Get("id")
	if !ok && s.getVersion() == V10 {
		id, ok = f.Get("destination")
	}
	if !ok {
		return violationf(tollgate.CodeInvalidRequest, "UNSUBSCRIBE needs an id header.")
	}
	sub, last := s.removeSubscription(id)
	if sub == nil {
		return tollgate.Errorf(tollgate.CodeInvalidRequest, "No subscription with that id.")
	}
	if sub.room != "" && last {
		if err := pr.cfg.Hub.Leave(s, sub.room); err != nil && tollgate.ErrorCode(err) != tollgate.CodeNotJoined {
			return err
		}
	}
	return nil
}

// ack accepts ACK and NACK with the headers their version requires.
// Messages are delivered once (no redelivery), so both only check form.
func (pr *Protocol) ack(s *session, f *Frame) error {
	var need []string
	switch s.getVersion() {
	case V12:
		need = []string{"id"}
	case V11:
		need = []string{"message-id", "subscription"}
	default:
		need = []string{"message-id"}
	}
	for _, k := range need {
		if _, ok := f.Get(k); !ok {
			return violationf(tollgate.CodeInvalidRequest, "%s needs a %s header.", f.Command, k)
		}
	}
	if tx, ok := f.Get("transaction"); ok {
		if _, open := s.txs[tx]; !open {
			return violationf(tollgate.CodeInvalidRequest, "Unknown transaction.")
		}
	}
	return nil
}

// transaction handles BEGIN, COMMIT and ABORT. SENDs of a transaction are
// buffered (bounded by MaxTransactionFrames and MaxTransactionBytes) and
// published in order at COMMIT.
func (pr *Protocol) transaction(ctx context.Context, s *session, f *Frame) ([]Header, error) {
	tx, ok := f.Get("transaction")
	if !ok {
		return nil, violationf(tollgate.CodeInvalidRequest, "%s needs a transaction header.", f.Command)
	}
	t, open := s.txs[tx]
	switch f.Command {
	case CmdBegin:
		if open {
			return nil, violationf(tollgate.CodeInvalidRequest, "Transaction already begun.")
		}
		if len(s.txs) >= pr.cfg.MaxTransactions {
			return nil, violationf(tollgate.CodeInvalidRequest, "Too many open transactions (at most %d).", pr.cfg.MaxTransactions)
		}
		if s.txs == nil {
			s.txs = make(map[string]*transaction)
		}
		s.txs[tx] = &transaction{}
		return nil, nil
	case CmdAbort:
		if !open {
			return nil, violationf(tollgate.CodeInvalidRequest, "Unknown transaction.")
		}
		s.endTx(tx, t)
		return nil, nil
	}
	if !open {
		return nil, violationf(tollgate.CodeInvalidRequest, "Unknown transaction.")
	}
	s.endTx(tx, t)
	for _, sf := range t.sends {
		if _, err := pr.publish(ctx, s, sf); err != nil {
			var v *violation
			if errors.As(err, &v) {
				return nil, err
			}
			e := tollgate.AsError(err)
			if closesSocket(e.Code) {
				return nil, err
			}
			if e.Code == tollgate.CodeInternal || e.Code == tollgate.CodeUnavailable {
				pr.cfg.Logger.Error("stomp commit: send failed", "conn_id", s.c.ID(), "error", e.Err)
			}
			s.queueError(e, sf)
		}
	}
	return nil, nil
}
