package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

func TestRegister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	u, err := e.svc.Register(ctx, "Alice", testPass, tollgate.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if len(u.ID) != 32 || u.Name != "Alice" || u.PasswordHash != "" {
		t.Fatalf("user = %+v", u)
	}
	stored, _ := e.users.UserByID(ctx, u.ID)
	if !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$") || strings.Contains(stored.PasswordHash, testPass) {
		t.Fatalf("stored hash = %q", stored.PasswordHash)
	}
	tests := []struct {
		name, user, pass string
		want             tollgate.Code
	}{
		{"taken, other case", "alice", testPass, tollgate.CodeUsernameTaken},
		{"short name", "al", testPass, tollgate.CodeInvalidRequest},
		{"long name", strings.Repeat("a", 33), testPass, tollgate.CodeInvalidRequest},
		{"bad char", "al ice", testPass, tollgate.CodeInvalidRequest},
		{"short password", "carol", "1234567", tollgate.CodeInvalidRequest},
		{"long password", "carol", strings.Repeat("p", 1025), tollgate.CodeInvalidRequest},
		{"ok", "carol", "12345678", ""},
	}
	for _, tc := range tests {
		_, err := e.svc.Register(ctx, tc.user, tollgate.Secret(tc.pass), tollgate.ClientInfo{})
		if code(err) != tc.want {
			t.Errorf("%s: code %q, want %q", tc.name, code(err), tc.want)
		}
	}
	closed := newEnv(t, func(c *Config) { c.RegistrationClosed = true })
	_, err = closed.svc.Register(ctx, "dave", testPass, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeForbidden)
}

func TestRegisterConcurrentSameName(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 8 {
		wg.Go(func() {
			name := "Racer"
			if i%2 == 1 {
				name = "racer"
			}
			if _, err := e.svc.Register(context.Background(), name, testPass, tollgate.ClientInfo{}); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if code(err) != tollgate.CodeUsernameTaken {
				t.Errorf("unexpected %v", err)
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d registrations of one name succeeded", ok)
	}
}

// TestLoginFailuresAreIndistinguishable: unknown user, wrong password and a
// disabled user get the same error, code and message (docs/api.md, "Errors").
func TestLoginFailuresAreIndistinguishable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.login(t, "alice")
	dis := e.login(t, "disabled")
	if err := e.svc.DisableUser(ctx, dis.User.ID, tollgate.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, tc := range []struct{ user, pass string }{
		{"nobody", testPass}, {"alice", "wrong password"}, {"disabled", testPass}, {"ALICE", "wrong password"},
	} {
		_, err := e.svc.Login(ctx, tc.user, tollgate.Secret(tc.pass), tollgate.ClientInfo{IP: "203.0.113.9"})
		wantCode(t, err, tollgate.CodeInvalidCredentials)
		var te *tollgate.Error
		errors.As(err, &te)
		msgs = append(msgs, te.ClientMessage())
	}
	for _, m := range msgs[1:] {
		if m != msgs[0] {
			t.Fatalf("client messages differ: %q", msgs)
		}
	}
	ev, ok := e.audit.last(tollgate.AuditLoginFailed)
	if !ok || ev.IP != "203.0.113.9" {
		t.Fatalf("login_failed not audited: %+v", ev)
	}
	// Case-insensitive names: ALICE with the right password logs in as alice.
	tok, err := e.svc.Login(ctx, "ALICE", testPass, tollgate.ClientInfo{})
	if err != nil || tok.User.Name != "alice" {
		t.Fatalf("login by folded name: %+v %v", tok.User, err)
	}
	_, err = e.svc.Login(ctx, "x", testPass, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeInvalidRequest)
	_, err = e.svc.Login(ctx, "alice", tollgate.Secret(strings.Repeat("p", 2000)), tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeInvalidRequest)
}

func TestDisableUserRevokesSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login(t, "alice")
	if err := e.svc.DisableUser(context.Background(), tok.User.ID, tollgate.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
	_, err = e.svc.Refresh(context.Background(), tok.Refresh, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeUnauthenticated)
	ev := e.control.all()
	if len(ev) != 1 || ev[0].Kind != tollgate.ControlDisableUser || ev[0].Code != tollgate.CodeUserDisabled {
		t.Fatalf("control events = %+v", ev)
	}
	err = e.svc.DisableUser(context.Background(), "nope", tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeNotFound)
}

func TestRefreshRotates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tok := e.login(t, "alice")
	e.clock.Advance(time.Minute)
	next, err := e.svc.Refresh(ctx, tok.Refresh, tollgate.ClientInfo{IP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	if next.SessionID != tok.SessionID || next.Access == tok.Access || next.Refresh == tok.Refresh || next.User.ID != tok.User.ID {
		t.Fatalf("refresh result = %+v", next)
	}
	if p := e.principal(t, next); p.SessionID != tok.SessionID {
		t.Fatal("new token names another session")
	}
	if _, ok := e.audit.last(tollgate.AuditTokenRefreshed); !ok {
		t.Fatal("token_refreshed not audited")
	}
	next2, err := e.svc.Refresh(ctx, next.Refresh, tollgate.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	// Replaying a spent refresh token revokes the whole session.
	_, err = e.svc.Refresh(ctx, tok.Refresh, tollgate.ClientInfo{IP: "203.0.113.66"})
	wantCode(t, err, tollgate.CodeUnauthenticated)
	for _, a := range []tollgate.Secret{tok.Access, next.Access, next2.Access} {
		_, err := e.svc.VerifyAccess(ctx, a)
		wantCode(t, err, tollgate.CodeUnauthenticated)
	}
	_, err = e.svc.Refresh(ctx, next2.Refresh, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeUnauthenticated)
	ev := e.control.all()
	if len(ev) != 1 || ev[0].Kind != tollgate.ControlRevokeSession || ev[0].Target != tok.SessionID || ev[0].Code != tollgate.CodeSessionRevoked {
		t.Fatalf("control events = %+v", ev)
	}
	a, ok := e.audit.last(tollgate.AuditSessionRevoked)
	if !ok || a.IP != "203.0.113.66" || a.User != tok.User.ID {
		t.Fatalf("session_revoked audit = %+v", a)
	}
	for _, bad := range []tollgate.Secret{"", "nope", tollgate.Secret(strings.Repeat("x", 300))} {
		_, err := e.svc.Refresh(ctx, bad, tollgate.ClientInfo{})
		wantCode(t, err, tollgate.CodeUnauthenticated)
	}
}

func TestRefreshAfterSessionExpiry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.RefreshTTL = time.Hour; c.AccessTTL = 15 * time.Minute })
	tok := e.login(t, "alice")
	e.clock.Advance(50 * time.Minute)
	next, err := e.svc.Refresh(context.Background(), tok.Refresh, tollgate.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	// The access token never outlives its session.
	if !next.AccessExpiresAt.Equal(tok.RefreshExpiresAt) || !next.RefreshExpiresAt.Equal(tok.RefreshExpiresAt) {
		t.Fatalf("access %v refresh %v; want both capped at the session end %v", next.AccessExpiresAt, next.RefreshExpiresAt, tok.RefreshExpiresAt)
	}
	e.clock.Advance(11 * time.Minute)
	_, err = e.svc.Refresh(context.Background(), next.Refresh, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeUnauthenticated)
}

// TestErrorsNeverCarrySecrets: no error text (client message or log cause)
// contains a password, token or ticket.
func TestErrorsNeverCarrySecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tok := e.login(t, "alice")
	p := e.principal(t, tok)
	ticket, _, _ := e.svc.IssueTicket(ctx, p, browser(testOrigin))
	secrets := []string{testPass, tok.Access.Reveal(), tok.Refresh.Reveal(), ticket.Reveal()}
	var errs []error
	_, err := e.svc.Login(ctx, "alice", "wrong-"+testPass, tollgate.ClientInfo{})
	errs = append(errs, err)
	_, err = e.svc.RedeemTicket(ctx, ticket, browser(otherOrigin))
	errs = append(errs, err)
	_, err = e.svc.RedeemTicket(ctx, ticket, browser(testOrigin))
	errs = append(errs, err)
	_, err = e.svc.VerifyAccess(ctx, tok.Access+"x")
	errs = append(errs, err)
	_, err = e.svc.Refresh(ctx, tok.Refresh+"x", tollgate.ClientInfo{})
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("expected an error")
		}
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) || strings.Contains(tollgate.AsError(err).ClientMessage(), s) {
				t.Fatalf("error %q carries a secret", err)
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(e.logs.String(), s) {
			t.Fatal("a secret reached the log")
		}
	}
}
