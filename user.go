package tollgate

import (
	"context"
	"strings"
	"time"
)

// Username and password rules (docs/api.md, "Accounts and tokens").
const (
	MinUsernameLen = 3
	MaxUsernameLen = 32
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// User is an account. Names are unique case-insensitively.
type User struct {
	ID           string    `json:"id"`
	Name         string    `json:"username"`
	PasswordHash string    `json:"-"` // argon2id, PHC string format
	Admin        bool      `json:"admin"`
	Disabled     bool      `json:"-"`
	CreatedAt    time.Time `json:"-"`
}

// ValidUsername reports whether name is 3–32 of [A-Za-z0-9_.-].
func ValidUsername(name string) bool {
	if len(name) < MinUsernameLen || len(name) > MaxUsernameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// ValidPassword reports whether the password's length is within 8–1024 bytes.
func ValidPassword(p string) bool { return len(p) >= MinPasswordLen && len(p) <= MaxPasswordLen }

// FoldUsername is the case-insensitive key under which a name is unique.
func FoldUsername(name string) string { return strings.ToLower(name) }

// UserStore keeps accounts. Implementations are safe for concurrent use.
type UserStore interface {
	// CreateUser stores u (u.ID and u.PasswordHash set by the caller). It
	// returns ErrConflict when the name is taken, compared case-insensitively.
	CreateUser(ctx context.Context, u User) error
	// UserByName returns the user whose name folds to the same key, or ErrNotFound.
	UserByName(ctx context.Context, name string) (User, error)
	// UserByID returns the user or ErrNotFound.
	UserByID(ctx context.Context, id string) (User, error)
	// SetUserDisabled disables or re-enables a user; ErrNotFound if there is none.
	SetUserDisabled(ctx context.Context, id string, disabled bool) error
	// UsersByID returns the users among ids that exist, keyed by id, in one
	// round trip (used by periodic revalidation).
	UsersByID(ctx context.Context, ids []string) (map[string]User, error)
}
