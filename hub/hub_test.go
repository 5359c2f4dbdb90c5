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

// countedEnc is an encoding that counts its releases.
type countedEnc struct{ released *atomic.Int32 }

func (e countedEnc) Release() { e.released.Add(1) }

type encA struct{}
type encB struct{ v string }

// encConn asks for the delivery's encoding under key.
type encConn struct {
	recConn
	key   any
	build func(tollgate.Message) any
}

func (c *encConn) Deliver(d *hub.Delivery) bool {
	_ = d.Encoded(c.key, c.build).(countedEnc)
	return true
}

// TestDeliveryEncodedOncePerKey: each encoding is built once per message
// whatever the number of members asking, and released once after fan-out.
func TestDeliveryEncodedOncePerKey(t *testing.T) {
	h := newTestHub(t, nil)
	var builds, released [3]atomic.Int32
	keys := []any{encA{}, encB{"x"}, encB{"y"}}
	for i := range 30 {
		k := i % len(keys)
		c := &encConn{recConn: recConn{id: fmt.Sprint(i)}, key: keys[k], build: func(tollgate.Message) any {
			builds[k].Add(1)
			return countedEnc{&released[k]}
		}}
		h.Register(c)
		if err := h.Join(context.Background(), c, "r", nil); err != nil {
			t.Fatal(err)
		}
	}
	for id := int64(1); id <= 3; id++ {
		h.HandleMessage(tollgate.Message{Room: "r", ID: id, TS: time.Now()})
		for k := range keys {
			if b, r := builds[k].Load(), released[k].Load(); b != int32(id) || r != int32(id) {
				t.Fatalf("message %d, key %v: built %d, released %d; want %d, %d", id, keys[k], b, r, id, id)
			}
		}
	}
}

func TestDeliveryEncodedConcurrent(t *testing.T) {
	d := &hub.Delivery{Message: tollgate.Message{ID: 7}}
	var builds [4]atomic.Int32
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				k := (g + i) % len(builds)
				v := d.Encoded(k, func(m tollgate.Message) any {
					builds[k].Add(1)
					return m.ID*10 + int64(k)
				})
				if v != int64(70+k) {
					t.Errorf("key %d: got %v", k, v)
					return
				}
			}
		})
	}
	wg.Wait()
	for k := range builds {
		if n := builds[k].Load(); n != 1 {
			t.Errorf("key %d built %d times, want 1", k, n)
		}
	}
}
