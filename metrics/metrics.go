package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/httpapi"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/limit"
	"github.com/tollgate-ws/tollgate/ws"
)

// The hooks [*Metrics] implements.
var (
	_ ws.Metrics      = (*Metrics)(nil)
	_ hub.Metrics     = (*Metrics)(nil)
	_ httpapi.Metrics = (*Metrics)(nil)
	_ auth.Metrics    = (*Metrics)(nil)
	_ limit.Metrics   = (*Metrics)(nil)
)

// Namespace prefixes every tollgate series.
const Namespace = "tollgate"

// other is the label value of anything outside a label's fixed set.
const other = "other"

// Label sets. A value is used as a label only if it is in its set.
var (
	protocols = set("none", "tollgate.v1", "v12.stomp", "v11.stomp", "v10.stomp")
	kinds     = set(string(tollgate.CredentialBearer), string(tollgate.CredentialTicket),
		string(tollgate.CredentialCookie), string(tollgate.CredentialLegacyToken),
		string(tollgate.CredentialAnonymous), string(tollgate.CredentialFirstMessage),
		string(tollgate.CredentialNone))
	// closeKinds are the reasons ws reports for a close it did not decide.
	closeKinds = set("peer", "protocol", "abnormal")
	controls   = set(string(tollgate.ControlRevokeSession), string(tollgate.ControlDisableUser),
		string(tollgate.ControlBlockUser), string(tollgate.ControlBlockIP))
	limited      = set("publish", "login", "handshake", "sockets")
	blockKinds   = set(string(tollgate.BlockUser), string(tollgate.BlockIP))
	blockReasons = set(limit.ReasonViolations, limit.ReasonFailedAuth, limit.ReasonAdmin)
)

func set(v ...string) map[string]bool {
	m := make(map[string]bool, len(v))
	for _, s := range v {
		m[s] = true
	}
	return m
}

func pick(s map[string]bool, v string) string {
	if s[v] {
		return v
	}
	return other
}

func protocolLabel(sub string) string {
	if sub == "" {
		return "none"
	}
	return pick(protocols, sub)
}

func credentialLabel(k tollgate.CredentialKind) string {
	if k == "" {
		return string(tollgate.CredentialNone)
	}
	return pick(kinds, string(k))
}

func codeLabel(c tollgate.Code) string {
	if c.Known() {
		return string(c)
	}
	return other
}

func reasonLabel(r string) string {
	if tollgate.Code(r).Known() {
		return r
	}
	return pick(closeKinds, r)
}

// Bucket layouts of the latency histograms, in seconds.
var (
	// handshakeBuckets: 0.25 ms to about 8 s.
	handshakeBuckets = prometheus.ExponentialBuckets(0.00025, 2, 16)
	// deliveryBuckets: 0.5 ms to about 16 s; the revocation goal is 1 s.
	deliveryBuckets = prometheus.ExponentialBuckets(0.0005, 2, 16)
)

// Metrics holds one node's series in a private registry. Create it with
// [New]; it is safe for concurrent use and implements the Metrics hooks of
// ws, hub, httpapi, auth and limit.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	socketsOpen   *prometheus.GaugeVec   // protocol, credential
	disconnects   *prometheus.CounterVec // reason
	slowConsumers prometheus.Counter

	handshakes       *prometheus.CounterVec   // result, code
	handshakeSeconds *prometheus.HistogramVec // result, credential

	ticketsIssued   prometheus.Counter
	ticketsRedeemed prometheus.Counter
	ticketsExpired  prometheus.Counter
	ticketsReused   prometheus.Counter
	ticketsUnknown  prometheus.Counter
	tickets         *ticketLedger

	published      prometheus.Counter
	delivered      prometheus.Counter
	dropped        prometheus.Counter
	deliverSeconds prometheus.Histogram

	revocationSeconds *prometheus.HistogramVec // kind

	rateLimited *prometheus.CounterVec // what
	blocks      *prometheus.CounterVec // kind, reason
	legacy      *prometheus.CounterVec // result
}

// New returns a Metrics with every series registered, at zero, in a new
// private registry, together with the Go runtime and process collectors
// (process_resident_memory_bytes and the like).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), tickets: newTicketLedger(defaultLedgerSize, ledgerRetain)}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
		m.reg.MustRegister(c)
		return c
	}
	m.socketsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "sockets_open",
		Help: "Open WebSockets by subprotocol (none: the JSON protocol without one) and the credential kind they opened with."},
		[]string{"protocol", "credential"})
	m.reg.MustRegister(m.socketsOpen)
	m.disconnects = counterVec("socket_disconnects_total",
		"Closed WebSockets by reason: a contract code (session_revoked, slow_consumer, ...) or peer, protocol, abnormal.", "reason")
	m.slowConsumers = counter("slow_consumer_disconnects_total",
		"WebSockets cut because their send queue was full or their writes made no progress.")

	m.handshakes = counterVec("handshakes_total",
		"GET /ws upgrade requests by result (accepted, refused) and the contract code of a refusal (none when accepted).", "result", "code")
	m.handshakeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace,
		Name: "handshake_duration_seconds", Buckets: handshakeBuckets,
		Help: "Time from receiving GET /ws to the 101 written (accepted) or the refusal decided, by result and credential kind."},
		[]string{"result", "credential"})
	m.reg.MustRegister(m.handshakeSeconds)

	m.ticketsIssued = counter("tickets_issued_total", "WebSocket tickets issued.")
	m.ticketsRedeemed = counter("tickets_redeemed_total", "WebSocket tickets spent by a redeem.")
	m.ticketsExpired = counter("tickets_expired_total",
		"WebSocket tickets issued on this node that reached their expiry unredeemed here.")
	m.ticketsReused = counter("tickets_reused_total",
		"Redeems of a ticket already redeemed on this node (replays).")
	m.ticketsUnknown = counter("tickets_unknown_total",
		"Redeems of a ticket this node did not issue or no longer remembers (forged, or issued by another node).")

	m.published = counter("messages_published_total", "Messages this node stored and handed to the broker.")
	m.delivered = counter("messages_delivered_total", "Message deliveries queued to local sockets.")
	m.dropped = counter("messages_dropped_total",
		"Message deliveries refused by a local socket (closing, or cut as a slow consumer).")
	m.deliverSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace,
		Name: "publish_to_deliver_seconds", Buckets: deliveryBuckets,
		Help: "Time from a publish (before the message is stored) to the end of its fan-out to this node's members."})
	m.reg.MustRegister(m.deliverSeconds)

	m.revocationSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace,
		Name: "revocation_to_close_seconds", Buckets: deliveryBuckets,
		Help: "Time from a revocation, block or disable to each affected local socket's close frame being queued, by event kind."},
		[]string{"kind"})
	m.reg.MustRegister(m.revocationSeconds)

	m.rateLimited = counterVec("rate_limited_total",
		"Requests refused by a rate limit (publish, login, handshake) or a socket cap (sockets).", "what")
	m.blocks = counterVec("blocks_total", "Blocks stored, by kind (user, ip) and reason.", "kind", "reason")
	m.legacy = counterVec("legacy_token_uses_total",
		"Handshakes with the deprecated ?token= credential: accepted, or refused after the sunset date.", "result")

	// Series that exist from the start, so that a dashboard sees zeros and
	// not gaps.
	for w := range limited {
		m.rateLimited.WithLabelValues(w)
	}
	for k := range blockKinds {
		for r := range blockReasons {
			m.blocks.WithLabelValues(k, r)
		}
	}
	for k := range controls {
		m.revocationSeconds.WithLabelValues(k)
	}
	m.legacy.WithLabelValues("accepted")
	m.legacy.WithLabelValues("refused")
	m.handshakes.WithLabelValues("accepted", "none")
	m.disconnects.WithLabelValues(string(tollgate.CodeSlowConsumer))

	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prom := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{MaxRequestsInFlight: 4, Timeout: 10 * time.Second})
	m.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.sweepTickets(time.Now())
		prom.ServeHTTP(w, r)
	})
	return m
}

// Handler serves the registry in the Prometheus text format (GET /metrics).
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry is the private registry, for tests and for adding collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SocketOpened implements [ws.Metrics].
func (m *Metrics) SocketOpened(subprotocol string, credential tollgate.CredentialKind) {
	m.socketsOpen.WithLabelValues(protocolLabel(subprotocol), credentialLabel(credential)).Inc()
}

// SocketClosed implements [ws.Metrics].
func (m *Metrics) SocketClosed(subprotocol string, credential tollgate.CredentialKind, reason string) {
	m.socketsOpen.WithLabelValues(protocolLabel(subprotocol), credentialLabel(credential)).Dec()
	m.disconnects.WithLabelValues(reasonLabel(reason)).Inc()
	if reason == string(tollgate.CodeSlowConsumer) {
		m.slowConsumers.Inc()
	}
}

// Handshake implements [httpapi.Metrics].
func (m *Metrics) Handshake(code tollgate.Code, credential tollgate.CredentialKind, d time.Duration) {
	result, c := "accepted", "none"
	if code != "" {
		result, c = "refused", codeLabel(code)
	}
	m.handshakes.WithLabelValues(result, c).Inc()
	m.handshakeSeconds.WithLabelValues(result, credentialLabel(credential)).Observe(d.Seconds())
}

// TicketIssued implements [auth.Metrics].
func (m *Metrics) TicketIssued(h tollgate.TicketHash, expiresAt time.Time) {
	m.ticketsIssued.Inc()
	m.tickets.issued(h, expiresAt, time.Now(), m.ticketsExpired)
}

// TicketRedeemed implements [auth.Metrics].
func (m *Metrics) TicketRedeemed(h tollgate.TicketHash) {
	m.ticketsRedeemed.Inc()
	m.tickets.redeemed(h)
}

// TicketNotFound implements [auth.Metrics]: it tells a replay (reused) from
// a ticket that ran out (expired) and one never seen (unknown).
func (m *Metrics) TicketNotFound(h tollgate.TicketHash, now time.Time) {
	switch m.tickets.notFound(h, now) {
	case ticketReused:
		m.ticketsReused.Inc()
	case ticketExpiredNow:
		m.ticketsExpired.Inc()
	case ticketUnknown:
		m.ticketsUnknown.Inc()
	}
}

func (m *Metrics) sweepTickets(now time.Time) { m.tickets.sweep(now, m.ticketsExpired) }

// LegacyTokenUsed implements [auth.Metrics].
func (m *Metrics) LegacyTokenUsed(accepted bool) {
	if accepted {
		m.legacy.WithLabelValues("accepted").Inc()
		return
	}
	m.legacy.WithLabelValues("refused").Inc()
}

// MessagePublished implements [hub.Metrics].
func (m *Metrics) MessagePublished() { m.published.Inc() }

// MessageFannedOut implements [hub.Metrics].
func (m *Metrics) MessageFannedOut(delivered, dropped int, latency time.Duration) {
	if delivered > 0 {
		m.delivered.Add(float64(delivered))
	}
	if dropped > 0 {
		m.dropped.Add(float64(dropped))
	}
	m.deliverSeconds.Observe(latency.Seconds())
}

// SocketRevoked implements [hub.Metrics].
func (m *Metrics) SocketRevoked(kind tollgate.ControlKind, latency time.Duration) {
	m.revocationSeconds.WithLabelValues(pick(controls, string(kind))).Observe(latency.Seconds())
}

// RateLimited implements [limit.Metrics].
func (m *Metrics) RateLimited(what string) { m.rateLimited.WithLabelValues(pick(limited, what)).Inc() }

// Blocked implements [limit.Metrics].
func (m *Metrics) Blocked(kind tollgate.BlockKind, reason string) {
	m.blocks.WithLabelValues(pick(blockKinds, string(kind)), pick(blockReasons, reason)).Inc()
}
