package memory

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tollgate-ws/tollgate"
)

var _ tollgate.MessageStore = (*MessageStore)(nil)

// MessageStore is an in-process [tollgate.MessageStore], meant as a test
// double: per-room slices, without bounds. Ids start at 1 and are gap-free per
// room; a repeated non-empty ClientID of one user in one room returns the
// stored message instead of storing a new one.
//
// MessageStore is safe for concurrent use: one mutex serializes Append (so
// ids are handed out without gaps or duplicates), History and LastID take a
// read lock. "Durable" here means only that a returned Append is visible to
// every later call; nothing survives the process.
//
// The zero value is ready to use; [NewMessageStore] returns one.
type MessageStore struct {
	// Now stamps messages appended with a zero TS; nil means time.Now.
	// Set it before first use.
	Now func() time.Time

	mu    sync.RWMutex
	rooms map[string]*roomLog
}

type roomLog struct {
	msgs     []tollgate.Message // msgs[i].ID == i+1
	byClient map[clientKey]int64
}

type clientKey struct{ userID, clientID string }

// NewMessageStore returns an empty MessageStore.
func NewMessageStore() *MessageStore {
	return &MessageStore{rooms: make(map[string]*roomLog)}
}

// Append stores m with the room's next id (m.ID is ignored; a zero m.TS
// becomes Now in UTC) and returns the stored message. If m.UserID already
// stored a message with the same non-empty m.ClientID in m.Room, it stores
// nothing and returns that message with duplicate true. Safe for concurrent
// use.
func (s *MessageStore) Append(ctx context.Context, m tollgate.Message) (tollgate.Message, bool, error) {
	if err := ctx.Err(); err != nil {
		return tollgate.Message{}, false, fmt.Errorf("memory: append message: %w", err)
	}
	if m.TS.IsZero() {
		m.TS = s.now().UTC()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms == nil {
		s.rooms = make(map[string]*roomLog)
	}
	r := s.rooms[m.Room]
	if r == nil {
		r = &roomLog{byClient: make(map[clientKey]int64)}
		s.rooms[m.Room] = r
	}
	key := clientKey{m.UserID, m.ClientID}
	if m.ClientID != "" {
		if id, ok := r.byClient[key]; ok {
			return r.msgs[id-1], true, nil
		}
	}
	m.ID = int64(len(r.msgs)) + 1
	r.msgs = append(r.msgs, m)
	if m.ClientID != "" {
		r.byClient[key] = m.ID
	}
	return m, false, nil
}

// History returns up to limit messages of room with ID > since, oldest first;
// limit is clamped to 1..[tollgate.MaxHistoryLimit] and a negative since
// counts as 0. The slice is the caller's. Safe for concurrent use.
func (s *MessageStore) History(ctx context.Context, room string, since int64, limit int) ([]tollgate.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: history of %s: %w", room, err)
	}
	limit = min(max(limit, 1), tollgate.MaxHistoryLimit)
	since = max(since, 0)
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.rooms[room]
	if r == nil || since >= int64(len(r.msgs)) {
		return []tollgate.Message{}, nil
	}
	msgs := r.msgs[since:]
	msgs = msgs[:min(len(msgs), limit)]
	return append([]tollgate.Message(nil), msgs...), nil
}

// LastID returns the newest id of room, 0 when it has no messages. Safe for
// concurrent use.
func (s *MessageStore) LastID(ctx context.Context, room string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memory: last id of %s: %w", room, err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.rooms[room]; r != nil {
		return int64(len(r.msgs)), nil
	}
	return 0, nil
}

func (s *MessageStore) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}
