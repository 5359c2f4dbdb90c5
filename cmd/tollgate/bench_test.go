package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate/bench"
	"github.com/tollgate-ws/tollgate/internal/testenv"
)

// runBench runs `tollgate bench ARGS` in-process and decodes its JSON
// summary. It checks that the summary has exactly the keys want (nested
// objects by "outer.inner") and returns it.
func runBench(t *testing.T, want []string, args ...string) map[string]any {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := benchCmd(ctx, args, &out, &errOut); err != nil {
		t.Fatalf("bench %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("bench %s: the summary is not JSON: %v\n%s", args[0], err, out.String())
	}
	var got []string
	for k, v := range res {
		if o, ok := v.(map[string]any); ok && (k == "latency" || k == "handshake" || k == "issue_redeem" || k == "issue" || k == "redeem" || k == "good_latency") {
			for kk := range o {
				got = append(got, k+"."+kk)
			}
			continue
		}
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("bench %s: summary keys\n got %v\nwant %v", args[0], got, want)
	}
	return res
}

func num(t *testing.T, res map[string]any, key string) float64 {
	t.Helper()
	v, ok := res[key].(float64)
	if !ok {
		t.Fatalf("summary %q is %T, not a number", key, res[key])
	}
	return v
}

func wantNums(t *testing.T, res map[string]any, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if got := num(t, res, k); got != v {
			t.Errorf("%s: %v = %v, want %v", res["mode"], k, got, v)
		}
	}
}

var latencyKeys = func(prefix string) []string {
	return []string{prefix + ".p50_ms", prefix + ".p95_ms", prefix + ".p99_ms", prefix + ".max_ms"}
}

// TestBenchModesAgainstRealServer runs every bench mode at small N against
// `tollgate serve` (and the baseline server) on loopback, and checks counts
// and the JSON shape of each summary, never timings.
func TestBenchModesAgainstRealServer(t *testing.T) {
	s := startServer(t, t.TempDir(), &syncBuffer{}, &secrets{}, "--login-rate", "1000", "--handshake-rate", "1000")
	addr := strings.TrimPrefix(s.url, "http://")

	connectKeys := append([]string{"mode", "credential", "n", "concurrency", "ok", "failed", "failures_by_reason",
		"seconds", "connects_per_sec"}, latencyKeys("handshake")...)
	for _, cred := range []string{"bearer", "ticket"} {
		res := runBench(t, connectKeys, "connect", "--addr", addr, "--credential", cred, "--n", "30", "--c", "4")
		wantNums(t, res, map[string]float64{"n": 30, "ok": 30, "failed": 0, "concurrency": 4})
		if res["credential"] != cred || num(t, res, "connects_per_sec") <= 0 {
			t.Errorf("connect %s: %v", cred, res)
		}
	}

	// With the server's pid (this test process), CPU per connect too.
	res := runBench(t, slices.Concat(connectKeys, []string{"server_cpu_us_per_connect", "client_cpu_us_per_connect"}),
		"connect", "--addr", addr, "--credential", "bearer", "--n", "200", "--c", "4", "--pid", strconv.Itoa(os.Getpid()))
	wantNums(t, res, map[string]float64{"ok": 200, "failed": 0})
	if num(t, res, "server_cpu_us_per_connect") <= 0 {
		t.Errorf("connect --pid: no server CPU measured: %v", res)
	}

	res = runBench(t, []string{"mode", "credential", "k", "held", "closed_early", "failures_by_reason", "rss_before_kib",
		"rss_after_kib", "kib_per_socket", "rss_half_kib", "kib_per_socket_second_half", "settle_seconds", "connect_seconds"},
		"idle", "--addr", addr, "--credential", "ticket", "--k", "20", "--c", "4", "--pid", strconv.Itoa(os.Getpid()), "--settle", "100ms")
	wantNums(t, res, map[string]float64{"k": 20, "held": 20, "closed_early": 0})

	fanoutKeys := append([]string{"mode", "target", "k", "p", "rate", "expected", "delivered", "lost", "duplicated", "seconds",
		"delivered_per_sec", "members_failed"}, latencyKeys("latency")...)
	res = runBench(t, fanoutKeys, "fanout", "--addr", addr, "--credential", "ticket", "--k", "5", "--p", "10", "--rate", "100", "--drain", "10s")
	wantNums(t, res, map[string]float64{"k": 5, "p": 10, "expected": 50, "delivered": 50, "lost": 0, "duplicated": 0, "members_failed": 0})

	res = runBench(t, append([]string{"mode", "credential", "k", "sessions", "users", "logout_concurrency", "opened", "closed",
		"missing", "unexpected_closes", "failures_by_reason", "seconds"}, latencyKeys("latency")...),
		"revoke", "--addr", addr, "--credential", "bearer", "--k", "25", "--c", "5", "--logout-c", "2")
	wantNums(t, res, map[string]float64{"k": 25, "sessions": 3, "users": 1, "logout_concurrency": 2, "opened": 25,
		"closed": 25, "missing": 0})
	if u, _ := res["unexpected_closes"].(map[string]any); len(u) != 0 {
		t.Errorf("revoke: unexpected closes %v", u)
	}

	ticketKeys := append(append(append([]string{"mode", "store", "n", "concurrency", "ok", "failed", "seconds",
		"issue_redeem_per_sec"}, latencyKeys("issue_redeem")...), latencyKeys("issue")...), latencyKeys("redeem")...)
	res = runBench(t, ticketKeys, "tickets", "--n", "200")
	wantNums(t, res, map[string]float64{"n": 200, "ok": 200, "failed": 0, "concurrency": 1})

	// A short soak on its own server: abusers get blocked there.
	soak := startServer(t, t.TempDir(), &syncBuffer{}, &secrets{}, "--login-rate", "1000")
	res = runBench(t, append([]string{"mode", "seconds", "good", "abusive", "good_sent", "good_expected", "good_delivered",
		"good_lost", "good_duplicated", "good_refused", "good_closed", "abuse"}, latencyKeys("good_latency")...),
		"soak", "--addr", strings.TrimPrefix(soak.url, "http://"), "--good", "3", "--abusive", "4", "--every", "500ms", "--duration", "3s")
	wantNums(t, res, map[string]float64{"good": 3, "abusive": 4, "good_lost": 0, "good_duplicated": 0, "good_closed": 0})
	if num(t, res, "good_sent") < 3 || num(t, res, "good_expected") != 3*num(t, res, "good_sent") {
		t.Errorf("soak: %v", res)
	}
	if a, _ := res["abuse"].(map[string]any); len(a) == 0 {
		t.Errorf("soak: the abusers did nothing: %v", res)
	}

	// The baseline server, and the modes that target it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bench.Baseline(bctx, ln, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("baseline: %v", err)
		}
	})
	baddr := ln.Addr().String()
	res = runBench(t, connectKeys, "connect", "--addr", baddr, "--credential", "none", "--n", "30", "--c", "4")
	wantNums(t, res, map[string]float64{"ok": 30, "failed": 0})
	res = runBench(t, fanoutKeys, "fanout", "--baseline", "--addr", baddr, "--credential", "none", "--k", "5", "--p", "10",
		"--rate", "100", "--drain", "10s")
	wantNums(t, res, map[string]float64{"expected": 50, "delivered": 50, "lost": 0, "duplicated": 0})
	if res["target"] != "baseline" {
		t.Errorf("fanout target %v", res["target"])
	}
}

// TestBenchTicketsRedis: the ticket mode through Redis.
func TestBenchTicketsRedis(t *testing.T) {
	url := testenv.Redis(t)
	res := runBench(t, append(append(append([]string{"mode", "store", "n", "concurrency", "ok", "failed", "seconds",
		"issue_redeem_per_sec"}, latencyKeys("issue_redeem")...), latencyKeys("issue")...), latencyKeys("redeem")...),
		"tickets", "--n", "100", "--c", "4", "--redis-url", url)
	wantNums(t, res, map[string]float64{"n": 100, "ok": 100, "failed": 0, "concurrency": 4})
	if res["store"] != "redis" {
		t.Errorf("store %v", res["store"])
	}
}

// TestBenchRefusesNonLoopback: a non-loopback target must be named
// explicitly, and counts are bounded.
func TestBenchRefusesNonLoopback(t *testing.T) {
	ctx := context.Background()
	if _, err := bench.Connect(ctx, bench.Config{Addr: "192.0.2.1:80", Credential: "none"}, 10, 1, 0); err == nil ||
		!strings.Contains(err.Error(), "loopback") {
		t.Errorf("non-loopback target: %v", err)
	}
	if _, err := bench.Revoke(ctx, bench.Config{Addr: "127.0.0.1:1", Credential: "bearer"}, bench.MaxSockets+1, 1, 1, 0); err == nil {
		t.Error("revoke above MaxSockets was accepted")
	}
	if _, err := bench.Revoke(ctx, bench.Config{Addr: "127.0.0.1:1", Credential: "none"}, 10, 1, 1, 0); err == nil {
		t.Error("revoke without a credential was accepted")
	}
}
