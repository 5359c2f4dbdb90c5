package httpapi

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/tollgate-ws/tollgate"
)

// GET /ws: authenticate the upgrade before anything answers 101 (docs/api.md,
// "Opening a socket"). A request that is not a WebSocket upgrade is refused
// before any credential is looked at, so that it cannot spend a ticket; a
// refused handshake gets the JSON error with its code's status and never
// reaches the SocketAcceptor.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	code, credential := s.serveWS(w, r)
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Handshake(code, credential, s.now().Sub(start))
	}
}

// refuseWS answers a refused handshake and returns its code for the metrics.
func (s *Server) refuseWS(w http.ResponseWriter, r *http.Request, err error) (tollgate.Code, tollgate.CredentialKind) {
	s.writeError(w, r, err)
	code := tollgate.AsError(err).Code
	if code.HTTPStatus() == http.StatusInternalServerError {
		code = tollgate.CodeInternal
	}
	return code, tollgate.CredentialNone
}

// serveWS is handleWS without the metrics: it returns the code of a refusal
// ("" when the socket was handed to the acceptor) and the credential kind
// that opened the socket.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) (tollgate.Code, tollgate.CredentialKind) {
	if !isWebSocketUpgrade(r) {
		w.Header().Set("Sec-WebSocket-Version", "13")
		return s.refuseWS(w, r, tollgate.Errorf(tollgate.CodeInvalidRequest, "GET /ws expects a WebSocket upgrade (version 13)."))
	}
	if s.sockets == nil {
		return s.refuseWS(w, r, tollgate.NewError(tollgate.CodeUnavailable))
	}
	c := s.clientInfo(r)
	ctx := r.Context()
	// Cheap refusals first: a flood or a blocked IP never reaches a store
	// lookup of its credential.
	if err := s.guard.AllowHandshake(ctx, c.IP); err != nil {
		return s.refuseWS(w, r, err)
	}
	if err := s.guard.CheckBlocked(ctx, "", c.IP); err != nil {
		return s.refuseWS(w, r, err)
	}
	h, err := s.auth.AuthenticateHandshake(ctx, r, c)
	if err != nil {
		s.countFailure(r, c.IP, err)
		return s.refuseWS(w, r, err)
	}
	if h.Principal.UserID != "" {
		if err := s.guard.CheckBlocked(ctx, h.Principal.UserID, ""); err != nil {
			return s.refuseWS(w, r, err)
		}
	}
	slots := s.slots
	if h.Principal.Credential == tollgate.CredentialFirstMessage && h.Principal.UserID == "" {
		slots = s.pending // not authenticated yet: the small per-IP cap
	}
	release, err := slots.Acquire(h.Principal.UserID, c.IP)
	if err != nil {
		return s.refuseWS(w, r, err)
	}
	for k, v := range h.Header {
		w.Header()[k] = v // the acceptor copies these into the 101
	}
	s.sockets.AcceptSlot(w, r, h.Principal, c, release)
	return "", h.Principal.Credential
}

// isWebSocketUpgrade reports whether r is a well-formed RFC 6455 opening
// handshake: Connection contains the token "upgrade", Upgrade the token
// "websocket", Sec-WebSocket-Version is 13 and Sec-WebSocket-Key is 16 bytes
// in base64.
func isWebSocketUpgrade(r *http.Request) bool {
	if r.Method != http.MethodGet || !hasToken(r.Header, "Connection", "upgrade") || !hasToken(r.Header, "Upgrade", "websocket") {
		return false
	}
	if r.Header.Get("Sec-WebSocket-Version") != "13" {
		return false
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

// hasToken reports whether the comma-separated header name contains token,
// case-insensitively.
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
