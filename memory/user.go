package memory

import (
	"context"
	"fmt"
	"sync"

	"github.com/tollgate-ws/tollgate"
)

var _ tollgate.UserStore = (*UserStore)(nil)

// UserStore is an in-process [tollgate.UserStore], meant as a test double.
// Names are unique under [tollgate.FoldUsername]. It is safe for concurrent
// use: writes hold a mutex, reads a read lock, and every method sees the
// effect of every write that returned before it was called.
//
// The zero value is ready to use; [NewUserStore] returns one.
type UserStore struct {
	mu     sync.RWMutex
	byID   map[string]tollgate.User
	byName map[string]string // folded name -> id
}

// NewUserStore returns an empty UserStore.
func NewUserStore() *UserStore {
	return &UserStore{byID: make(map[string]tollgate.User), byName: make(map[string]string)}
}

// CreateUser stores u. It returns an error wrapping [tollgate.ErrConflict]
// when u.ID is taken or another user's name folds to the same key. Safe for
// concurrent use: of concurrent creates of one name exactly one succeeds.
func (s *UserStore) CreateUser(ctx context.Context, u tollgate.User) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: create user: %w", err)
	}
	key := tollgate.FoldUsername(u.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = make(map[string]tollgate.User)
		s.byName = make(map[string]string)
	}
	if _, ok := s.byID[u.ID]; ok {
		return fmt.Errorf("memory: create user %s: id taken: %w", u.ID, tollgate.ErrConflict)
	}
	if _, ok := s.byName[key]; ok {
		return fmt.Errorf("memory: create user %s: name taken: %w", u.ID, tollgate.ErrConflict)
	}
	s.byID[u.ID] = u
	s.byName[key] = u.ID
	return nil
}

// UserByName returns the user whose name folds to the same key as name, or an
// error wrapping [tollgate.ErrNotFound]. Safe for concurrent use.
func (s *UserStore) UserByName(ctx context.Context, name string) (tollgate.User, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.User{}, fmt.Errorf("memory: user by name: %w", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, ok := s.byName[tollgate.FoldUsername(name)]
	if !ok {
		return tollgate.User{}, fmt.Errorf("memory: user by name: %w", tollgate.ErrNotFound)
	}
	return s.byID[id], nil
}

// UserByID returns the user or an error wrapping [tollgate.ErrNotFound]. Safe
// for concurrent use.
func (s *UserStore) UserByID(ctx context.Context, id string) (tollgate.User, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.User{}, fmt.Errorf("memory: user %s: %w", id, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.byID[id]
	if !ok {
		return tollgate.User{}, fmt.Errorf("memory: user %s: %w", id, tollgate.ErrNotFound)
	}
	return u, nil
}

// SetUserDisabled disables or re-enables the user; an error wrapping
// [tollgate.ErrNotFound] if there is none. Safe for concurrent use.
func (s *UserStore) SetUserDisabled(ctx context.Context, id string, disabled bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: set user %s disabled: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.byID[id]
	if !ok {
		return fmt.Errorf("memory: set user %s disabled: %w", id, tollgate.ErrNotFound)
	}
	u.Disabled = disabled
	s.byID[id] = u
	return nil
}

// UsersByID returns the users among ids that exist, keyed by id; unknown ids
// are left out, and the map is never nil. Safe for concurrent use.
func (s *UserStore) UsersByID(ctx context.Context, ids []string) (map[string]tollgate.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: users by id: %w", err)
	}
	out := make(map[string]tollgate.User, len(ids))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, id := range ids {
		if u, ok := s.byID[id]; ok {
			out[id] = u
		}
	}
	return out, nil
}
