package tollgate

import (
	"context"
	"time"
)

// CredentialKind names how a request or socket was authenticated. It is a
// closed set: it appears in logs, audit lines and metric labels.
type CredentialKind string

// Credential kinds in the contract's order (docs/api.md, "Opening a socket").
const (
	CredentialBearer       CredentialKind = "bearer"
	CredentialTicket       CredentialKind = "ticket"
	CredentialCookie       CredentialKind = "cookie"
	CredentialLegacyToken  CredentialKind = "legacy_token"
	CredentialAnonymous    CredentialKind = "anonymous"
	CredentialFirstMessage CredentialKind = "first_message"
	CredentialNone         CredentialKind = "none"
)

// Principal is who a request or socket acts for, after authentication.
type Principal struct {
	UserID    string
	Name      string
	SessionID string // login session (JWT sid); "" for anonymous principals
	TokenID   string // JWT jti, when the credential was a JWT
	Admin     bool
	Anonymous bool
	// Credential is how the principal was authenticated.
	Credential CredentialKind
	// ExpiresAt is when the credential stops being valid; a socket is
	// warned before and closed at that time unless refreshed. Zero: never.
	ExpiresAt time.Time
	// Issuer is the JWT issuer for tokens of an external identity provider;
	// "" for tollgate's own tokens.
	Issuer string
}

type contextKey struct{ name string }

func (k *contextKey) String() string { return "tollgate context value " + k.name }

var connIDKey = &contextKey{"conn_id"}

// NewContextWithConnID returns a copy of ctx carrying a connection id.
func NewContextWithConnID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, connIDKey, id)
}

// ConnIDFromContext returns the connection id carried by ctx, or "".
func ConnIDFromContext(ctx context.Context) string {
	s, _ := ctx.Value(connIDKey).(string)
	return s
}
