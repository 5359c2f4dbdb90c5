package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/internal/storetest"
	"github.com/tollgate-ws/tollgate/sqlite"
)

// openTemp opens a new database file in a temporary directory; it is closed
// when the test ends.
func openTemp(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "tollgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestUsers(t *testing.T) {
	t.Parallel()
	storetest.Users(t, func(t *testing.T) tollgate.UserStore { return openTemp(t) })
}

func TestSessions(t *testing.T) {
	t.Parallel()
	storetest.Sessions(t, func(t *testing.T) (tollgate.UserStore, tollgate.SessionStore) {
		db := openTemp(t)
		return db, db
	})
}

func TestMessages(t *testing.T) {
	t.Parallel()
	storetest.Messages(t, func(t *testing.T) tollgate.MessageStore { return openTemp(t) })
}
