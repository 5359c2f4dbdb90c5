package memory

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tollgate-ws/tollgate"
)

var _ tollgate.Broker = (*Broker)(nil)

// Broker is an in-process [tollgate.Broker] for a single node: a loopback that
// hands every published event to the handler given to [Broker.Run].
//
// Publish and PublishControl call the handler synchronously, in the caller's
// goroutine, so the events one goroutine publishes arrive in the order it
// published them (the hub serializes each room's publishes, which keeps every
// room in order) and a publish returns only after local delivery.
//
// Broker is safe for concurrent use. It keeps the handler in an atomic pointer
// and holds no lock while calling it, so a handler may itself publish, and
// handlers of different publishers run concurrently (the handler must allow
// that: [tollgate.BrokerHandler]). The price of holding no lock: a publish
// that started just before Run's context ended may still reach the handler
// while Run is returning; every publish that starts after Run has returned
// fails.
//
// The zero value is ready to use; [NewBroker] returns one.
type Broker struct {
	h atomic.Pointer[brokerHandler]
}

// brokerHandler boxes the handler so that the pointer identifies one Run.
type brokerHandler struct{ h tollgate.BrokerHandler }

// NewBroker returns a Broker that is not running yet.
func NewBroker() *Broker { return &Broker{} }

// errNotRunning is wrapped by publishes before Run and after it returned.
var errNotRunning = fmt.Errorf("memory: broker not running: %w", tollgate.ErrUnavailable)

// Run makes h the handler of every publish and blocks until ctx ends; then
// publishes fail again and Run returns nil. It fails at once if h is nil or
// another Run is in progress. Safe for concurrent use with the publish
// methods.
func (b *Broker) Run(ctx context.Context, h tollgate.BrokerHandler) error {
	if h == nil {
		return errors.New("memory: broker run: nil handler")
	}
	box := &brokerHandler{h: h}
	if !b.h.CompareAndSwap(nil, box) {
		return errors.New("memory: broker run: already running")
	}
	<-ctx.Done()
	b.h.CompareAndSwap(box, nil)
	return nil
}

// Publish calls the running handler's HandleMessage with m in the caller's
// goroutine and returns when it returns. Before Run, after Run returned, or
// when ctx has ended it delivers nothing and returns an error (wrapping
// [tollgate.ErrUnavailable] in the first two cases). Safe for concurrent use.
func (b *Broker) Publish(ctx context.Context, m tollgate.Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: publish: %w", err)
	}
	box := b.h.Load()
	if box == nil {
		return errNotRunning
	}
	box.h.HandleMessage(m)
	return nil
}

// PublishControl calls the running handler's HandleControl with e in the
// caller's goroutine, with the same guarantees and errors as
// [Broker.Publish]. Safe for concurrent use.
func (b *Broker) PublishControl(ctx context.Context, e tollgate.ControlEvent) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: publish control: %w", err)
	}
	box := b.h.Load()
	if box == nil {
		return errNotRunning
	}
	box.h.HandleControl(e)
	return nil
}
