package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// refreshBytes is the entropy of a refresh token: 256 bits (docs/api.md,
// "Accounts and tokens").
const refreshBytes = 32

// maxRefreshLen bounds a presented refresh token before it is hashed.
const maxRefreshLen = 256

// hashWait bounds how long a request waits for a password hashing slot.
const hashWait = 10 * time.Second

var (
	errRegistrationClosed = errors.New("auth: registration is closed")
	errBadCredentials     = errors.New("auth: unknown user, wrong password or disabled user")
	errRefreshUnknown     = errors.New("auth: refresh token unknown, expired or malformed")
	errRefreshReused      = errors.New("auth: spent refresh token presented again; session revoked")
	errUserGone           = errors.New("auth: user unknown or disabled")
)

// Register creates an account (POST /api/auth/register). The name must be
// 3–32 of [A-Za-z0-9_.-] and the password 8–1024 bytes (invalid_request
// otherwise); the password is stored as an argon2id hash and the user id is
// 16 random bytes in hex. Errors: forbidden when registration is closed,
// username_taken when the name is taken (case-insensitively), unavailable
// when the store or the hashing slots are exhausted. Safe for concurrent use.
func (s *Service) Register(ctx context.Context, name string, password tollgate.Secret, c tollgate.ClientInfo) (tollgate.User, error) {
	if s.cfg.RegistrationClosed {
		return tollgate.User{}, tollgate.WrapError(tollgate.CodeForbidden, errRegistrationClosed)
	}
	return s.CreateUser(ctx, name, password, false, c)
}

// CreateUser creates an account the way the operator does (tollgate user
// add): like [Service.Register], but whether or not registration is open,
// and with the admin role when admin is true. It has the same rules and
// errors as Register otherwise.
func (s *Service) CreateUser(ctx context.Context, name string, password tollgate.Secret, admin bool, c tollgate.ClientInfo) (tollgate.User, error) {
	if !tollgate.ValidUsername(name) {
		return tollgate.User{}, tollgate.Errorf(tollgate.CodeInvalidRequest, "A username is 3 to 32 of A-Z, a-z, 0-9, '_', '.' and '-'.")
	}
	if !tollgate.ValidPassword(password.Reveal()) {
		return tollgate.User{}, tollgate.Errorf(tollgate.CodeInvalidRequest, "A password is 8 to 1024 bytes.")
	}
	hctx, cancel := context.WithTimeout(ctx, hashWait)
	hash, err := s.hasher.hash(hctx, password)
	cancel()
	if err != nil {
		return tollgate.User{}, err
	}
	u := tollgate.User{ID: randomHex(16), Name: name, PasswordHash: hash, Admin: admin, CreatedAt: s.now()}
	sctx, cancel := s.storeCtx(ctx)
	err = s.users.CreateUser(sctx, u)
	cancel()
	switch {
	case errors.Is(err, tollgate.ErrConflict):
		return tollgate.User{}, tollgate.NewError(tollgate.CodeUsernameTaken)
	case err != nil:
		return tollgate.User{}, storeError("create user", err)
	}
	s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditRegister, User: u.ID, IP: c.IP, Origin: c.Origin})
	u.PasswordHash = ""
	return u, nil
}

// Login checks a name and password and starts a login session: it returns a
// new access token and a refresh token (32 random bytes, stored only as the
// hex SHA-256). Unknown users, wrong passwords and disabled users all get
// invalid_credentials after exactly one argon2id verify (unknown users
// against a dummy hash), so the answer and its timing do not tell them apart
// (docs/api.md, "Errors"). A name or password of impossible shape is
// invalid_request; a store that is down is unavailable. Safe for concurrent
// use.
func (s *Service) Login(ctx context.Context, name string, password tollgate.Secret, c tollgate.ClientInfo) (tollgate.Tokens, error) {
	if !tollgate.ValidUsername(name) || !tollgate.ValidPassword(password.Reveal()) {
		s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditLoginFailed, IP: c.IP, Origin: c.Origin, Reason: "malformed"})
		return tollgate.Tokens{}, tollgate.NewError(tollgate.CodeInvalidRequest)
	}
	sctx, cancel := s.storeCtx(ctx)
	u, err := s.users.UserByName(sctx, name)
	cancel()
	known := true
	switch {
	case errors.Is(err, tollgate.ErrNotFound):
		known = false
		u = tollgate.User{PasswordHash: s.dummy}
	case err != nil:
		return tollgate.Tokens{}, storeError("load user", err)
	}
	hctx, cancel := context.WithTimeout(ctx, hashWait)
	ok, err := s.hasher.verify(hctx, password, u.PasswordHash)
	cancel()
	if err != nil {
		var te *tollgate.Error
		if errors.As(err, &te) {
			return tollgate.Tokens{}, te // no hashing slot in time
		}
		s.log.Error("a stored password hash cannot be checked", "user", u.ID, "error", err)
		ok = false
	}
	if !known || !ok || u.Disabled {
		reason := "bad_password"
		switch {
		case !known:
			reason = "unknown_user"
		case ok && u.Disabled:
			reason = "disabled"
		}
		s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditLoginFailed, User: u.ID, IP: c.IP, Origin: c.Origin, Reason: reason})
		return tollgate.Tokens{}, tollgate.WrapError(tollgate.CodeInvalidCredentials, errBadCredentials)
	}

	now := s.now()
	sess := tollgate.Session{ID: randomHex(16), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)}
	refresh, refreshHash := newRefreshToken()
	sctx, cancel = s.storeCtx(ctx)
	err = s.sessions.CreateSession(sctx, sess, tollgate.RefreshToken{Hash: refreshHash, SessionID: sess.ID, ExpiresAt: sess.ExpiresAt})
	cancel()
	if err != nil {
		return tollgate.Tokens{}, storeError("create session", err)
	}
	access, accessExp, err := s.issueAccess(u, sess.ID, now, sess.ExpiresAt)
	if err != nil {
		return tollgate.Tokens{}, err
	}
	s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditLogin, User: u.ID, IP: c.IP, Origin: c.Origin})
	u.PasswordHash = ""
	return tollgate.Tokens{
		User: u, SessionID: sess.ID,
		Access: access, AccessExpiresAt: accessExp,
		Refresh: refresh, RefreshExpiresAt: sess.ExpiresAt,
	}, nil
}

// Refresh spends a refresh token and returns a new access token and a new
// refresh token for the same session (POST /api/auth/refresh). Rotation is
// atomic ([tollgate.SessionStore.RotateRefresh]). Presenting a token that was
// already spent means it was stolen (or the client is confused): the whole
// session is revoked, its live sockets are closed, and the answer is
// unauthenticated (docs/api.md, "Accounts and tokens"). An unknown or expired
// token, a revoked session and a disabled user are unauthenticated too. Safe
// for concurrent use: of concurrent refreshes with one token exactly one
// succeeds and the others revoke the session.
func (s *Service) Refresh(ctx context.Context, refresh tollgate.Secret, c tollgate.ClientInfo) (tollgate.Tokens, error) {
	if refresh.Empty() || len(refresh.Reveal()) > maxRefreshLen {
		return tollgate.Tokens{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errRefreshUnknown)
	}
	now := s.now()
	next, nextHash := newRefreshToken()
	sctx, cancel := s.storeCtx(ctx)
	sess, err := s.sessions.RotateRefresh(sctx, hashRefresh(refresh), tollgate.RefreshToken{Hash: nextHash, ExpiresAt: now.Add(s.cfg.RefreshTTL)}, now)
	cancel()
	switch {
	case errors.Is(err, tollgate.ErrReused):
		s.log.Warn("a spent refresh token was presented again; revoking its session", "user", sess.UserID, "ip", c.IP)
		if rerr := s.revoke(ctx, sess.ID, tollgate.AuditSessionRevoked, "refresh_token_reused", c, sess.UserID); rerr != nil {
			return tollgate.Tokens{}, rerr
		}
		return tollgate.Tokens{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errRefreshReused)
	case errors.Is(err, tollgate.ErrNotFound):
		return tollgate.Tokens{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errRefreshUnknown)
	case err != nil:
		return tollgate.Tokens{}, storeError("rotate refresh token", err)
	case !sess.Live(now):
		return tollgate.Tokens{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errSessionDead)
	}
	sctx, cancel = s.storeCtx(ctx)
	u, err := s.users.UserByID(sctx, sess.UserID)
	cancel()
	switch {
	case errors.Is(err, tollgate.ErrNotFound):
		return tollgate.Tokens{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errUserGone)
	case err != nil:
		return tollgate.Tokens{}, storeError("load user", err)
	case u.Disabled:
		return tollgate.Tokens{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errUserGone)
	}
	access, accessExp, err := s.issueAccess(u, sess.ID, now, sess.ExpiresAt)
	if err != nil {
		return tollgate.Tokens{}, err
	}
	s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditTokenRefreshed, User: u.ID, IP: c.IP, Origin: c.Origin})
	u.PasswordHash = ""
	return tollgate.Tokens{
		User: u, SessionID: sess.ID,
		Access: access, AccessExpiresAt: accessExp,
		Refresh: next, RefreshExpiresAt: minTime(now.Add(s.cfg.RefreshTTL), sess.ExpiresAt),
	}, nil
}

// Logout revokes p's login session and closes its live sockets on every
// node (POST /api/auth/logout). A principal without a session (anonymous, an
// external provider's token) has nothing to revoke: Logout returns nil.
// Revoking twice is not an error. Safe for concurrent use.
func (s *Service) Logout(ctx context.Context, p tollgate.Principal, c tollgate.ClientInfo) error {
	if p.SessionID == "" {
		return nil
	}
	return s.revoke(ctx, p.SessionID, tollgate.AuditLogout, "logout", c, p.UserID)
}

// DisableUser disables an account, revokes all its live sessions and closes
// its sockets on every node with user_disabled. It is what keeps a disabled
// user out at once: every token check reads the session (the session cache
// drops the user's sessions first, see [Service.ForgetRevoked]). Errors: not_found
// for an unknown user, unavailable when a store is down. Safe for concurrent
// use.
func (s *Service) DisableUser(ctx context.Context, userID string, c tollgate.ClientInfo) error {
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	err := s.users.SetUserDisabled(sctx, userID, true)
	switch {
	case errors.Is(err, tollgate.ErrNotFound):
		return tollgate.NewError(tollgate.CodeNotFound)
	case err != nil:
		return storeError("disable user", err)
	}
	now := s.now()
	ids, err := s.sessions.RevokeUserSessions(sctx, userID, now)
	if err != nil {
		return storeError("revoke the user's sessions", err)
	}
	s.closeSockets(ctx, tollgate.ControlEvent{Kind: tollgate.ControlDisableUser, Target: userID, Code: tollgate.CodeUserDisabled, At: now})
	for range ids {
		s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditSessionRevoked, User: userID, IP: c.IP, Origin: c.Origin, Reason: "user_disabled"})
	}
	return nil
}

// newRefreshToken returns a fresh refresh token and the hash it is stored
// under.
func newRefreshToken() (tollgate.Secret, string) {
	b := make([]byte, refreshBytes)
	randRead(b)
	t := tollgate.Secret(base64.RawURLEncoding.EncodeToString(b))
	return t, hashRefresh(t)
}

// hashRefresh is the stored form of a refresh token: hex SHA-256. The token
// has 256 bits of entropy, so a fast hash is enough; the store never holds
// the value.
func hashRefresh(t tollgate.Secret) string {
	h := sha256.Sum256([]byte(t.Reveal()))
	return hex.EncodeToString(h[:])
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// UserNamed returns the account named name (compared case-insensitively)
// without its password hash, for the admin API. Errors: not_found,
// unavailable.
func (s *Service) UserNamed(ctx context.Context, name string) (tollgate.User, error) {
	if !tollgate.ValidUsername(name) {
		return tollgate.User{}, tollgate.NewError(tollgate.CodeNotFound)
	}
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	u, err := s.users.UserByName(sctx, name)
	return withoutHash(u, err)
}

// UserByID returns the account with id userID without its password hash.
// Errors: not_found, unavailable.
func (s *Service) UserByID(ctx context.Context, userID string) (tollgate.User, error) {
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	u, err := s.users.UserByID(sctx, userID)
	return withoutHash(u, err)
}

func withoutHash(u tollgate.User, err error) (tollgate.User, error) {
	switch {
	case errors.Is(err, tollgate.ErrNotFound):
		return tollgate.User{}, tollgate.NewError(tollgate.CodeNotFound)
	case err != nil:
		return tollgate.User{}, storeError("look up user", err)
	}
	u.PasswordHash = ""
	return u, nil
}

// RevokeUserSessions revokes every live login session of userID and closes
// their sockets on every node with session_revoked (the admin's "revoke all
// sessions of a user"); the account stays usable for a new login. It
// returns how many sessions were revoked. Errors: unavailable.
func (s *Service) RevokeUserSessions(ctx context.Context, userID string, c tollgate.ClientInfo) (int, error) {
	now := s.now()
	sctx, cancel := s.storeCtx(ctx)
	ids, err := s.sessions.RevokeUserSessions(sctx, userID, now)
	cancel()
	if err != nil {
		return 0, storeError("revoke the user's sessions", err)
	}
	for _, id := range ids {
		s.closeSockets(ctx, tollgate.ControlEvent{Kind: tollgate.ControlRevokeSession, Target: id, Code: tollgate.CodeSessionRevoked, At: now})
		s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditSessionRevoked, User: userID, IP: c.IP, Origin: c.Origin, Reason: "admin"})
	}
	return len(ids), nil
}
