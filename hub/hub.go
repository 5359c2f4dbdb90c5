package hub

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Conn is a live socket as the hub sees it. Implementations are safe for
// concurrent use; Deliver and Close never block.
type Conn interface {
	ID() string
	Principal() tollgate.Principal
	Client() tollgate.ClientInfo
	// Deliver queues a room message; false if the socket is gone or was cut.
	Deliver(d *Delivery) bool
	// Close closes the socket with err's close code after queued frames.
	Close(err *tollgate.Error)
}

// PublishLimiter decides whether a principal may publish now (rate limits,
// blocks). A refusal is a *tollgate.Error (rate_limited with RetryAfter, or
// blocked, which closes the socket).
type PublishLimiter interface {
	AllowPublish(ctx context.Context, p tollgate.Principal, c tollgate.ClientInfo) error
}

// Metrics receives the hub's message and revocation events for monitoring
// (package metrics implements it). Implementations are safe for concurrent
// use and never block.
type Metrics interface {
	// MessagePublished counts a message this node stored and handed to the
	// broker (a repeated client_id is not counted).
	MessagePublished()
	// MessageFannedOut reports one message's fan-out to this node's members:
	// delivered sockets took it into their send queue, dropped ones did not
	// (gone, or cut as slow consumers), and latency runs from its publish
	// (Message.TS, stamped before it was stored) to the end of the fan-out.
	MessageFannedOut(delivered, dropped int, latency time.Duration)
	// SocketRevoked reports a socket closed by a control event, with the
	// time from the event (ControlEvent.At) to its close frame being queued.
	SocketRevoked(kind tollgate.ControlKind, latency time.Duration)
}

// Config configures a Hub. Zero fields take the documented defaults.
type Config struct {
	// Messages stores room history. Required.
	Messages tollgate.MessageStore
	// Broker carries messages and control events between nodes. Required.
	Broker tollgate.Broker
	// Limiter, if set, is asked before every publish.
	Limiter PublishLimiter
	// AnonymousRooms are the only rooms anonymous principals may join or read.
	AnonymousRooms []string
	// MaxRoomsPerConn bounds the rooms one socket may join. Default 64.
	MaxRoomsPerConn int
	// StoreTimeout bounds each store call. Default 5s.
	StoreTimeout time.Duration
	// DefaultHistoryLimit is used when a history request gives no limit.
	// Default 100; never above tollgate.MaxHistoryLimit.
	DefaultHistoryLimit int
	// Logger receives operational logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics counts messages and revocations; nil counts nothing.
	Metrics Metrics
}

// Hub is one node's registry of sockets and rooms. It is safe for concurrent use.
type Hub struct {
	cfg Config

	mu        sync.RWMutex
	rooms     map[string]*room
	conns     map[Conn]*member
	bySession map[string]map[Conn]struct{}
	byUser    map[string]map[Conn]struct{}
	byIP      map[string]map[Conn]struct{}

	seed    maphash.Seed
	publish [64]sync.Mutex // stripes: one room's publishes are serialized
}

type member struct {
	mu    sync.Mutex
	rooms []string
	// keys under which the conn is indexed (fixed at Register)
	session, user, ip string
}

type room struct {
	mu   sync.Mutex // guards last and fanout, and serializes delivery for the room
	last int64      // last id delivered to local members
	// fanout is the member list delivery loops over; it is rebuilt from
	// members, under mu, by the first delivery after a change.
	fanout []Conn

	// membersMu guards members and is held only briefly, never while
	// delivering: Leave and Unregister must not wait for a fan-out.
	// Lock order: Hub.mu, then room.mu, then membersMu.
	membersMu sync.Mutex
	members   map[Conn]struct{} // changed with Hub.mu and membersMu held
	stale     atomic.Bool       // members changed since fanout was built
}

// add makes c a member; false if it already was. Hub.mu is held.
func (r *room) add(c Conn) bool {
	r.membersMu.Lock()
	defer r.membersMu.Unlock()
	if _, ok := r.members[c]; ok {
		return false
	}
	r.members[c] = struct{}{}
	r.stale.Store(true)
	return true
}

// remove ends c's membership. Hub.mu is held.
func (r *room) remove(c Conn) {
	r.membersMu.Lock()
	defer r.membersMu.Unlock()
	if _, ok := r.members[c]; ok {
		delete(r.members, c)
		r.stale.Store(true)
	}
}

// snapshot returns the members to deliver to: every membership added or
// removed before the call is reflected. r.mu is held.
func (r *room) snapshot() []Conn {
	if !r.stale.Load() {
		return r.fanout
	}
	r.membersMu.Lock()
	defer r.membersMu.Unlock()
	old, n := r.fanout, len(r.members)
	reuse := cap(old) >= n && cap(old) <= 4*n+64
	list := old[:0]
	if !reuse {
		list = make([]Conn, 0, n) // grown, or much smaller: drop the old array
	}
	for c := range r.members {
		list = append(list, c)
	}
	if reuse && n < len(old) {
		clear(old[n:]) // let departed members be collected
	}
	r.fanout = list
	r.stale.Store(false)
	return list
}

// New returns a Hub. Run must be called for broker deliveries to arrive.
func New(cfg Config) (*Hub, error) {
	if cfg.Messages == nil || cfg.Broker == nil {
		return nil, errors.New("hub: Messages and Broker are required")
	}
	if cfg.MaxRoomsPerConn <= 0 {
		cfg.MaxRoomsPerConn = 64
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 5 * time.Second
	}
	if cfg.DefaultHistoryLimit <= 0 || cfg.DefaultHistoryLimit > tollgate.MaxHistoryLimit {
		cfg.DefaultHistoryLimit = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Hub{
		cfg:       cfg,
		rooms:     make(map[string]*room),
		conns:     make(map[Conn]*member),
		bySession: make(map[string]map[Conn]struct{}),
		byUser:    make(map[string]map[Conn]struct{}),
		byIP:      make(map[string]map[Conn]struct{}),
		seed:      maphash.MakeSeed(),
	}, nil
}

// Run delivers what the broker brings until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	return h.cfg.Broker.Run(ctx, h)
}

// Register adds an authenticated socket so control events can reach it.
// Call it once per socket, after authentication; Unregister when it closes.
func (h *Hub) Register(c Conn) {
	p := c.Principal()
	m := &member{session: p.SessionID, user: p.UserID, ip: c.Client().IP}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; ok {
		return
	}
	h.conns[c] = m
	index(h.bySession, m.session, c)
	index(h.byUser, m.user, c)
	index(h.byIP, m.ip, c)
}

func index(ix map[string]map[Conn]struct{}, key string, c Conn) {
	if key == "" {
		return
	}
	set := ix[key]
	if set == nil {
		set = make(map[Conn]struct{})
		ix[key] = set
	}
	set[c] = struct{}{}
}

func unindex(ix map[string]map[Conn]struct{}, key string, c Conn) {
	if set := ix[key]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(ix, key)
		}
	}
}

// Unregister removes a socket from every room and index. Safe to call for a
// socket that was never registered.
func (h *Hub) Unregister(c Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.conns[c]
	if !ok {
		return
	}
	delete(h.conns, c)
	unindex(h.bySession, m.session, c)
	unindex(h.byUser, m.user, c)
	unindex(h.byIP, m.ip, c)
	m.mu.Lock()
	rooms := m.rooms
	m.rooms = nil
	m.mu.Unlock()
	for _, name := range rooms {
		h.removeMemberLocked(name, c)
	}
}

func (h *Hub) removeMemberLocked(name string, c Conn) {
	r := h.rooms[name]
	if r == nil {
		return
	}
	r.remove(c)
	if len(r.members) == 0 {
		delete(h.rooms, name)
	}
}

// UpdatePrincipal re-indexes a socket whose principal changed (in-band
// refresh to another session of the same user, first-message auth).
func (h *Hub) UpdatePrincipal(c Conn) {
	p := c.Principal()
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.conns[c]
	if !ok {
		return
	}
	unindex(h.bySession, m.session, c)
	unindex(h.byUser, m.user, c)
	m.session, m.user = p.SessionID, p.UserID
	index(h.bySession, m.session, c)
	index(h.byUser, m.user, c)
}

// Count is the number of registered sockets.
func (h *Hub) Count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.conns)
}

// Members is the number of local members of room.
func (h *Hub) Members(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if r := h.rooms[room]; r != nil {
		return len(r.members)
	}
	return 0
}

func (h *Hub) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, h.cfg.StoreTimeout)
}

// mayUseRoom checks the room name and the anonymous-room rule.
func (h *Hub) mayUseRoom(p tollgate.Principal, name string) error {
	if !tollgate.ValidRoom(name) {
		return tollgate.Errorf(tollgate.CodeInvalidRequest, "Room names are 1-64 of a-z 0-9 _ . -")
	}
	if p.Anonymous && !slices.Contains(h.cfg.AnonymousRooms, name) {
		return tollgate.Errorf(tollgate.CodeForbidden, "Anonymous users may only use the anonymous rooms.")
	}
	return nil
}

// Join makes c a member of room. joined, if not nil, is called with the id
// of the last message the socket will not receive live, while the room's
// delivery is held: whatever joined sends (the "joined" frame) reaches the
// socket before any message newer than that id. Joining a room twice is not
// an error.
func (h *Hub) Join(ctx context.Context, c Conn, name string, joined func(last int64)) error {
	if err := h.mayUseRoom(c.Principal(), name); err != nil {
		return err
	}
	h.mu.RLock()
	m, ok := h.conns[c]
	h.mu.RUnlock()
	if !ok {
		return tollgate.NewError(tollgate.CodeUnauthenticated)
	}
	m.mu.Lock()
	full := len(m.rooms) >= h.cfg.MaxRoomsPerConn && !slices.Contains(m.rooms, name)
	m.mu.Unlock()
	if full {
		return tollgate.Errorf(tollgate.CodeForbidden, "Too many rooms joined (at most %d).", h.cfg.MaxRoomsPerConn)
	}
	// The newest stored id seeds a room this node does not serve yet. It is
	// read outside the locks: a store call must not hold up other rooms.
	sctx, cancel := h.storeCtx(ctx)
	defer cancel()
	stored, err := h.cfg.Messages.LastID(sctx, name)
	if err != nil {
		return fmt.Errorf("hub: join %s: %w", name, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, still := h.conns[c]; !still {
		return tollgate.NewError(tollgate.CodeUnauthenticated)
	}
	r := h.rooms[name]
	if r == nil {
		r = &room{last: stored, members: make(map[Conn]struct{})}
		h.rooms[name] = r
	}
	// Lock order: h.mu, then r.mu. Delivery takes r.mu alone. Holding r.mu
	// here means the next delivery rebuilds its member list with c in it.
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.add(c) {
		m.mu.Lock()
		m.rooms = append(m.rooms, name)
		m.mu.Unlock()
	}
	if joined != nil {
		joined(r.last)
	}
	return nil
}

// Leave removes c from room; not_joined if it was not a member.
func (h *Hub) Leave(c Conn, name string) error {
	if !tollgate.ValidRoom(name) {
		return tollgate.Errorf(tollgate.CodeInvalidRequest, "Room names are 1-64 of a-z 0-9 _ . -")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.conns[c]
	if !ok {
		return tollgate.NewError(tollgate.CodeNotJoined)
	}
	m.mu.Lock()
	i := slices.Index(m.rooms, name)
	if i >= 0 {
		m.rooms = slices.Delete(m.rooms, i, i+1)
	}
	m.mu.Unlock()
	if i < 0 {
		return tollgate.NewError(tollgate.CodeNotJoined)
	}
	h.removeMemberLocked(name, c)
	return nil
}

// Joined reports whether c is a member of room.
func (h *Hub) Joined(c Conn, name string) bool {
	h.mu.RLock()
	m, ok := h.conns[c]
	h.mu.RUnlock()
	if !ok {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.rooms, name)
}

// ValidateText checks a message text: 1–4000 characters.
func ValidateText(text string) error {
	switch n := tollgate.TextLen(text); {
	case n == 0:
		return tollgate.Errorf(tollgate.CodeInvalidRequest, "The text is empty.")
	case n > tollgate.MaxTextChars:
		return tollgate.Errorf(tollgate.CodeTooLong, "The text is over %d characters.", tollgate.MaxTextChars)
	}
	return nil
}

// Publish stores a message from c in room and hands it to the broker; every
// member of the room, c included, then receives it. The message is durable
// before Publish returns. A repeated clientID from the same user returns the
// stored message and duplicate true, and nothing is delivered again.
func (h *Hub) Publish(ctx context.Context, c Conn, name, text, clientID string) (msg tollgate.Message, duplicate bool, err error) {
	if !tollgate.ValidRoom(name) {
		return msg, false, tollgate.Errorf(tollgate.CodeInvalidRequest, "Room names are 1-64 of a-z 0-9 _ . -")
	}
	if err := ValidateText(text); err != nil {
		return msg, false, err
	}
	if len(clientID) > tollgate.MaxClientIDLen {
		return msg, false, tollgate.Errorf(tollgate.CodeInvalidRequest, "client_id is over %d bytes.", tollgate.MaxClientIDLen)
	}
	if !h.Joined(c, name) {
		return msg, false, tollgate.NewError(tollgate.CodeNotJoined)
	}
	p := c.Principal()
	if h.cfg.Limiter != nil {
		if err := h.cfg.Limiter.AllowPublish(ctx, p, c.Client()); err != nil {
			return msg, false, err
		}
	}
	mu := &h.publish[maphash.String(h.seed, name)%uint64(len(h.publish))]
	mu.Lock()
	defer mu.Unlock()
	sctx, cancel := h.storeCtx(ctx)
	defer cancel()
	msg, duplicate, err = h.cfg.Messages.Append(sctx, tollgate.Message{
		Room: name, UserID: p.UserID, UserName: p.Name, Text: text, ClientID: clientID,
		TS: h.cfg.Now().UTC(),
	})
	if err != nil {
		return msg, false, fmt.Errorf("hub: publish to %s: %w", name, err)
	}
	if duplicate {
		return msg, true, nil
	}
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.MessagePublished()
	}
	if err := h.cfg.Broker.Publish(sctx, msg); err != nil {
		// Stored but not fanned out: members receive it through gap recovery
		// with the next message, and reconnecting clients through history.
		h.cfg.Logger.Warn("broker publish failed; delivery deferred to gap recovery",
			"room", name, "id", msg.ID, "error", err)
	}
	return msg, false, nil
}

// History returns up to limit messages of room with id > since, oldest first.
func (h *Hub) History(ctx context.Context, c Conn, name string, since int64, limit int) ([]tollgate.Message, error) {
	if err := h.mayUseRoom(c.Principal(), name); err != nil {
		return nil, err
	}
	if since < 0 || limit < 0 {
		return nil, tollgate.Errorf(tollgate.CodeInvalidRequest, "since and limit must not be negative.")
	}
	if limit == 0 {
		limit = h.cfg.DefaultHistoryLimit
	}
	if limit > tollgate.MaxHistoryLimit {
		return nil, tollgate.Errorf(tollgate.CodeInvalidRequest, "limit is at most %d.", tollgate.MaxHistoryLimit)
	}
	sctx, cancel := h.storeCtx(ctx)
	defer cancel()
	msgs, err := h.cfg.Messages.History(sctx, name, since, limit)
	if err != nil {
		return nil, fmt.Errorf("hub: history of %s: %w", name, err)
	}
	return msgs, nil
}

// HandleMessage implements tollgate.BrokerHandler: it delivers m to the
// room's local members, after any messages the broker skipped.
func (h *Hub) HandleMessage(m tollgate.Message) {
	h.mu.RLock()
	r := h.rooms[m.Room]
	h.mu.RUnlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.ID <= r.last {
		return // already delivered (redelivery, or recovered through a gap fill)
	}
	if m.ID > r.last+1 {
		h.fillGap(r, m.Room, m.ID)
	}
	h.deliver(r, m)
}

// fillGap delivers the stored messages between r.last and upTo (exclusive).
// r.mu is held.
func (h *Hub) fillGap(r *room, name string, upTo int64) {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.StoreTimeout)
	defer cancel()
	for r.last+1 < upTo {
		want := int(min(upTo-r.last-1, tollgate.MaxHistoryLimit))
		msgs, err := h.cfg.Messages.History(ctx, name, r.last, want)
		if err != nil || len(msgs) == 0 {
			h.cfg.Logger.Error("gap recovery failed; members resume through history",
				"room", name, "from", r.last+1, "to", upTo-1, "error", err)
			return
		}
		for _, m := range msgs {
			if m.ID >= upTo {
				return
			}
			h.deliver(r, m)
		}
	}
}

// deliver fans m out to the room's members and advances r.last. r.mu is held.
// A member that leaves while the loop runs may still be handed m, as with any
// fan-out already under way when Leave or Unregister is called.
func (h *Hub) deliver(r *room, m tollgate.Message) {
	d := &Delivery{Message: m}
	var delivered, dropped int
	for _, c := range r.snapshot() {
		if c.Deliver(d) {
			delivered++
		} else {
			dropped++
		}
	}
	d.release()
	r.last = m.ID
	if h.cfg.Metrics != nil {
		h.cfg.Metrics.MessageFannedOut(delivered, dropped, h.cfg.Now().Sub(m.TS))
	}
}

// HandleControl implements tollgate.BrokerHandler: it closes the local
// sockets the event targets.
func (h *Hub) HandleControl(e tollgate.ControlEvent) {
	var ix map[string]map[Conn]struct{}
	switch e.Kind {
	case tollgate.ControlRevokeSession:
		ix = h.bySession
	case tollgate.ControlDisableUser, tollgate.ControlBlockUser:
		ix = h.byUser
	case tollgate.ControlBlockIP:
		ix = h.byIP
	default:
		h.cfg.Logger.Warn("unknown control event", "kind", string(e.Kind))
		return
	}
	code := e.Code
	if !code.Known() || code.CloseCode() == 0 {
		code = tollgate.CodeSessionRevoked
	}
	h.mu.RLock()
	targets := make([]Conn, 0, len(ix[e.Target]))
	for c := range ix[e.Target] {
		targets = append(targets, c)
	}
	h.mu.RUnlock()
	for _, c := range targets {
		c.Close(tollgate.NewError(code))
		if h.cfg.Metrics != nil && !e.At.IsZero() {
			h.cfg.Metrics.SocketRevoked(e.Kind, h.cfg.Now().Sub(e.At))
		}
	}
}

// Delivery is one stored message on its way to the local members of its
// room. Protocols encode it once per delivery, not once per member, through
// Encoded.
type Delivery struct {
	Message tollgate.Message

	// The first encoding is read without the lock: most rooms are fanned out
	// in one encoding (one protocol, one subscription shape), asked for once
	// per member. firstKey and first are written once, under mu, before
	// hasFirst is set.
	hasFirst atomic.Bool
	firstKey any
	first    any

	mu    sync.Mutex
	slots map[any]any // encodings after the first
}

// Releaser is an encoding that holds buffers to give back after fan-out.
type Releaser interface{ Release() }

// Encoded returns the value cached under key, building it with build on
// first use. Values that implement Releaser are released after fan-out.
// It is safe for concurrent use; build runs once per key.
func (d *Delivery) Encoded(key any, build func(tollgate.Message) any) any {
	if d.hasFirst.Load() && d.firstKey == key {
		return d.first
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.hasFirst.Load() {
		d.firstKey, d.first = key, build(d.Message)
		d.hasFirst.Store(true)
		return d.first
	}
	if d.firstKey == key {
		return d.first
	}
	if v, ok := d.slots[key]; ok {
		return v
	}
	if d.slots == nil {
		d.slots = make(map[any]any, 1)
	}
	v := build(d.Message)
	d.slots[key] = v
	return v
}

func (d *Delivery) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hasFirst.Load() {
		if r, ok := d.first.(Releaser); ok {
			r.Release()
		}
	}
	for _, v := range d.slots {
		if r, ok := v.(Releaser); ok {
			r.Release()
		}
	}
	d.slots = nil
}
