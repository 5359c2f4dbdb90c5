package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// ticketBytes is the entropy of a ticket: 256 bits (docs/api.md, "WebSocket
// tickets").
const ticketBytes = 32

// ticketLen is the length of a ticket's text: 32 bytes in unpadded URL-safe
// base64 (base64.RawURLEncoding.EncodedLen(32)).
const ticketLen = 43

var (
	errTicketShape  = errors.New("auth: ticket is not 43 characters of URL-safe base64")
	errTicketGone   = errors.New("auth: ticket unknown, expired or already redeemed")
	errTicketOrigin = errors.New("auth: ticket is bound to another Origin")
	errTicketUser   = errors.New("auth: ticket cannot be issued for this principal")
)

// IssueTicket mints a one-time WebSocket ticket for p (docs/api.md,
// "WebSocket tickets"): 32 bytes from crypto/rand in URL-safe base64, stored
// only as its hash ([tollgate.HashTicket]) until the earlier of now+TicketTTL
// and the expiry of p's credential. The ticket names p's user and session,
// the Origin of the minting request when it had one (which must then be
// allowed), and p.ExpiresAt, which the socket it opens inherits.
//
// The caller authenticated p; anonymous and pending principals cannot mint
// tickets (forbidden). Safe for concurrent use.
func (s *Service) IssueTicket(ctx context.Context, p tollgate.Principal, c tollgate.ClientInfo) (ticket tollgate.Secret, expiresAt time.Time, err error) {
	if p.UserID == "" || p.Anonymous {
		return "", time.Time{}, tollgate.WrapError(tollgate.CodeForbidden, errTicketUser)
	}
	if c.HasOrigin && !s.origins.Allowed(c.Origin) {
		return "", time.Time{}, tollgate.NewError(tollgate.CodeOriginNotAllowed)
	}
	now := s.now()
	if !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt) {
		return "", time.Time{}, tollgate.WrapError(tollgate.CodeTokenExpired, errTokenExpired)
	}
	expiresAt = now.Add(s.cfg.TicketTTL)
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(expiresAt) {
		expiresAt = p.ExpiresAt // a ticket never outlives the credential that minted it
	}
	b := make([]byte, ticketBytes)
	randRead(b)
	ticket = tollgate.Secret(base64.RawURLEncoding.EncodeToString(b))
	t := tollgate.Ticket{
		Hash:                tollgate.HashTicket(ticket),
		UserID:              p.UserID,
		UserName:            p.Name,
		SessionID:           p.SessionID,
		Admin:               p.Admin,
		CredentialExpiresAt: p.ExpiresAt,
		ExpiresAt:           expiresAt,
	}
	if c.HasOrigin {
		t.Origin = c.Origin
	}
	sctx, cancel := s.storeCtx(ctx)
	err = s.tickets.Put(sctx, t)
	cancel()
	if err != nil {
		return "", time.Time{}, storeError("store ticket", err)
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.TicketIssued(t.Hash, expiresAt)
	}
	s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditTicketIssued, User: p.UserID, IP: c.IP, Origin: c.Origin, Credential: p.Credential})
	return ticket, expiresAt, nil
}

// RedeemTicket spends a ticket and returns the principal it names, with
// Credential ticket and ExpiresAt the expiry of the access token that minted
// it. The redeem is atomic ([tollgate.TicketStore.Redeem]): of any number of
// concurrent calls exactly one succeeds. A ticket bound to an Origin is
// accepted only when c carries that same Origin (origin_not_allowed
// otherwise); the ticket's session must still be live. Every other failure
// is invalid_ticket; a store that is down is unavailable. Safe for concurrent
// use.
func (s *Service) RedeemTicket(ctx context.Context, ticket tollgate.Secret, c tollgate.ClientInfo) (tollgate.Principal, error) {
	if !wellFormedTicket(ticket.Reveal()) {
		// Garbage never reaches the store.
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeInvalidTicket, errTicketShape)
	}
	now := s.now()
	h := tollgate.HashTicket(ticket)
	sctx, cancel := s.storeCtx(ctx)
	t, err := s.tickets.Redeem(sctx, h, now)
	cancel()
	switch {
	case errors.Is(err, tollgate.ErrNotFound):
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.TicketNotFound(h, now)
		}
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeInvalidTicket, errTicketGone)
	case err != nil:
		return tollgate.Principal{}, storeError("redeem ticket", err)
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.TicketRedeemed(h)
	}
	// A ticket bound to an Origin only opens a socket from that same Origin
	// (API.md, "WebSocket tickets").
	if t.Origin != "" && (!c.HasOrigin || c.Origin != t.Origin) {
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeOriginNotAllowed, errTicketOrigin)
	}
	if !t.CredentialExpiresAt.IsZero() && !now.Before(t.CredentialExpiresAt) {
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeInvalidTicket, errTokenExpired)
	}
	if t.SessionID != "" {
		// The session may have been revoked since the ticket was minted.
		sctx, cancel := s.storeCtx(ctx)
		sess, err := s.sessions.Session(sctx, t.SessionID)
		cancel()
		switch {
		case errors.Is(err, tollgate.ErrNotFound):
			return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeInvalidTicket, errSessionDead)
		case err != nil:
			return tollgate.Principal{}, storeError("load session", err)
		case sess.UserID != t.UserID || !sess.Live(now):
			return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeInvalidTicket, errSessionDead)
		}
	}
	return tollgate.Principal{
		UserID:     t.UserID,
		Name:       t.UserName,
		SessionID:  t.SessionID,
		Admin:      t.Admin,
		Credential: tollgate.CredentialTicket,
		ExpiresAt:  t.CredentialExpiresAt,
	}, nil
}

// wellFormedTicket reports whether s has the exact shape of a ticket.
func wellFormedTicket(s string) bool {
	if len(s) != ticketLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
