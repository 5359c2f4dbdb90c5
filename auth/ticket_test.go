package auth

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

func TestTicketShapeAndSingleUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login(t, "alice")
	p := e.principal(t, tok)
	ticket, exp, err := e.svc.IssueTicket(context.Background(), p, tollgate.ClientInfo{IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if ticketLen != base64.RawURLEncoding.EncodedLen(ticketBytes) {
		t.Fatal("ticketLen constant is wrong")
	}
	raw, err := base64.RawURLEncoding.DecodeString(ticket.Reveal())
	if err != nil || len(raw) != 32 {
		t.Fatalf("ticket is not 32 bytes of URL-safe base64: %d %v", len(raw), err)
	}
	if !exp.Equal(e.clock.Now().Add(30 * time.Second)) {
		t.Errorf("expires at %v; want now+30s", exp)
	}
	if ev, ok := e.audit.last(tollgate.AuditTicketIssued); !ok || ev.User != p.UserID || ev.Credential != tollgate.CredentialBearer {
		t.Errorf("ticket_issued audit = %+v", ev)
	}
	got, err := e.svc.RedeemTicket(context.Background(), ticket, tollgate.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != p.UserID || got.SessionID != p.SessionID || got.Name != "alice" || got.Credential != tollgate.CredentialTicket ||
		!got.ExpiresAt.Equal(tok.AccessExpiresAt) {
		t.Fatalf("principal = %+v; want ExpiresAt = the access token's exp %v", got, tok.AccessExpiresAt)
	}
	_, err = e.svc.RedeemTicket(context.Background(), ticket, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeInvalidTicket)
}

func TestTicketConcurrentRedeemExactlyOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.principal(t, e.login(t, "alice"))
	ticket, _, err := e.svc.IssueTicket(context.Background(), p, tollgate.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	var ok, invalid atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 64 {
		wg.Go(func() {
			<-start
			_, err := e.svc.RedeemTicket(context.Background(), ticket, tollgate.ClientInfo{})
			switch code(err) {
			case "":
				ok.Add(1)
			case tollgate.CodeInvalidTicket:
				invalid.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != 1 || invalid.Load() != 63 {
		t.Fatalf("%d successes, %d invalid_ticket; want exactly 1 and 63", ok.Load(), invalid.Load())
	}
}

func TestTicketExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.principal(t, e.login(t, "alice"))
	t1, _, _ := e.svc.IssueTicket(context.Background(), p, tollgate.ClientInfo{})
	t2, _, _ := e.svc.IssueTicket(context.Background(), p, tollgate.ClientInfo{})
	e.clock.Advance(29 * time.Second)
	if _, err := e.svc.RedeemTicket(context.Background(), t1, tollgate.ClientInfo{}); err != nil {
		t.Fatalf("ticket refused before its 30 s: %v", err)
	}
	e.clock.Advance(time.Second)
	_, err := e.svc.RedeemTicket(context.Background(), t2, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeInvalidTicket)
}

// TestTicketNeverOutlivesItsCredential: a ticket minted 10 s before the
// access token expires lives 10 s, not 30.
func TestTicketNeverOutlivesItsCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.principal(t, e.login(t, "alice"))
	e.clock.Advance(15*time.Minute - 10*time.Second)
	ticket, exp, err := e.svc.IssueTicket(context.Background(), p, tollgate.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(p.ExpiresAt) {
		t.Fatalf("ticket expires %v; want the credential's %v", exp, p.ExpiresAt)
	}
	e.clock.Advance(10 * time.Second)
	_, err = e.svc.RedeemTicket(context.Background(), ticket, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeInvalidTicket)
	_, _, err = e.svc.IssueTicket(context.Background(), p, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeTokenExpired)
}

func TestTicketOriginBinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.principal(t, e.login(t, "alice"))
	issue := func(c tollgate.ClientInfo) tollgate.Secret {
		t.Helper()
		tk, _, err := e.svc.IssueTicket(context.Background(), p, c)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	tests := []struct {
		name   string
		mint   tollgate.ClientInfo
		redeem tollgate.ClientInfo
		want   tollgate.Code
	}{
		{"same origin", browser(testOrigin), browser(testOrigin), ""},
		{"other origin", browser(testOrigin), browser(otherOrigin), tollgate.CodeOriginNotAllowed},
		{"other allowed origin", browser(testOrigin), browser("http://127.0.0.1:8080"), tollgate.CodeOriginNotAllowed},
		{"bound ticket, no origin", browser(testOrigin), tollgate.ClientInfo{}, tollgate.CodeOriginNotAllowed},
		{"unbound ticket, no origin", tollgate.ClientInfo{}, tollgate.ClientInfo{}, ""},
		{"unbound ticket from a browser", tollgate.ClientInfo{}, browser(testOrigin), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.RedeemTicket(context.Background(), issue(tc.mint), tc.redeem)
			wantCode(t, err, tc.want)
		})
	}
	_, _, err := e.svc.IssueTicket(context.Background(), p, browser(otherOrigin))
	wantCode(t, err, tollgate.CodeOriginNotAllowed)
}

func TestTicketOfRevokedSessionRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.principal(t, e.login(t, "alice"))
	ticket, _, _ := e.svc.IssueTicket(context.Background(), p, tollgate.ClientInfo{})
	if err := e.svc.Logout(context.Background(), p, tollgate.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.RedeemTicket(context.Background(), ticket, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeInvalidTicket)
}

func TestTicketGarbageNeverReachesTheStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, s := range []string{"", "abc", strings.Repeat("A", 42), strings.Repeat("A", 44), strings.Repeat("=", 43),
		strings.Repeat("A", 42) + "/", strings.Repeat("A", 42) + "+", strings.Repeat("A", 10000)} {
		_, err := e.svc.RedeemTicket(context.Background(), tollgate.Secret(s), tollgate.ClientInfo{})
		wantCode(t, err, tollgate.CodeInvalidTicket)
	}
	if e.tickets.Len() != 0 {
		t.Fatal("store touched")
	}
}

func TestTicketRefusedForAnonymousAndPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range []tollgate.Principal{
		{UserID: "anon-1", Anonymous: true, Credential: tollgate.CredentialAnonymous},
		{Credential: tollgate.CredentialFirstMessage},
	} {
		_, _, err := e.svc.IssueTicket(context.Background(), p, tollgate.ClientInfo{})
		wantCode(t, err, tollgate.CodeForbidden)
	}
}
