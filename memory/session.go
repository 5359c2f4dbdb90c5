package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
)

var _ tollgate.SessionStore = (*SessionStore)(nil)

// errEmptyHash refuses a refresh token without a hash: stored, it would match
// a caller that hashed nothing.
var errEmptyHash = errors.New("empty refresh token hash")

// SessionStore is an in-process [tollgate.SessionStore], meant as a test
// double. It knows nothing of users: CreateSession accepts any user id. It
// keeps spent refresh tokens until the session ends so that their reuse is
// recognised ([tollgate.ErrReused]).
//
// SessionStore is safe for concurrent use: one mutex guards every method, so
// RotateRefresh is atomic and of concurrent rotations of one token exactly one
// succeeds; the others get ErrReused.
//
// The zero value is ready to use; [NewSessionStore] returns one.
type SessionStore struct {
	mu       sync.Mutex
	sessions map[string]tollgate.Session
	byUser   map[string]map[string]struct{} // user id -> session ids
	tokens   map[string]*refreshToken       // hash -> token
}

type refreshToken struct {
	tollgate.RefreshToken
	spent bool
}

// NewSessionStore returns an empty SessionStore.
func NewSessionStore() *SessionStore {
	s := &SessionStore{}
	s.init()
	return s
}

func (s *SessionStore) init() {
	if s.sessions == nil {
		s.sessions = make(map[string]tollgate.Session)
		s.byUser = make(map[string]map[string]struct{})
		s.tokens = make(map[string]*refreshToken)
	}
}

// CreateSession stores sess together with its first refresh token, which
// belongs to sess whatever first.SessionID says. It returns an error wrapping
// [tollgate.ErrConflict] when the session id or the token hash is taken, and
// an error when first.Hash is empty. Safe for concurrent use.
func (s *SessionStore) CreateSession(ctx context.Context, sess tollgate.Session, first tollgate.RefreshToken) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: create session: %w", err)
	}
	if first.Hash == "" {
		return fmt.Errorf("memory: create session %s: %w", sess.ID, errEmptyHash)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if _, ok := s.sessions[sess.ID]; ok {
		return fmt.Errorf("memory: create session %s: id taken: %w", sess.ID, tollgate.ErrConflict)
	}
	if _, ok := s.tokens[first.Hash]; ok {
		return fmt.Errorf("memory: create session %s: refresh token exists: %w", sess.ID, tollgate.ErrConflict)
	}
	s.sessions[sess.ID] = sess
	ids := s.byUser[sess.UserID]
	if ids == nil {
		ids = make(map[string]struct{})
		s.byUser[sess.UserID] = ids
	}
	ids[sess.ID] = struct{}{}
	first.SessionID = sess.ID
	s.tokens[first.Hash] = &refreshToken{RefreshToken: first}
	return nil
}

// Session returns the session, revoked or expired ones included, or an error
// wrapping [tollgate.ErrNotFound]. Safe for concurrent use.
func (s *SessionStore) Session(ctx context.Context, id string) (tollgate.Session, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.Session{}, fmt.Errorf("memory: session %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return tollgate.Session{}, fmt.Errorf("memory: session %s: %w", id, tollgate.ErrNotFound)
	}
	return sess, nil
}

// RevokeSession marks the session revoked at `at`. It is idempotent: a
// session already revoked keeps its first revocation time. It returns an
// error wrapping [tollgate.ErrNotFound] if there is no such session. Safe for
// concurrent use.
func (s *SessionStore) RevokeSession(ctx context.Context, id string, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: revoke session %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return fmt.Errorf("memory: revoke session %s: %w", id, tollgate.ErrNotFound)
	}
	if sess.RevokedAt.IsZero() {
		sess.RevokedAt = at
		s.sessions[id] = sess
	}
	return nil
}

// RevokeUserSessions revokes, at `at`, every session of the user that is live
// at `at` ([tollgate.Session.Live]) and returns their ids in ascending order;
// sessions already revoked or expired are left as they are. Safe for
// concurrent use.
func (s *SessionStore) RevokeUserSessions(ctx context.Context, userID string, at time.Time) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: revoke sessions of user %s: %w", userID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var revoked []string
	for id := range s.byUser[userID] {
		sess := s.sessions[id]
		if !sess.Live(at) {
			continue
		}
		sess.RevokedAt = at
		s.sessions[id] = sess
		revoked = append(revoked, id)
	}
	slices.Sort(revoked)
	return revoked, nil
}

// RotateRefresh spends the refresh token whose hash is oldHash and stores next
// for the same session (whatever next.SessionID says), atomically, and returns
// the session. In this order: an unknown token, or one expired at now, gives
// an error wrapping [tollgate.ErrNotFound]; a token already spent gives the
// session and an error wrapping [tollgate.ErrReused]; a next.Hash that is
// taken gives [tollgate.ErrConflict] and spends nothing. It checks neither
// the session's expiry nor its revocation: the caller does. Safe for
// concurrent use: of concurrent rotations of one token exactly one succeeds.
func (s *SessionStore) RotateRefresh(ctx context.Context, oldHash string, next tollgate.RefreshToken, now time.Time) (tollgate.Session, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.Session{}, fmt.Errorf("memory: rotate refresh token: %w", err)
	}
	if next.Hash == "" {
		return tollgate.Session{}, fmt.Errorf("memory: rotate refresh token: %w", errEmptyHash)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.tokens[oldHash]
	if !ok || !now.Before(old.ExpiresAt) {
		return tollgate.Session{}, fmt.Errorf("memory: rotate refresh token: %w", tollgate.ErrNotFound)
	}
	sess, ok := s.sessions[old.SessionID]
	if !ok {
		return tollgate.Session{}, fmt.Errorf("memory: rotate refresh token: %w", tollgate.ErrNotFound)
	}
	if old.spent {
		return sess, fmt.Errorf("memory: rotate refresh token of session %s: %w", sess.ID, tollgate.ErrReused)
	}
	if _, ok := s.tokens[next.Hash]; ok {
		return tollgate.Session{}, fmt.Errorf("memory: rotate refresh token of session %s: next token exists: %w", sess.ID, tollgate.ErrConflict)
	}
	old.spent = true
	next.SessionID = sess.ID
	s.tokens[next.Hash] = &refreshToken{RefreshToken: next}
	return sess, nil
}

// SessionsByID returns the sessions among ids that exist, keyed by id;
// unknown ids are left out, and the map is never nil. Safe for concurrent use.
func (s *SessionStore) SessionsByID(ctx context.Context, ids []string) (map[string]tollgate.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: sessions by id: %w", err)
	}
	out := make(map[string]tollgate.Session, len(ids))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if sess, ok := s.sessions[id]; ok {
			out[id] = sess
		}
	}
	return out, nil
}
