package memory_test

import (
	"testing"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/internal/storetest"
	"github.com/tollgate-ws/tollgate/memory"
)

func TestUserStore(t *testing.T) {
	t.Parallel()
	storetest.Users(t, func(*testing.T) tollgate.UserStore { return memory.NewUserStore() })
}

func TestUserStoreZeroValue(t *testing.T) {
	t.Parallel()
	storetest.Users(t, func(*testing.T) tollgate.UserStore { return new(memory.UserStore) })
}

func TestSessionStore(t *testing.T) {
	t.Parallel()
	storetest.Sessions(t, func(*testing.T) (tollgate.UserStore, tollgate.SessionStore) {
		return memory.NewUserStore(), memory.NewSessionStore()
	})
}

func TestSessionStoreZeroValue(t *testing.T) {
	t.Parallel()
	storetest.Sessions(t, func(*testing.T) (tollgate.UserStore, tollgate.SessionStore) {
		return new(memory.UserStore), new(memory.SessionStore)
	})
}

func TestMessageStore(t *testing.T) {
	t.Parallel()
	storetest.Messages(t, func(*testing.T) tollgate.MessageStore { return memory.NewMessageStore() })
}

func TestMessageStoreZeroValue(t *testing.T) {
	t.Parallel()
	storetest.Messages(t, func(*testing.T) tollgate.MessageStore { return new(memory.MessageStore) })
}

func TestTicketStore(t *testing.T) {
	t.Parallel()
	storetest.Tickets(t, func(*testing.T) tollgate.TicketStore { return memory.NewTicketStore() })
}

func TestTicketStoreZeroValue(t *testing.T) {
	t.Parallel()
	storetest.Tickets(t, func(*testing.T) tollgate.TicketStore { return new(memory.TicketStore) })
}

func TestBroker(t *testing.T) {
	t.Parallel()
	storetest.Broker(t, func(*testing.T) tollgate.Broker { return memory.NewBroker() })
}
