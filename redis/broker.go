package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tollgate-ws/tollgate"
)

// pingInterval is how long a subscription may stay silent before Run pings
// Redis through it; a ping unanswered for another interval counts as a lost
// connection (a half-open TCP connection otherwise looks like a quiet one).
const pingInterval = 15 * time.Second

// wireMessage is a tollgate.Message on the broker channel.
type wireMessage struct {
	Room     string    `json:"room"`
	ID       int64     `json:"id"`
	UserID   string    `json:"uid"`
	UserName string    `json:"un"`
	Text     string    `json:"text"`
	ClientID string    `json:"cid,omitempty"`
	TS       time.Time `json:"ts"`
}

func (c *Client) messageChannel() string { return c.prefix + "broker:message" }
func (c *Client) controlChannel() string { return c.prefix + "broker:control" }

// Publish sends m, already stored, to every node subscribed under the same
// prefix, this one included, with one PUBLISH. Publishes that one goroutine
// makes in sequence reach every subscriber in that order (each PUBLISH
// returns before the next is sent, and Redis forwards them in the order it
// runs them); the hub serializes each room's publishes, which keeps rooms in
// order. A node whose subscription is down misses m: see the package
// documentation on delivery. Errors wrap [tollgate.ErrUnavailable] when
// Redis cannot be reached. Safe for concurrent use.
func (c *Client) Publish(ctx context.Context, m tollgate.Message) error {
	v, err := json.Marshal(wireMessage{Room: m.Room, ID: m.ID, UserID: m.UserID, UserName: m.UserName,
		Text: m.Text, ClientID: m.ClientID, TS: m.TS})
	if err != nil {
		return fmt.Errorf("redis: publish: %w", err)
	}
	return c.publish(ctx, "publish", c.messageChannel(), v)
}

// PublishControl sends e to every node subscribed under the same prefix,
// this one included, with the guarantees and errors of [Client.Publish].
// Safe for concurrent use.
func (c *Client) PublishControl(ctx context.Context, e tollgate.ControlEvent) error {
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("redis: publish control: %w", err)
	}
	return c.publish(ctx, "publish control", c.controlChannel(), v)
}

func (c *Client) publish(ctx context.Context, op, channel string, v []byte) error {
	ctx, cancel := bound(ctx)
	defer cancel()
	return c.fail(op, c.rdb.Publish(ctx, channel, v).Err())
}

// Run subscribes to the broker channels and hands every message and control
// event to h, one at a time and in the order Redis delivers them, until ctx
// ends; then it returns nil. When the subscription fails (Redis restarts,
// the connection is killed or goes silent) Run logs a warning, waits with
// exponential backoff and jitter ([Options.ReconnectMin] doubling up to
// [Options.ReconnectMax]) and subscribes again, for as long as ctx lives:
// events published meanwhile are lost for this node (see the package
// documentation). Malformed payloads are logged and dropped. Run fails at
// once when h is nil or another Run of this Client is in progress.
func (c *Client) Run(ctx context.Context, h tollgate.BrokerHandler) error {
	if h == nil {
		return errors.New("redis: broker run: nil handler")
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("redis: broker run: already running")
	}
	defer c.running.Store(false)

	backoff, failures := c.reconnectMin, 0
	for {
		subscribed, err := c.subscribeOnce(ctx, h)
		if ctx.Err() != nil {
			return nil
		}
		if subscribed { // it worked for a while: start over
			backoff, failures = c.reconnectMin, 0
		}
		failures++
		wait := backoff/2 + rand.N(backoff/2+1) // jitter: nodes do not reconnect in lockstep
		c.log.Warn("redis broker: subscription lost; resubscribing",
			"error", c.fail("subscribe", err), "failures", failures, "retry_in", wait.String())
		backoff = min(backoff*2, c.reconnectMax)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// subscribeOnce subscribes on a connection of its own and delivers events to
// h until the connection fails or ctx ends. subscribed reports whether the
// subscription was confirmed.
func (c *Client) subscribeOnce(ctx context.Context, h tollgate.BrokerHandler) (subscribed bool, err error) {
	if c.closed.Load() {
		return false, goredis.ErrClosed
	}
	channels := []string{c.messageChannel(), c.controlChannel()}
	ps := c.rdb.Subscribe(ctx, channels...) // errors surface in the first receive
	// Closing the subscription is the only way to interrupt a blocked read
	// when ctx ends.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer func() {
		if stop() {
			ps.Close()
		}
	}()

	// Wait for both confirmations, so that "subscribed" means that events
	// published from now on will arrive.
	confirmed := 0
	for confirmed < len(channels) {
		msg, err := ps.ReceiveTimeout(ctx, DefaultTimeout)
		if err != nil {
			return false, err
		}
		switch msg := msg.(type) {
		case *goredis.Subscription:
			if msg.Kind == "subscribe" {
				confirmed++
			}
		case *goredis.Message:
			c.deliver(h, msg) // the first channel confirmed may carry events before the second
		}
	}
	c.log.Debug("redis broker: subscribed", "channels", len(channels))

	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, pingInterval)
		if err != nil {
			if !isTimeout(err) {
				return true, err
			}
			if pinged {
				return true, errors.New("no answer to ping")
			}
			pctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
			err := ps.Ping(pctx)
			cancel()
			if err != nil {
				return true, err
			}
			pinged = true
			continue
		}
		pinged = false
		if m, ok := msg.(*goredis.Message); ok {
			c.deliver(h, m)
		}
	}
}

// isTimeout reports whether err is a read deadline passing, not a failure.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout() && !errors.Is(err, context.DeadlineExceeded)
}

// deliver decodes one pub/sub message and hands it to h.
func (c *Client) deliver(h tollgate.BrokerHandler, msg *goredis.Message) {
	switch msg.Channel {
	case c.messageChannel():
		var w wireMessage
		if err := json.Unmarshal([]byte(msg.Payload), &w); err != nil {
			c.log.Warn("redis broker: dropped a malformed message", "error", err)
			return
		}
		h.HandleMessage(tollgate.Message{Room: w.Room, ID: w.ID, UserID: w.UserID, UserName: w.UserName,
			Text: w.Text, ClientID: w.ClientID, TS: w.TS})
	case c.controlChannel():
		var e tollgate.ControlEvent
		if err := json.Unmarshal([]byte(msg.Payload), &e); err != nil {
			c.log.Warn("redis broker: dropped a malformed control event", "error", err)
			return
		}
		h.HandleControl(e)
	}
}
