package memory_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/memory"
)

// handlerFunc adapts two funcs to tollgate.BrokerHandler.
type handlerFunc struct {
	msg func(tollgate.Message)
	ctl func(tollgate.ControlEvent)
}

func (h handlerFunc) HandleMessage(m tollgate.Message)      { h.msg(m) }
func (h handlerFunc) HandleControl(e tollgate.ControlEvent) { h.ctl(e) }

// startBroker runs b with h until the returned stop is called; stop waits for
// Run to return.
func startBroker(t *testing.T, b *memory.Broker, h tollgate.BrokerHandler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, h) }()
	// Run has installed h once a publish succeeds; each failed attempt waits
	// on the Run goroutine for a moment instead of sleeping.
	deadline := time.After(10 * time.Second)
	for b.PublishControl(t.Context(), tollgate.ControlEvent{Kind: "warmup"}) != nil {
		select {
		case err := <-done:
			t.Fatalf("Run returned early: %v", err)
		case <-deadline:
			t.Fatal("Run did not start")
		case <-time.After(time.Millisecond):
		}
	}
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
	}
}

func TestBrokerUnavailableUnlessRunning(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	b := memory.NewBroker()
	var got []tollgate.Message
	h := handlerFunc{msg: func(m tollgate.Message) { got = append(got, m) }, ctl: func(tollgate.ControlEvent) {}}

	if err := b.Publish(ctx, tollgate.Message{Room: "a", ID: 1}); !errors.Is(err, tollgate.ErrUnavailable) {
		t.Fatalf("Publish before Run: %v, want ErrUnavailable", err)
	}
	if err := b.PublishControl(ctx, tollgate.ControlEvent{}); !errors.Is(err, tollgate.ErrUnavailable) {
		t.Fatalf("PublishControl before Run: %v, want ErrUnavailable", err)
	}
	stop := startBroker(t, b, h)
	if err := b.Publish(ctx, tollgate.Message{Room: "a", ID: 2}); err != nil {
		t.Fatalf("Publish while running: %v", err)
	}
	// Delivery is synchronous: the handler has run when Publish returns.
	if len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("handler got %v after Publish returned", got)
	}
	stop()
	if err := b.Publish(ctx, tollgate.Message{Room: "a", ID: 3}); !errors.Is(err, tollgate.ErrUnavailable) {
		t.Fatalf("Publish after Run returned: %v, want ErrUnavailable", err)
	}
	if len(got) != 1 {
		t.Fatalf("handler got %v", got)
	}
	// A broker can run again after a clean stop.
	startBroker(t, b, h)()
}

func TestBrokerRunRefusals(t *testing.T) {
	t.Parallel()
	b := memory.NewBroker()
	if err := b.Run(t.Context(), nil); err == nil {
		t.Error("Run with a nil handler succeeded")
	}
	h := handlerFunc{msg: func(tollgate.Message) {}, ctl: func(tollgate.ControlEvent) {}}
	stop := startBroker(t, b, h)
	defer stop()
	if err := b.Run(t.Context(), h); err == nil {
		t.Error("a second concurrent Run succeeded")
	}
}

func TestBrokerEndedContext(t *testing.T) {
	t.Parallel()
	b := memory.NewBroker()
	called := false
	h := handlerFunc{msg: func(tollgate.Message) { called = true }, ctl: func(tollgate.ControlEvent) { called = true }}
	defer startBroker(t, b, h)()
	called = false // the warm-up event
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.Publish(ctx, tollgate.Message{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Publish with an ended context: %v", err)
	}
	if err := b.PublishControl(ctx, tollgate.ControlEvent{Kind: tollgate.ControlBlockIP}); !errors.Is(err, context.Canceled) {
		t.Errorf("PublishControl with an ended context: %v", err)
	}
	if called {
		t.Error("the handler was called for a publish with an ended context")
	}
}

// A handler may publish from inside a delivery: no lock is held around it.
func TestBrokerReentrantHandler(t *testing.T) {
	t.Parallel()
	b := memory.NewBroker()
	var controls []tollgate.ControlEvent
	h := handlerFunc{
		msg: func(m tollgate.Message) {
			_ = b.PublishControl(context.Background(), tollgate.ControlEvent{Kind: tollgate.ControlRevokeSession, Target: m.Text})
		},
		ctl: func(e tollgate.ControlEvent) { controls = append(controls, e) },
	}
	defer startBroker(t, b, h)()
	controls = nil // drop the warm-up event
	if err := b.Publish(t.Context(), tollgate.Message{Room: "a", Text: "s-1"}); err != nil {
		t.Fatal(err)
	}
	if len(controls) != 1 || controls[0].Target != "s-1" {
		t.Fatalf("controls = %v", controls)
	}
}
