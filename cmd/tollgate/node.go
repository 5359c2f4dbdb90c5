package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/audit"
	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/config"
	"github.com/tollgate-ws/tollgate/httpapi"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/jsonproto"
	"github.com/tollgate-ws/tollgate/limit"
	"github.com/tollgate-ws/tollgate/metrics"
	"github.com/tollgate-ws/tollgate/stomp"
	"github.com/tollgate-ws/tollgate/web"
	"github.com/tollgate-ws/tollgate/ws"
)

// Files inside --data-dir.
const (
	// DatabaseFile is the SQLite database.
	DatabaseFile = "tollgate.db"
	// AuditFile is the audit log (docs/api.md, "Audit log").
	AuditFile = "audit.log"
)

// node is one tollgate server process, wired from its configuration: the
// stores, authentication, rooms, sockets and the HTTP edge. Nothing in it is
// global; tests build several in one process.
type node struct {
	cfg config.Config
	log *slog.Logger

	st      *stores
	audit   *audit.Log
	limits  *limit.Limiter
	auth    *auth.Service
	hub     *hub.Hub
	sockets *ws.Server
	api     *httpapi.Server
	metrics *metrics.Metrics
}

// newLogger returns the process logger: text or JSON on w at cfg's level.
func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == config.LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openDataDir creates --data-dir with mode 0700 if it is missing and warns
// when an existing one is open to group or others: it holds the signing key
// and the password hashes.
func openDataDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--data-dir %s: not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory is readable by group or others; it holds the signing key and password hashes",
			"data_dir", dir, "mode", fi.Mode().Perm().String())
	}
	return nil
}

// authConfig maps the server settings onto the authentication service.
func authConfig(cfg config.Config, keys *auth.KeySet) auth.Config {
	return auth.Config{
		Keys:                  keys,
		AccessTTL:             cfg.AccessTokenTTL,
		RefreshTTL:            cfg.RefreshTokenTTL,
		TicketTTL:             cfg.TicketTTL,
		SessionCacheTTL:       cfg.SessionCacheTTL,
		AllowedOrigins:        cfg.AllowedOrigins,
		SecureCookies:         cfg.CookieSecure,
		RegistrationClosed:    cfg.Registration == config.RegistrationClosed,
		Anonymous:             cfg.Anonymous,
		LegacyQueryToken:      cfg.LegacyQueryToken,
		LegacyQueryTokenUntil: cfg.LegacyQueryTokenUntil,
		FirstMessageAuth:      cfg.FirstMessageAuth,
		OIDC: auth.OIDCConfig{
			Issuer:    cfg.OIDCIssuer,
			JWKSURL:   cfg.JWKSURL,
			Audience:  cfg.OIDCAudience,
			NameClaim: cfg.OIDCNameClaim,
		},
	}
}

// newNode wires a node. ln is the bound listener: with port 0 in --addr the
// derived Origin allowlist needs the real port. getenv reads
// TOLLGATE_ADMIN_TOKEN. On error everything opened so far is closed.
func newNode(ctx context.Context, cfg config.Config, ln net.Listener, log *slog.Logger, stdout io.Writer, getenv env) (_ *node, err error) {
	if cfg.AllowedOriginsDerived {
		cfg.AllowedOrigins = config.DefaultAllowedOrigins(cfg.PublicURL, ln.Addr().String())
	}
	n := &node{cfg: cfg, log: log, metrics: metrics.New()}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	if err := openDataDir(cfg.DataDir, log); err != nil {
		return nil, err
	}
	keys, err := loadKeys(cfg, log)
	if err != nil {
		return nil, err
	}
	adminToken, err := loadAdminToken(cfg.AdminTokenFile, getenv)
	if err != nil {
		return nil, err
	}
	if n.audit, err = openAudit(cfg, log, stdout); err != nil {
		return nil, err
	}
	if n.st, err = openStores(ctx, cfg, log); err != nil {
		return nil, err
	}
	st := n.st

	ac := authConfig(cfg, keys)
	ac.Logger = log
	ac.Auditor = n.audit
	ac.Control = st.broker
	ac.Metrics = n.metrics
	if n.auth, err = auth.New(ac, st.users, st.sessions, st.tickets); err != nil {
		return nil, err
	}
	n.limits = limit.New(limit.Config{
		PublishRate:       cfg.PublishRate,
		PublishWindow:     cfg.PublishWindow,
		AnonPublishRate:   cfg.AnonPublishRate,
		BlockViolations:   cfg.BlockViolations,
		BlockWindow:       cfg.BlockWindow,
		BlockDuration:     cfg.BlockDuration,
		FailedAuthBlock:   cfg.FailedAuthBlock,
		LoginRate:         cfg.LoginRate,
		LoginWindow:       cfg.LoginWindow,
		HandshakeRate:     cfg.HandshakeRate,
		HandshakeWindow:   cfg.HandshakeWindow,
		MaxSocketsPerUser: cfg.MaxSocketsPerUser,
		MaxSocketsPerIP:   cfg.MaxSocketsPerIP,
		MaxSockets:        cfg.MaxSockets,
		Logger:            log,
		Metrics:           n.metrics,
	}, st.counter, st.blocks, st.broker, n.audit)
	if n.hub, err = hub.New(hub.Config{
		Messages:       st.messages,
		Broker:         st.broker,
		Limiter:        n.limits,
		AnonymousRooms: cfg.AnonymousRooms,
		Logger:         log,
		Metrics:        n.metrics,
	}); err != nil {
		return nil, err
	}
	proto := jsonproto.New(jsonproto.Config{
		Hub:                 n.hub,
		Verifier:            n.auth,
		FirstMessageTimeout: cfg.FirstMessageTimeout,
		Auditor:             n.audit,
		Logger:              log,
		// An authenticated socket leaves the unauthenticated cap.
		OnAuthenticated: (*ws.Conn).ReleaseSlot,
	})
	sp, err := stomp.New(stomp.Config{
		Hub:                 n.hub,
		Verifier:            n.auth,
		Heartbeat:           cfg.StompHeartbeat,
		SendTokenRequired:   cfg.StompSendToken == config.StompSendTokenRequired,
		FirstMessageTimeout: cfg.FirstMessageTimeout,
		Limits:              stomp.Limits{MaxFrameBytes: cfg.MaxMessageBytes},
		Auditor:             n.audit,
		Logger:              log,
		OnAuthenticated:     (*ws.Conn).ReleaseSlot,
	})
	if err != nil {
		return nil, err
	}
	// JSON when the client offers no subprotocol or tollgate.v1; STOMP when
	// it offers v12.stomp, v11.stomp or v10.stomp.
	protocols := map[string]ws.Protocol{jsonproto.Name: proto}
	for _, name := range stomp.Subprotocols() {
		protocols[name] = sp
	}
	preference := append([]string{jsonproto.Name}, stomp.Subprotocols()...)
	n.sockets = ws.New(ws.Config{
		MaxMessageBytes: cfg.MaxMessageBytes,
		IdleTimeout:     cfg.IdleTimeout,
		PingInterval:    cfg.PingInterval,
		WriteTimeout:    cfg.WriteTimeout,
		SendQueue:       cfg.SendQueue,
		Auditor:         n.audit,
		Logger:          log,
		Metrics:         n.metrics,
	}, proto, protocols, preference)
	ready := append(st.ready, httpapi.Check{Name: "audit", Pinger: n.audit})
	if n.api, err = httpapi.New(httpapi.Config{
		TrustedProxies: cfg.TrustedProxies,
		Logger:         log,
		Metrics:        n.metrics,
	}, httpapi.Deps{
		Auth:    n.auth,
		Sockets: n.sockets,
		Pages:   web.Handler(),
		Ready:   ready,
		Guard:   n.limits,
		Slots:   limit.NewSockets(n.limits.Config()),
		PendingSlots: limit.NewSockets(limit.Config{
			MaxSocketsPerIP: cfg.MaxUnauthenticatedPerIP,
			MaxSockets:      cfg.MaxUnauthenticated,
			Metrics:         n.metrics,
		}),
		Admin:   httpapi.NewAdmin(n.limits, adminToken),
		Metrics: n.publicMetrics(),
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// openAudit opens <data-dir>/audit.log with the --audit-fsync policy, and
// copies each line to stdout with --audit-stdout.
func openAudit(cfg config.Config, log *slog.Logger, stdout io.Writer) (*audit.Log, error) {
	opts := audit.Options{Sync: audit.SyncPolicy(cfg.AuditFsync), Logger: log}
	if cfg.AuditStdout {
		opts.Copy = stdout
	}
	l, err := audit.Open(filepath.Join(cfg.DataDir, AuditFile), opts)
	if err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", cfg.DataDir, err)
	}
	return l, nil
}

// minAdminToken is the shortest admin token accepted: 128 bits as hex.
const minAdminToken = 32

// loadAdminToken reads the admin token from --admin-token-file, else from
// TOLLGATE_ADMIN_TOKEN; none means only admin users may use the admin API.
func loadAdminToken(file string, getenv env) (tollgate.Secret, error) {
	var tok string
	switch {
	case file != "":
		b, err := readSmallFile(file, 4096)
		if err != nil {
			return "", fmt.Errorf("--admin-token-file %s: %w", file, err)
		}
		tok = strings.TrimSpace(string(b))
	case getenv != nil:
		tok = strings.TrimSpace(getenv("TOLLGATE_ADMIN_TOKEN"))
	}
	if tok != "" && len(tok) < minAdminToken {
		return "", fmt.Errorf("the admin token (--admin-token-file or TOLLGATE_ADMIN_TOKEN) must be at least %d characters", minAdminToken)
	}
	return tollgate.Secret(tok), nil
}

// readSmallFile reads a regular file of at most max bytes.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("over %d bytes", max)
	}
	return b, nil
}

// close releases the stores and flushes the audit log; the node must have
// stopped serving.
func (n *node) close() {
	if n.auth != nil {
		n.auth.Close()
	}
	if n.st != nil {
		n.st.close(n.log)
	}
	if n.audit != nil {
		if err := n.audit.Close(); err != nil {
			n.log.Error("closing the audit log", "error", err)
		}
	}
}
