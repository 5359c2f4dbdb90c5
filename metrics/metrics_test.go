package metrics

import (
	"crypto/sha256"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate-ws/tollgate"
)

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

func hashOf(s string) tollgate.TicketHash { return sha256.Sum256([]byte(s)) }

// TestTicketLedger: a redeemed ticket presented again is reused; one that
// ran out unredeemed is expired, counted once whether the sweep or a late
// redeem finds it first; one never issued is unknown; entries are forgotten
// after their retention, and the ledger never grows past its bound.
func TestTicketLedger(t *testing.T) {
	expired := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
	l := newTicketLedger(3, time.Minute)
	t0 := time.Unix(1_000_000, 0)
	a, b, c, d := hashOf("a"), hashOf("b"), hashOf("c"), hashOf("d")
	l.issued(a, t0.Add(30*time.Second), t0, expired)
	l.issued(b, t0.Add(30*time.Second), t0, expired)
	l.issued(c, t0.Add(31*time.Second), t0, expired)
	l.issued(d, t0.Add(31*time.Second), t0, expired) // over the bound: not followed
	if n := l.len(); n != 3 {
		t.Fatalf("ledger holds %d, want its bound 3", n)
	}
	l.redeemed(a)
	if o := l.notFound(a, t0.Add(time.Second)); o != ticketReused {
		t.Fatalf("replayed ticket: outcome %d", o)
	}
	if o := l.notFound(d, t0.Add(time.Second)); o != ticketUnknown {
		t.Fatalf("untracked ticket: outcome %d", o)
	}
	// b is presented after its expiry, before any sweep: expired, now.
	if o := l.notFound(b, t0.Add(30*time.Second)); o != ticketExpiredNow {
		t.Fatalf("late redeem: outcome %d", o)
	}
	if o := l.notFound(b, t0.Add(31*time.Second)); o != ticketExpiredOld {
		t.Fatalf("second late redeem: outcome %d", o)
	}
	// The sweep counts c (never presented) and not b again, nor a.
	l.sweep(t0.Add(32*time.Second), expired)
	if v := value(expired); v != 1 {
		t.Fatalf("sweep counted %v expired, want 1", v)
	}
	if o := l.notFound(a, t0.Add(60*time.Second)); o != ticketReused {
		t.Fatalf("replay within retention: outcome %d", o)
	}
	l.sweep(t0.Add(92*time.Second), expired)
	if n := l.len(); n != 0 {
		t.Fatalf("after retention the ledger holds %d", n)
	}
	if o := l.notFound(a, t0.Add(93*time.Second)); o != ticketUnknown {
		t.Fatalf("forgotten ticket: outcome %d", o)
	}
	if v := value(expired); v != 1 {
		t.Fatalf("expired counted %v times", v)
	}
}

// TestLabelsComeFromFixedSets: values outside a label's set are counted as
// "other", so nothing a caller passes by mistake (a name, an IP, a token)
// becomes a series.
func TestLabelsComeFromFixedSets(t *testing.T) {
	m := New()
	const leak = "alice-203.0.113.9-eyJhbGciOi"
	m.SocketOpened(leak, tollgate.CredentialKind(leak))
	m.SocketClosed(leak, tollgate.CredentialKind(leak), leak)
	m.Handshake(tollgate.Code(leak), tollgate.CredentialKind(leak), time.Millisecond)
	m.SocketRevoked(tollgate.ControlKind(leak), time.Millisecond)
	m.RateLimited(leak)
	m.Blocked(tollgate.BlockKind(leak), leak)
	m.SocketOpened("", tollgate.CredentialTicket)
	m.SocketClosed("", tollgate.CredentialTicket, string(tollgate.CodeSlowConsumer))

	body := scrape(t, m)
	if strings.Contains(body, leak) {
		t.Fatalf("a value outside the label sets reached the output:\n%s", body)
	}
	for _, want := range []string{
		`tollgate_sockets_open{credential="other",protocol="other"} 0`,
		`tollgate_sockets_open{credential="ticket",protocol="none"} 0`,
		`tollgate_socket_disconnects_total{reason="other"} 1`,
		`tollgate_socket_disconnects_total{reason="slow_consumer"} 1`,
		`tollgate_slow_consumer_disconnects_total 1`,
		`tollgate_handshakes_total{code="other",result="refused"} 1`,
		`tollgate_rate_limited_total{what="other"} 1`,
		`tollgate_blocks_total{kind="other",reason="other"} 1`,
		`tollgate_revocation_to_close_seconds_count{kind="other"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q", want)
		}
	}
}

// TestFanOutAndTickets: the counters the hub and auth hooks feed.
func TestFanOutAndTickets(t *testing.T) {
	m := New()
	m.MessagePublished()
	m.MessageFannedOut(3, 1, 2*time.Millisecond)
	m.MessageFannedOut(0, 0, time.Millisecond)
	h := hashOf("t")
	m.TicketIssued(h, time.Now().Add(time.Minute))
	m.TicketRedeemed(h)
	m.TicketNotFound(h, time.Now())
	m.TicketNotFound(hashOf("forged"), time.Now())
	m.LegacyTokenUsed(true)
	body := scrape(t, m)
	for _, want := range []string{
		"tollgate_messages_published_total 1",
		"tollgate_messages_delivered_total 3",
		"tollgate_messages_dropped_total 1",
		"tollgate_publish_to_deliver_seconds_count 2",
		"tollgate_tickets_issued_total 1",
		"tollgate_tickets_redeemed_total 1",
		"tollgate_tickets_reused_total 1",
		"tollgate_tickets_unknown_total 1",
		"tollgate_tickets_expired_total 0",
		`tollgate_legacy_token_uses_total{result="accepted"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q", want)
		}
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}
