package tollgate

import (
	"context"
	"time"
)

// Session is one login: every access token, refresh token and ticket minted
// from that login names it (the JWT `sid` claim). Revoking it makes all of
// them useless and closes its live sockets.
type Session struct {
	ID        string
	UserID    string
	CreatedAt time.Time
	ExpiresAt time.Time // the session's refresh horizon
	RevokedAt time.Time // zero while live
}

// Live reports whether s is neither revoked nor expired at now.
func (s Session) Live(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt)
}

// RefreshToken is the stored side of an opaque refresh token: only its hash.
type RefreshToken struct {
	Hash      string // hex SHA-256 of the token value
	SessionID string
	ExpiresAt time.Time
}

// SessionStore keeps login sessions and their refresh tokens. Implementations
// are safe for concurrent use.
type SessionStore interface {
	// CreateSession stores s together with its first refresh token.
	CreateSession(ctx context.Context, s Session, first RefreshToken) error
	// Session returns the session or ErrNotFound.
	Session(ctx context.Context, id string) (Session, error)
	// RevokeSession marks the session revoked at `at` (idempotent);
	// ErrNotFound if there is none.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokeUserSessions revokes every live session of the user and returns
	// their ids.
	RevokeUserSessions(ctx context.Context, userID string, at time.Time) ([]string, error)
	// RotateRefresh spends the refresh token whose hash is oldHash and stores
	// next for the same session, atomically. It returns the session. If the
	// token is unknown or expired: ErrNotFound. If it was already spent: the
	// session and ErrReused (the caller revokes the session: theft).
	RotateRefresh(ctx context.Context, oldHash string, next RefreshToken, now time.Time) (Session, error)
	// SessionsByID returns the sessions among ids that exist, keyed by id, in
	// one round trip (used by periodic revalidation).
	SessionsByID(ctx context.Context, ids []string) (map[string]Session, error)
}
