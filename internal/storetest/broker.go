package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// Broker checks an implementation of [tollgate.Broker] as one node sees it:
// what it publishes reaches its own handler, in order per room. newBroker is
// called once per subtest, possibly concurrently, and returns a broker that
// is not running; the suite runs it and stops it. A broker of a cluster gets
// a channel (or key prefix) of its own per call, so parallel subtests do not
// hear each other.
func Broker(t *testing.T, newBroker func(t *testing.T) tollgate.Broker) {
	t.Helper()

	t.Run("messages of one room arrive in order", func(t *testing.T) {
		t.Parallel()
		ctx, b, rec := testContext(t), newBroker(t), newRecorder()
		runBroker(t, b, rec)
		const n = 500
		want := make([]tollgate.Message, n)
		for i := range want {
			want[i] = tollgate.Message{Room: "general", ID: int64(i + 1), UserID: "u-1", UserName: "alice",
				Text: fmt.Sprintf("text %d", i), ClientID: fmt.Sprintf("c-%d", i), TS: baseTime.Add(time.Duration(i) * time.Millisecond)}
			noErr(t, "Publish", b.Publish(ctx, want[i]))
		}
		got := rec.waitMessages(t, "general", n)
		for i := range want {
			sameMessage(t, got[i], want[i])
		}
	})

	t.Run("concurrent publishers keep each room in order", func(t *testing.T) {
		t.Parallel()
		ctx, b, rec := testContext(t), newBroker(t), newRecorder()
		runBroker(t, b, rec)
		const rooms, each = 8, 100
		Parallel(rooms, func(r int) {
			room := fmt.Sprintf("room-%d", r)
			for i := range each {
				if err := b.Publish(ctx, tollgate.Message{Room: room, ID: int64(i + 1), Text: "x", TS: baseTime}); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
			}
		})
		for r := range rooms {
			got := rec.waitMessages(t, fmt.Sprintf("room-%d", r), each)
			for i, m := range got {
				if m.ID != int64(i+1) {
					t.Fatalf("room-%d: message %d has id %d: out of order", r, i, m.ID)
				}
			}
		}
	})

	t.Run("control events arrive", func(t *testing.T) {
		t.Parallel()
		ctx, b, rec := testContext(t), newBroker(t), newRecorder()
		runBroker(t, b, rec)
		want := []tollgate.ControlEvent{
			{Kind: tollgate.ControlRevokeSession, Target: "s-1", Code: tollgate.CodeSessionRevoked, At: baseTime},
			{Kind: tollgate.ControlDisableUser, Target: "u-1", Code: tollgate.CodeUserDisabled, At: baseTime.Add(time.Second)},
			{Kind: tollgate.ControlBlockUser, Target: "u-2", Code: tollgate.CodeBlocked, At: baseTime.Add(2 * time.Second)},
			{Kind: tollgate.ControlBlockIP, Target: "2001:db8::1", Code: tollgate.CodeBlocked, At: baseTime.Add(3 * time.Second)},
		}
		for _, e := range want {
			noErr(t, "PublishControl", b.PublishControl(ctx, e))
		}
		got := rec.waitControls(t, len(want))
		for i := range want {
			if got[i].Kind != want[i].Kind || got[i].Target != want[i].Target || got[i].Code != want[i].Code ||
				!got[i].At.Equal(want[i].At) {
				t.Errorf("control event %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	})

	t.Run("Run returns when its context ends", func(t *testing.T) {
		t.Parallel()
		b := newBroker(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx, newRecorder()) }()
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel = %v, want nil or context.Canceled", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Run did not return after its context ended")
		}
	})
}

// runBroker runs b with handler rec until the subtest ends and returns once
// events reach rec: it publishes warm-up control events until one arrives,
// waiting on a channel, never sleeping.
func runBroker(t *testing.T, b tollgate.Broker, rec *recorder) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, rec) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitTimeout):
			t.Error("broker Run did not return after its context ended")
		}
	})
	deadline := time.After(waitTimeout)
	for i := 0; ; i++ {
		target := fmt.Sprintf("warmup-%d", i)
		_ = b.PublishControl(ctx, tollgate.ControlEvent{Kind: "warmup", Target: target})
		select {
		case <-rec.warm:
			return
		case err := <-done:
			t.Fatalf("broker Run returned early: %v", err)
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatal("broker delivered nothing within the timeout")
		}
	}
}

// recorder is a BrokerHandler that keeps what it receives. Warm-up control
// events only signal readiness.
type recorder struct {
	warm     chan struct{} // gets a value per warm-up event, never blocks
	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every event
	messages map[string][]tollgate.Message
	controls []tollgate.ControlEvent
}

func newRecorder() *recorder {
	return &recorder{warm: make(chan struct{}, 1), changed: make(chan struct{}), messages: make(map[string][]tollgate.Message)}
}

func (r *recorder) HandleMessage(m tollgate.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages[m.Room] = append(r.messages[m.Room], m)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) HandleControl(e tollgate.ControlEvent) {
	if e.Kind == "warmup" {
		select {
		case r.warm <- struct{}{}:
		default:
		}
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.controls = append(r.controls, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

// wait blocks until ready reports true (under r.mu), or fails t.
func (r *recorder) wait(t *testing.T, what string, ready func() bool) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		r.mu.Lock()
		ok, changed := ready(), r.changed
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (r *recorder) waitMessages(t *testing.T, room string, n int) []tollgate.Message {
	t.Helper()
	r.wait(t, fmt.Sprintf("%d messages in %s", n, room), func() bool { return len(r.messages[room]) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.messages[room]) != n {
		t.Fatalf("%s: %d messages, want %d", room, len(r.messages[room]), n)
	}
	return append([]tollgate.Message(nil), r.messages[room]...)
}

func (r *recorder) waitControls(t *testing.T, n int) []tollgate.ControlEvent {
	t.Helper()
	r.wait(t, fmt.Sprintf("%d control events", n), func() bool { return len(r.controls) >= n })
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.controls) != n {
		t.Fatalf("%d control events, want %d", len(r.controls), n)
	}
	return append([]tollgate.ControlEvent(nil), r.controls...)
}
