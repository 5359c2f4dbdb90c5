package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/config"
)

// keyKeep is how long a retired signing key still verifies: as long as a
// token it signed can live (the access-token TTL plus the largest leeway),
// or an anonymous session with --anonymous.
func keyKeep(cfg config.Config) time.Duration {
	keep := cfg.AccessTokenTTL + auth.MaxLeeway
	if cfg.Anonymous {
		keep = max(keep, auth.DefaultAnonymousTTL)
	}
	return keep
}

// loadKeys returns the signing keys: the current key (generated into the
// data dir on first start) and the retired keys still in their keep window.
func loadKeys(cfg config.Config, log *slog.Logger) (*auth.KeySet, error) {
	if _, err := auth.LoadKey(cfg.JWTSecretFile, cfg.DataDir, log); err != nil {
		return nil, err
	}
	return auth.LoadKeySet(cfg.JWTSecretFile, cfg.DataDir, time.Now(), keyKeep(cfg), log)
}

// keysCmd runs `tollgate keys rotate [serve settings]`: a new signing key
// becomes current; the old one verifies for keyKeep, then is dropped.
// Running nodes pick the new key up on SIGHUP or restart.
func keysCmd(args []string, stdout, stderr io.Writer, getenv env) error {
	if len(args) == 0 || args[0] != "rotate" {
		return errors.New("keys: usage: tollgate keys rotate [--data-dir DIR]")
	}
	cfg, err := config.Load(args[1:], getenv)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg).With("command", "keys rotate")
	if err := openDataDir(cfg.DataDir, log); err != nil {
		return err
	}
	kid, err := auth.RotateKey(cfg.JWTSecretFile, cfg.DataDir, time.Now(), keyKeep(cfg), log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new signing key %s; tokens of the previous key verify for %s more.\n"+
		"Send SIGHUP to running servers (or restart them) so they sign with it.\n", kid, keyKeep(cfg))
	return nil
}
