package hub_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/memory"
)

// recConn records, in order, the ids it was delivered and the "joined"
// callbacks run for it (as -last).
type recConn struct {
	id     string
	refuse atomic.Bool // Deliver reports false, as for a cut socket

	mu  sync.Mutex
	got []int64
}

func (c *recConn) ID() string { return c.id }
func (c *recConn) Principal() tollgate.Principal {
	return tollgate.Principal{UserID: c.id, Name: c.id, SessionID: "s-" + c.id}
}
func (c *recConn) Client() tollgate.ClientInfo { return tollgate.ClientInfo{IP: "192.0.2.1"} }
func (c *recConn) Close(*tollgate.Error)       {}
func (c *recConn) Deliver(d *hub.Delivery) bool {
	if c.refuse.Load() {
		return false
	}
	c.record(d.Message.ID)
	return true
}
func (c *recConn) record(v int64) {
	c.mu.Lock()
	c.got = append(c.got, v)
	c.mu.Unlock()
}
func (c *recConn) log() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// fanouts records MessageFannedOut calls.
type fanouts struct {
	mu   sync.Mutex
	seen [][2]int
}

func (*fanouts) MessagePublished() {}
func (f *fanouts) MessageFannedOut(delivered, dropped int, _ time.Duration) {
	f.mu.Lock()
	f.seen = append(f.seen, [2]int{delivered, dropped})
	f.mu.Unlock()
}
func (*fanouts) SocketRevoked(tollgate.ControlKind, time.Duration) {}
func (f *fanouts) last() [2]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[len(f.seen)-1]
}

func newTestHub(t *testing.T, m hub.Metrics) *hub.Hub {
	t.Helper()
	h, err := hub.New(hub.Config{Messages: memory.NewMessageStore(), Broker: memory.NewBroker(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func join(t *testing.T, h *hub.Hub, c *recConn, room string) {
	t.Helper()
	if err := h.Join(context.Background(), c, room, func(last int64) { c.record(-last) }); err != nil {
		t.Fatalf("join %s: %v", c.id, err)
	}
}

func TestMembership(t *testing.T) {
	m := &fanouts{}
	h := newTestHub(t, m)
	a, b, c := &recConn{id: "a"}, &recConn{id: "b"}, &recConn{id: "c"}
	for _, x := range []*recConn{a, b, c} {
		h.Register(x)
		join(t, h, x, "r")
	}
	join(t, h, a, "r") // joining twice is not an error and adds no member
	if n := h.Members("r"); n != 3 {
		t.Fatalf("Members = %d, want 3", n)
	}
	send := func(id int64) { h.HandleMessage(tollgate.Message{Room: "r", ID: id, TS: time.Now()}) }

	send(1)
	if got := m.last(); got != [2]int{3, 0} {
		t.Fatalf("fan-out of 1 = %v, want 3 delivered", got)
	}
	if err := h.Leave(b, "r"); err != nil {
		t.Fatal(err)
	}
	if err := h.Leave(b, "r"); tollgate.ErrorCode(err) != tollgate.CodeNotJoined {
		t.Fatalf("second leave: %v, want not_joined", err)
	}
	if n := h.Members("r"); n != 2 {
		t.Fatalf("Members after leave = %d, want 2", n)
	}
	c.refuse.Store(true)
	send(2)
	if got := m.last(); got != [2]int{1, 1} {
		t.Fatalf("fan-out of 2 = %v, want 1 delivered, 1 dropped", got)
	}
	join(t, h, b, "r")
	send(3)
	h.Unregister(c)
	if n := h.Members("r"); n != 2 {
		t.Fatalf("Members after unregister = %d, want 2", n)
	}
	send(4)
	if got := m.last(); got != [2]int{2, 0} {
		t.Fatalf("fan-out of 4 = %v, want 2 delivered", got)
	}
	// The joined callback (recorded as -last) runs before any newer message.
	for _, tc := range []struct {
		c    *recConn
		want []int64
	}{
		{a, []int64{0, 0, 1, 2, 3, 4}},
		{b, []int64{0, 1, -2, 3, 4}},
		{c, []int64{0, 1}},
	} {
		if got := tc.c.log(); !slices.Equal(got, tc.want) {
			t.Errorf("%s got %v, want %v", tc.c.id, got, tc.want)
		}
	}
	h.Unregister(a)
	h.Unregister(b)
	if n := h.Members("r"); n != 0 {
		t.Fatalf("Members after all left = %d, want 0", n)
	}
}

// TestMembershipChurn joins and leaves while messages are delivered: a
// member that stays sees every id once, in order, and a joiner sees every
// id after the one its joined callback named.
func TestMembershipChurn(t *testing.T) {
	h := newTestHub(t, nil)
	stay := &recConn{id: "stay"}
	h.Register(stay)
	join(t, h, stay, "r")
	const msgs = 300
	var wg sync.WaitGroup
	churners := make([]*recConn, 8)
	for i := range churners {
		x := &recConn{id: fmt.Sprintf("c%d", i)}
		churners[i] = x
		h.Register(x)
		wg.Go(func() {
			for j := range 50 {
				join(t, h, x, "r")
				if j%2 == 0 {
					if err := h.Leave(x, "r"); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	for id := int64(1); id <= msgs; id++ {
		h.HandleMessage(tollgate.Message{Room: "r", ID: id, TS: time.Now()})
	}
	wg.Wait()
	want := []int64{0}
	for id := int64(1); id <= msgs; id++ {
		want = append(want, id)
	}
	if got := stay.log(); !slices.Equal(got, want) {
		t.Fatalf("staying member got %v", got)
	}
	for _, x := range churners {
		// Between a joined callback -last and the next one, ids arrive
		// in order, each above the last seen.
		var prev int64 = -1
		for _, v := range x.log() {
			if v <= 0 {
				prev = -v
				continue
			}
			if v <= prev {
				t.Fatalf("%s: id %d after %d in %v", x.id, v, prev, x.log())
			}
			prev = v
		}
	}
	if n := h.Members("r"); n != 1+len(churners) {
		t.Fatalf("Members = %d, want %d", n, 1+len(churners))
	}
}
