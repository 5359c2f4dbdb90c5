package redis

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// ticketSlack is added to a ticket's remaining life to get its Redis TTL.
// Redeem decides expiry with the caller's clock; the TTL only lets Redis
// forget tickets nobody redeems, so it errs on the long side to absorb clock
// skew between the nodes and Redis.
const ticketSlack = time.Second

// ticketRecord is a ticket as stored: everything but the hash, which is the
// key.
type ticketRecord struct {
	UserID              string    `json:"uid"`
	UserName            string    `json:"un"`
	SessionID           string    `json:"sid,omitempty"`
	Admin               bool      `json:"admin,omitempty"`
	Origin              string    `json:"origin,omitempty"`
	CredentialExpiresAt time.Time `json:"cexp"`
	ExpiresAt           time.Time `json:"exp"`
}

func (c *Client) ticketKey(h tollgate.TicketHash) string {
	return c.prefix + "ticket:" + hex.EncodeToString(h[:])
}

// Put stores t under its hash with SET NX PX, until t.ExpiresAt (by the
// client's clock, plus one second of slack for clock skew). A ticket whose
// hash is already stored is left alone and Put returns an error wrapping
// [tollgate.ErrConflict]: with 256-bit random tickets that means a bug, or a
// Put retried after a lost reply, and either way the caller should mint a new
// ticket. Safe for concurrent use.
func (c *Client) Put(ctx context.Context, t tollgate.Ticket) error {
	const op = "put ticket"
	ctx, cancel := bound(ctx)
	defer cancel()
	v, err := json.Marshal(ticketRecord{
		UserID: t.UserID, UserName: t.UserName, SessionID: t.SessionID, Admin: t.Admin, Origin: t.Origin,
		CredentialExpiresAt: t.CredentialExpiresAt.UTC(), ExpiresAt: t.ExpiresAt.UTC(),
	})
	if err != nil {
		return fmt.Errorf("redis: %s: %w", op, err)
	}
	ttl := max(t.ExpiresAt.Sub(c.now()), 0) + ticketSlack
	ok, err := c.rdb.SetNX(ctx, c.ticketKey(t.Hash), v, ttl).Result()
	if err != nil {
		return c.fail(op, err)
	}
	if !ok {
		return fmt.Errorf("redis: %s: hash already stored: %w", op, tollgate.ErrConflict)
	}
	return nil
}

// Redeem removes and returns the ticket stored under h, with one GETDEL:
// Redis runs commands one at a time, so of any number of concurrent redeems
// on any number of nodes exactly one gets the ticket. The others, and a
// redeem at or after the ticket's ExpiresAt (judged with now; the expired
// ticket is removed all the same), get an error wrapping
// [tollgate.ErrNotFound]. A redeem whose reply is lost on the network fails
// closed: the ticket is gone and the client asks for a new one. Safe for
// concurrent use.
func (c *Client) Redeem(ctx context.Context, h tollgate.TicketHash, now time.Time) (tollgate.Ticket, error) {
	const op = "redeem ticket"
	ctx, cancel := bound(ctx)
	defer cancel()
	v, err := c.rdb.GetDel(ctx, c.ticketKey(h)).Bytes()
	if err != nil {
		return tollgate.Ticket{}, c.fail(op, err)
	}
	var r ticketRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return tollgate.Ticket{}, fmt.Errorf("redis: %s: malformed record: %w", op, err)
	}
	if !now.Before(r.ExpiresAt) {
		return tollgate.Ticket{}, fmt.Errorf("redis: %s: expired: %w", op, tollgate.ErrNotFound)
	}
	return tollgate.Ticket{
		Hash: h, UserID: r.UserID, UserName: r.UserName, SessionID: r.SessionID, Admin: r.Admin, Origin: r.Origin,
		CredentialExpiresAt: r.CredentialExpiresAt, ExpiresAt: r.ExpiresAt,
	}, nil
}
