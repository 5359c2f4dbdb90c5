package tollgate

import (
	"context"
	"time"
)

// AuditKind is an audit event name (docs/api.md, "Audit log").
type AuditKind string

// Audit events.
const (
	AuditLogin             AuditKind = "login"
	AuditLoginFailed       AuditKind = "login_failed"
	AuditRegister          AuditKind = "register"
	AuditLogout            AuditKind = "logout"
	AuditTicketIssued      AuditKind = "ticket_issued"
	AuditConnect           AuditKind = "connect"
	AuditHandshakeRejected AuditKind = "handshake_rejected"
	AuditDisconnect        AuditKind = "disconnect"
	AuditRateLimited       AuditKind = "rate_limited"
	AuditBlocked           AuditKind = "blocked"
	AuditUnblocked         AuditKind = "unblocked"
	AuditTokenRefreshed    AuditKind = "token_refreshed"
	AuditSessionRevoked    AuditKind = "session_revoked"
	AuditLegacyTokenUsed   AuditKind = "legacy_token_used"
)

// AuditEvent is one audit record. It never holds a secret: Credential is the
// kind of credential, never its value.
type AuditEvent struct {
	TS         time.Time      `json:"ts"`
	Event      AuditKind      `json:"event"`
	User       string         `json:"user,omitempty"`
	IP         string         `json:"ip,omitempty"`
	Origin     string         `json:"origin,omitempty"`
	ConnID     string         `json:"conn_id,omitempty"`
	Credential CredentialKind `json:"credential,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Code       int            `json:"code,omitempty"`    // disconnect: close code
	Seconds    float64        `json:"seconds,omitempty"` // disconnect: socket lifetime
}

// Auditor records audit events. Record must not block a hot path for long
// and is safe for concurrent use.
type Auditor interface {
	Record(ctx context.Context, e AuditEvent)
}

// NopAuditor discards every event.
type NopAuditor struct{}

// Record implements Auditor.
func (NopAuditor) Record(context.Context, AuditEvent) {}
