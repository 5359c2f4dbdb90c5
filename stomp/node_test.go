package stomp_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate/stomp"
)

// needTool finds a program for the Node interop test: missing, the test is
// skipped on a laptop and fails under CI=true (STYLE.md, "Tests").
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v", name, err)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

// TestNodeStompJS runs testdata/node/interop.test.mjs (@stomp/stompjs on
// Node 20, `node --test`) against two servers on 127.0.0.1: one with
// heart-beats of 200 ms, one with --stomp-send-token=required. It installs
// the pinned packages (npm ci) when node_modules is missing.
func TestNodeStompJS(t *testing.T) {
	node := needTool(t, "node")
	npm := needTool(t, "npm")
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(strings.TrimPrefix(strings.TrimSpace(string(out)), "v"), ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	if major < 20 || (major == 20 && minor < 14) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Node 20.14 or later is required, found %s", out)
		}
		t.Skipf("Node 20.14 or later is required, found %s", out)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "node"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@stomp", "stompjs")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("npm ci: %v\n%s", err, out)
			}
			t.Skipf("npm ci failed (offline?): %v", err)
		}
	}
	plain := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.Heartbeat = 200 * time.Millisecond }})
	secure := newStack(t, stackOpts{proto: func(c *stomp.Config) { c.SendTokenRequired = true }})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec",
		"--test-timeout=60000", "--test-force-exit", "interop.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TOLLGATE_URL="+plain.url, "TOLLGATE_SECURE_URL="+secure.url, "NO_COLOR=1")
	res, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", res)
	if err != nil {
		t.Fatalf("node --test: %v", err)
	}
	plain.checkLogs()
	secure.checkLogs()
}
