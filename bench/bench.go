package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-ws/tollgate/ws"
)

// MaxSockets is the most sockets one bench process holds at once.
const MaxSockets = 19000

// Config is what every mode shares.
type Config struct {
	// Addr is the server's host:port. It must be a loopback address unless
	// Explicit is set (the operator named it on the command line).
	Addr     string
	Explicit bool
	// Credential is "bearer", "ticket" or "none" (the baseline server).
	Credential string
	// Users is how many accounts the run logs in as (sockets are spread
	// over them, to stay under per-user socket caps). Default: sockets/30+1.
	Users int
	// Password for the bench accounts; default random. Accounts are
	// registered if they do not exist.
	Password string
	// Origin, if set, is sent on every request.
	Origin string
	// Timeout bounds the whole run. Default 5m.
	Timeout time.Duration
	// Progress, if set, receives a live progress line every second.
	Progress io.Writer

	// run tells this run's accounts apart from earlier runs' when the
	// password is generated (their accounts cannot be logged in again).
	run string
}

func (c *Config) check(sockets int) error {
	if sockets <= 0 || sockets > MaxSockets {
		return fmt.Errorf("bench: sockets must be 1..%d per process (open files are capped at 20,000)", MaxSockets)
	}
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("bench: --addr %q: %v", c.Addr, err)
	}
	if !c.Explicit {
		ip, err := netip.ParseAddr(host)
		if (err != nil && host != "localhost") || (err == nil && !ip.IsLoopback()) {
			return fmt.Errorf("bench: %s is not a loopback address; name it with --addr to target it", c.Addr)
		}
	}
	switch c.Credential {
	case "bearer", "ticket", "none":
	default:
		return fmt.Errorf("bench: --credential must be bearer, ticket or none")
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Users <= 0 {
		c.Users = sockets/30 + 1
	}
	if c.Password == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		c.Password = hex.EncodeToString(b[:])
		c.run = "-" + hex.EncodeToString(b[:3])
	}
	return nil
}

// loopbackSource returns the i-th source address for a loopback target.
func (c *Config) source(i int) string {
	host, _, _ := net.SplitHostPort(c.Addr)
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() && ip.IsLoopback() {
		return "127.0.0." + strconv.Itoa(1+i%250)
	}
	return ""
}

// Latency summarizes durations in milliseconds.
type Latency struct {
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i].Microseconds()) / 1000
	}
	return Latency{P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: float64(d[len(d)-1].Microseconds()) / 1000}
}

// session is one logged-in bench account.
type session struct {
	name  string
	token string
}

// api talks to the server's REST endpoints.
type api struct {
	base   string
	origin string
	http   *http.Client
}

func newAPI(c *Config) *api {
	tr := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	return &api{base: "http://" + c.Addr, origin: c.Origin, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

func (a *api) post(ctx context.Context, path, bearer string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if a.origin != "" {
		req.Header.Set("Origin", a.origin)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

// login registers (if needed) and logs in n accounts named prefix-i.
func (a *api) login(ctx context.Context, prefix, password string, n, conc int) ([]session, error) {
	out := make([]session, n)
	err := parallel(n, conc, func(i int) error {
		name := fmt.Sprintf("%s-%d", prefix, i)
		a.register(ctx, name, password)
		s, err := a.loginAs(ctx, name, password)
		out[i] = s
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// register creates an account; one that exists already is fine.
func (a *api) register(ctx context.Context, name, password string) {
	_, _ = a.post(ctx, "/api/auth/register", "", map[string]string{"username": name, "password": password}, nil)
}

// loginAs opens a new login session of name.
func (a *api) loginAs(ctx context.Context, name, password string) (session, error) {
	var res struct {
		AccessToken string `json:"access_token"`
	}
	st, err := a.post(ctx, "/api/auth/login", "", map[string]string{"username": name, "password": password}, &res)
	if err != nil || st != 200 || res.AccessToken == "" {
		return session{}, fmt.Errorf("bench: login %s: status %d %v", name, st, err)
	}
	return session{name: name, token: res.AccessToken}, nil
}

// parallel runs f(0..n-1), conc at a time, and returns the first error.
func parallel(n, conc int, f func(i int) error) error {
	errs := make(chan error, n)
	sem := make(chan struct{}, max(conc, 1))
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (a *api) ticket(ctx context.Context, bearer string) (string, error) {
	var res struct {
		Ticket string `json:"ticket"`
		Error  struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	st, err := a.post(ctx, "/api/auth/ws-ticket", bearer, nil, &res)
	if err != nil {
		return "", err
	}
	if st != 200 {
		return "", &ws.HandshakeError{Status: st, Code: "ticket:" + res.Error.Code}
	}
	return res.Ticket, nil
}

// dialer opens sockets for one run.
type dialer struct {
	cfg      *Config
	api      *api
	sessions []session
}

func newDialer(ctx context.Context, cfg *Config, prefix string) (*dialer, error) {
	d := &dialer{cfg: cfg, api: newAPI(cfg)}
	if cfg.Credential == "none" {
		return d, nil
	}
	s, err := d.api.login(ctx, prefix+cfg.run, cfg.Password, cfg.Users, 8)
	if err != nil {
		return nil, err
	}
	d.sessions = s
	return d, nil
}

// dial opens socket i with the run's credential.
func (d *dialer) dial(ctx context.Context, i int, onMsg func([]byte), onClose func(int, string)) (*ws.Client, error) {
	url := "ws://" + d.cfg.Addr + "/ws"
	h := http.Header{}
	if d.cfg.Origin != "" {
		h.Set("Origin", d.cfg.Origin)
	}
	switch d.cfg.Credential {
	case "bearer":
		h.Set("Authorization", "Bearer "+d.sessions[i%len(d.sessions)].token)
	case "ticket":
		t, err := d.api.ticket(ctx, d.sessions[i%len(d.sessions)].token)
		if err != nil {
			return nil, err
		}
		url += "?ticket=" + t
	}
	return ws.Dial(ctx, ws.ClientConfig{URL: url, Header: h, LocalIP: d.cfg.source(i), Timeout: 10 * time.Second,
		ReadBufferSize: 1024, OnMessage: onMsg, OnClose: onClose})
}

// reason classifies a failure for the failures-by-reason table, without
// any secret (URLs with tickets are never included).
func reason(err error) string {
	var he *ws.HandshakeError
	switch {
	case errors.As(err, &he):
		if he.Code != "" {
			return strconv.Itoa(he.Status) + " " + he.Code
		}
		return strconv.Itoa(he.Status)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "net:" + oe.Op
	}
	return "other"
}

// progress prints a live line until stop is closed.
func progress(w io.Writer, stop <-chan struct{}, line func() string) {
	if w == nil {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			fmt.Fprintf(w, "\r%s\n", line())
			return
		case <-t.C:
			fmt.Fprintf(w, "\r%s", line())
		}
	}
}

type counter struct{ n atomic.Int64 }
