package httpapi

import (
	"context"
	"net/http"

	"github.com/tollgate-ws/tollgate"
)

// Guard is the abuse control of the edge (docs/api.md, "Limits and blocks");
// limit.Limiter implements it. Every refusal is a *tollgate.Error: 429
// rate_limited with RetryAfter, 403 blocked, or 503 unavailable when its
// store is down (fail closed).
type Guard interface {
	// AllowLogin takes one login attempt of ip and username.
	AllowLogin(ctx context.Context, ip, username string) error
	// AllowHandshake takes one WebSocket handshake of ip.
	AllowHandshake(ctx context.Context, ip string) error
	// CheckBlocked refuses a blocked user or IP; an empty argument is not checked.
	CheckBlocked(ctx context.Context, userID, ip string) error
	// FailedAuth counts a failed login or handshake of ip toward an IP block.
	FailedAuth(ctx context.Context, ip string) error
}

// SocketSlots caps concurrent sockets per user, per IP and in total;
// limit.Sockets implements it. Acquire's refusal is a *tollgate.Error
// (429 rate_limited with RetryAfter).
type SocketSlots interface {
	Acquire(userID, ip string) (release func(), err error)
}

// noGuard allows everything: the Guard of a Server built without one.
type noGuard struct{}

func (noGuard) AllowLogin(context.Context, string, string) error { return nil }
func (noGuard) AllowHandshake(context.Context, string) error     { return nil }
func (noGuard) CheckBlocked(context.Context, string, string) error {
	return nil
}
func (noGuard) FailedAuth(context.Context, string) error { return nil }

// noSlots never refuses.
type noSlots struct{}

func (noSlots) Acquire(string, string) (func(), error) { return func() {}, nil }

// failedAuth reports whether err is a failed credential that counts toward
// an IP block: a wrong password, a bad token or ticket. Refusals for other
// reasons (malformed bodies, Origin, blocks, store outages) do not.
func failedAuth(err error) bool {
	switch tollgate.AsError(err).Code {
	case tollgate.CodeInvalidCredentials, tollgate.CodeUnauthenticated, tollgate.CodeInvalidTicket, tollgate.CodeTokenExpired:
		return true
	}
	return false
}

// countFailure tells the Guard about a failed credential; a store failure
// there is logged, the request is refused anyway.
func (s *Server) countFailure(r *http.Request, ip string, err error) {
	if !failedAuth(err) {
		return
	}
	if ferr := s.guard.FailedAuth(r.Context(), ip); ferr != nil {
		s.log.Warn("counting a failed authentication failed", "error", ferr)
	}
}
