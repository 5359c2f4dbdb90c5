package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate-ws/tollgate/audit"
	"github.com/tollgate-ws/tollgate/config"
)

// adminTimeout bounds one call of the admin API.
const adminTimeout = 30 * time.Second

// adminClient calls a running server's admin API (docs/api.md, "Admin API")
// with the admin token.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// newAdminClient resolves --server and the admin token from the serve
// settings (flags, TOLLGATE_* and --config) in args.
func newAdminClient(args []string, getenv env) (*adminClient, error) {
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return nil, err
	}
	tok, err := loadAdminToken(cfg.AdminTokenFile, getenv)
	if err != nil {
		return nil, err
	}
	if tok.Empty() {
		return nil, errors.New("an admin token is needed: set TOLLGATE_ADMIN_TOKEN or --admin-token-file")
	}
	return &adminClient{base: strings.TrimRight(cfg.Server, "/"), token: tok.Reveal(), http: &http.Client{Timeout: adminTimeout}}, nil
}

// call sends one request and decodes the JSON answer into out; an error
// answer becomes an error with the server's code and message.
func (a *adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("calling %s: %w", a.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s: %s (%s)", resp.Status, e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// splitPositional takes up to n leading arguments that are not flags; the
// rest are serve settings (--server, --admin-token-file, --config, ...).
// Positional arguments come first, so a flag's value is never taken for one.
func splitPositional(args []string, n int) (pos, rest []string) {
	i := 0
	for i < len(args) && i < n && !strings.HasPrefix(args[i], "-") {
		i++
	}
	return args[:i], args[i:]
}

// blockCmd runs `tollgate block list|add|remove`.
func blockCmd(ctx context.Context, args []string, stdout io.Writer, getenv env) error {
	const usage = "block: usage: tollgate block list | add user:NAME|ip:ADDR [--for 1h] [--reason TEXT] | remove user:NAME|ip:ADDR"
	if len(args) == 0 {
		return errors.New(usage)
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "list":
		a, err := newAdminClient(args, getenv)
		if err != nil {
			return err
		}
		var out struct {
			Blocks []struct {
				Kind, Target, Name, Reason string
				Until                      time.Time
			} `json:"blocks"`
		}
		if err := a.call(ctx, http.MethodGet, "/api/admin/blocks", nil, &out); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tTARGET\tNAME\tUNTIL\tREASON")
		for _, b := range out.Blocks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Kind, b.Target, b.Name, b.Until.UTC().Format(time.RFC3339), b.Reason)
		}
		return tw.Flush()
	case "add":
		fs := flag.NewFlagSet("block add", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		dur := fs.Duration("for", time.Hour, "how long")
		reason := fs.String("reason", "", "why")
		pos, rest := splitPositional(args, 1)
		own, settings := ownFlags(rest, "for", "reason")
		if err := fs.Parse(own); err != nil {
			return fmt.Errorf("block add: %w", err)
		}
		if len(pos) != 1 {
			return errors.New(usage)
		}
		a, err := newAdminClient(settings, getenv)
		if err != nil {
			return err
		}
		body := map[string]string{"target": pos[0], "for": dur.String(), "reason": *reason}
		var out struct {
			Block struct{ Until time.Time } `json:"block"`
		}
		if err := a.call(ctx, http.MethodPost, "/api/admin/blocks", body, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "blocked %s until %s\n", pos[0], out.Block.Until.UTC().Format(time.RFC3339))
		return nil
	case "remove":
		pos, rest := splitPositional(args, 1)
		if len(pos) != 1 {
			return errors.New(usage)
		}
		a, err := newAdminClient(rest, getenv)
		if err != nil {
			return err
		}
		var out struct {
			Removed bool `json:"removed"`
		}
		if err := a.call(ctx, http.MethodDelete, "/api/admin/blocks/"+url.PathEscape(pos[0]), nil, &out); err != nil {
			return err
		}
		if out.Removed {
			fmt.Fprintf(stdout, "unblocked %s\n", pos[0])
		} else {
			fmt.Fprintf(stdout, "%s was not blocked\n", pos[0])
		}
		return nil
	}
	return errors.New(usage)
}

// ownFlags splits args into the named flags of a subcommand (with their
// values) and the rest, which are serve settings.
func ownFlags(args []string, names ...string) (own, rest []string) {
	is := func(a string) (bool, bool) {
		for _, n := range names {
			for _, p := range []string{"-" + n, "--" + n} {
				if a == p {
					return true, true
				}
				if strings.HasPrefix(a, p+"=") {
					return true, false
				}
			}
		}
		return false, false
	}
	for i := 0; i < len(args); i++ {
		match, takesNext := is(args[i])
		switch {
		case match && takesNext && i+1 < len(args):
			own = append(own, args[i], args[i+1])
			i++
		case match:
			own = append(own, args[i])
		default:
			rest = append(rest, args[i])
		}
	}
	return own, rest
}

// userDisable runs `tollgate user disable NAME` against a running server.
func userDisable(ctx context.Context, args []string, stdout io.Writer, getenv env) error {
	pos, rest := splitPositional(args, 1)
	if len(pos) != 1 {
		return errors.New("user disable: usage: tollgate user disable NAME")
	}
	a, err := newAdminClient(rest, getenv)
	if err != nil {
		return err
	}
	if err := a.call(ctx, http.MethodPost, "/api/admin/users/"+url.PathEscape(pos[0])+"/disable", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "disabled %s; its sessions are revoked and its sockets closed\n", pos[0])
	return nil
}

// auditCmd runs `tollgate audit verify [FILE]` (default <data-dir>/audit.log).
func auditCmd(args []string, stdout io.Writer, getenv env) error {
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("audit: usage: tollgate audit verify [FILE]")
	}
	pos, rest := splitPositional(args[1:], 1)
	path := ""
	if len(pos) == 1 {
		path = pos[0]
	} else {
		cfg, err := config.Load(rest, getenv)
		if err != nil {
			return err
		}
		path = filepath.Join(cfg.DataDir, AuditFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil {
		return fmt.Errorf("audit verify %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "%s: %d lines, chain intact\n", path, n)
	return nil
}
