package auth

import (
	"context"
	"testing"

	"github.com/tollgate-ws/tollgate"
)

// BenchmarkTicketIssueRedeem measures one ticket's whole life through the
// service: mint (random, hash, store put, audit) and redeem (shape check,
// atomic store redeem, Origin check, session check), on the in-memory
// stores.
func BenchmarkTicketIssueRedeem(b *testing.B) {
	e := newEnv(b)
	tok := e.login(b, "alice")
	p := e.principal(b, tok)
	e.svc.audit = tollgate.NopAuditor{}
	ctx := context.Background()
	c := browser(testOrigin)
	b.ReportAllocs()
	for b.Loop() {
		tk, _, err := e.svc.IssueTicket(ctx, p, c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.svc.RedeemTicket(ctx, tk, c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAccess measures verifying an access token: HS256 signature,
// claims, and the session lookup in the in-memory store.
func BenchmarkVerifyAccess(b *testing.B) {
	e := newEnv(b)
	tok := e.login(b, "alice")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.VerifyAccess(ctx, tok.Access); err != nil {
			b.Fatal(err)
		}
	}
}
