package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/config"
	"github.com/tollgate-ws/tollgate/httpapi"
	"github.com/tollgate-ws/tollgate/hub"
	"github.com/tollgate-ws/tollgate/jsonproto"
	"github.com/tollgate-ws/tollgate/memory"
	"github.com/tollgate-ws/tollgate/sqlite"
	"github.com/tollgate-ws/tollgate/ws"
)

// DatabaseFile is the SQLite database's name inside --data-dir.
const DatabaseFile = "tollgate.db"

// node is one tollgate server process, wired from its configuration: the
// stores, authentication, rooms, sockets and the HTTP edge. Nothing in it is
// global; tests build several in one process.
type node struct {
	cfg config.Config
	log *slog.Logger

	db      *sqlite.DB
	tickets *memory.TicketStore
	broker  *memory.Broker
	auth    *auth.Service
	hub     *hub.Hub
	sockets *ws.Server
	api     *httpapi.Server
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

// openAccounts opens what every command that touches accounts needs: the
// data dir, the signing key and the SQLite database. The caller closes db.
func openAccounts(ctx context.Context, cfg config.Config, log *slog.Logger) (*auth.KeySet, *sqlite.DB, error) {
	if err := openDataDir(cfg.DataDir, log); err != nil {
		return nil, nil, err
	}
	key, err := auth.LoadKey(cfg.JWTSecretFile, cfg.DataDir, log)
	if err != nil {
		return nil, nil, err
	}
	keys, err := auth.NewKeySet(key)
	if err != nil {
		return nil, nil, err
	}
	db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFile))
	if err != nil {
		return nil, nil, fmt.Errorf("--data-dir %s: %w", cfg.DataDir, err)
	}
	return keys, db, nil
}

// authConfig maps the server settings onto the authentication service.
func authConfig(cfg config.Config, keys *auth.KeySet) auth.Config {
	return auth.Config{
		Keys:                  keys,
		AccessTTL:             cfg.AccessTokenTTL,
		RefreshTTL:            cfg.RefreshTokenTTL,
		TicketTTL:             cfg.TicketTTL,
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
// derived Origin allowlist needs the real port. On error everything opened
// so far is closed.
func newNode(ctx context.Context, cfg config.Config, ln net.Listener, log *slog.Logger) (_ *node, err error) {
	if !cfg.PostgresURL.Empty() || !cfg.RedisURL.Empty() {
		return nil, errors.New("--postgres-url and --redis-url are not supported by this build yet; leave them unset for SQLite and in-process stores")
	}
	if cfg.AllowedOriginsDerived {
		cfg.AllowedOrigins = config.DefaultAllowedOrigins(cfg.PublicURL, ln.Addr().String())
	}
	n := &node{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			n.close()
		}
	}()
	keys, db, err := openAccounts(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	n.db = db
	n.tickets = memory.NewTicketStore()
	n.broker = memory.NewBroker()
	var auditor tollgate.Auditor = tollgate.NopAuditor{}

	ac := authConfig(cfg, keys)
	ac.Logger = log
	ac.Auditor = auditor
	ac.Control = n.broker
	if n.auth, err = auth.New(ac, db, db, n.tickets); err != nil {
		return nil, err
	}
	if n.hub, err = hub.New(hub.Config{
		Messages:       db,
		Broker:         n.broker,
		AnonymousRooms: cfg.AnonymousRooms,
		Logger:         log,
	}); err != nil {
		return nil, err
	}
	proto := jsonproto.New(jsonproto.Config{
		Hub:                 n.hub,
		Verifier:            n.auth,
		FirstMessageTimeout: cfg.FirstMessageTimeout,
		Auditor:             auditor,
		Logger:              log,
	})
	n.sockets = ws.New(ws.Config{
		MaxMessageBytes: cfg.MaxMessageBytes,
		IdleTimeout:     cfg.IdleTimeout,
		PingInterval:    cfg.PingInterval,
		WriteTimeout:    cfg.WriteTimeout,
		SendQueue:       cfg.SendQueue,
		Auditor:         auditor,
		Logger:          log,
	}, proto, map[string]ws.Protocol{jsonproto.Name: proto}, []string{jsonproto.Name})
	if n.api, err = httpapi.New(httpapi.Config{
		TrustedProxies: cfg.TrustedProxies,
		Logger:         log,
	}, httpapi.Deps{
		Auth:    n.auth,
		Sockets: n.sockets,
		Ready:   []httpapi.Check{{Name: "sqlite", Pinger: db}},
	}); err != nil {
		return nil, err
	}
	return n, nil
}

// close releases the stores; the node must have stopped serving.
func (n *node) close() {
	if n.auth != nil {
		n.auth.Close()
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			n.log.Error("closing the database", "error", err)
		}
	}
}
