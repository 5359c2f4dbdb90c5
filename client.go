package tollgate

import "time"

// ClientInfo is what the HTTP edge knows about the peer of a request: its IP
// (from X-Forwarded-For only behind a trusted proxy) and its Origin header.
type ClientInfo struct {
	IP string
	// Origin is the request's Origin header, "" when absent.
	Origin    string
	HasOrigin bool
}

// Tokens is the result of a login or refresh: a new access token and a new
// refresh token for one login session.
type Tokens struct {
	User             User
	SessionID        string
	Access           Secret
	AccessExpiresAt  time.Time
	Refresh          Secret
	RefreshExpiresAt time.Time
}
