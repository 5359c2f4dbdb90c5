package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/auth"
	"github.com/tollgate-ws/tollgate/config"
)

// userCmd runs `tollgate user add NAME [--admin] [serve flags]`: it creates
// an account in the data dir's database, with the password read from the
// first line of stdin. It works beside a running server (SQLite waits for
// the writer lock) and whether or not registration is open.
func userCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv env) error {
	if len(args) == 0 || args[0] != "add" {
		return errors.New("user: usage: tollgate user add NAME [--admin] [--data-dir DIR] < password")
	}
	name, admin, rest := "", false, make([]string, 0, len(args))
	for _, a := range args[1:] {
		switch {
		case a == "--admin" || a == "-admin":
			admin = true
		case name == "" && !strings.HasPrefix(a, "-"):
			name = a
		default:
			rest = append(rest, a)
		}
	}
	if name == "" {
		return errors.New("user add: a user name is required")
	}
	cfg, err := config.Load(rest, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, "usage: tollgate user add NAME [--admin] [serve settings such as --data-dir]\n"+
			"The password is the first line of stdin.\n")
		return nil
	}
	if err != nil {
		return err
	}
	password, err := readPassword(stdin)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg).With("command", "user add")
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := openDataDir(cfg.DataDir, log); err != nil {
		return err
	}
	keys, err := loadKeys(cfg, log)
	if err != nil {
		return err
	}
	st, err := openStores(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer st.close(log)
	ac := authConfig(cfg, keys)
	ac.OIDC = auth.OIDCConfig{} // accounts do not need the identity provider
	ac.Logger = log
	svc, err := auth.New(ac, st.users, st.sessions, st.tickets)
	if err != nil {
		return err
	}
	defer svc.Close()
	u, err := svc.CreateUser(ctx, name, password, admin, tollgate.ClientInfo{IP: "local"})
	if err != nil {
		return fmt.Errorf("user add %s: %s", name, tollgate.AsError(err).Message)
	}
	role := "user"
	if admin {
		role = "admin"
	}
	fmt.Fprintf(stdout, "created %s %s (id %s)\n", role, u.Name, u.ID)
	return nil
}

// readPassword reads the first line of r, without its line ending. It reads
// at most one byte more than the longest password allowed.
func readPassword(r io.Reader) (tollgate.Secret, error) {
	br := bufio.NewReader(io.LimitReader(r, tollgate.MaxPasswordLen+2))
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if !tollgate.ValidPassword(line) {
		return "", fmt.Errorf("the password on stdin must be %d to %d bytes on one line", tollgate.MinPasswordLen, tollgate.MaxPasswordLen)
	}
	return tollgate.Secret(line), nil
}
