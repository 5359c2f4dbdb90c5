package web_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The JavaScript tests live in e2e/ and run under node --test against a real
// tollgate binary: sdk.test.mjs (the SDK's reconnect, resume, retry and
// renewal logic) and browser.test.mjs (Playwright driving Debian's chromium).
// TestJavaScript is their one Go entry, so `go test ./...` runs them. Under
// CI=true nothing skips: missing tools are installed by scripts/web-deps.sh,
// and what is still missing fails the test.

// chromium is where Debian's package puts the browser (the only one used:
// Playwright never downloads its own).
const chromium = "/usr/bin/chromium"

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// moduleRoot is the directory of go.mod (go env GOMOD).
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not in a module")
	}
	return filepath.Dir(gomod)
}

// tollgateBinary builds ./cmd/tollgate once per test run.
func tollgateBinary(t *testing.T) string {
	t.Helper()
	root := moduleRoot(t)
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "tollgate-web-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "tollgate")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/tollgate")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/tollgate: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// server is a tollgate child process on 127.0.0.1:0.
type server struct {
	url  string
	cmd  *exec.Cmd
	logs *bytes.Buffer
}

var listening = regexp.MustCompile(`msg="tollgate listening" addr=(\S+)`)

func startServer(t *testing.T, flags ...string) *server {
	t.Helper()
	bin := tollgateBinary(t)
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, flags...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: &bytes.Buffer{}}
	addr := make(chan string, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			mu.Lock()
			s.logs.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("tollgate did not start:\n%s", s.logs)
	}
	return s
}

// TestServedByTollgate checks the pages as the real server serves them:
// through httpapi's middleware (Deps.Pages), next to the API's own answers.
func TestServedByTollgate(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, tc := range []struct {
		path, contentType string
		status            int
		page              bool
	}{
		{"/", "text/html; charset=utf-8", 200, true},
		{"/sdk/tollgate.js", "text/javascript; charset=utf-8", 200, true},
		{"/app.js", "text/javascript; charset=utf-8", 200, true},
		{"/nope", "application/json", 404, true},
		{"/api/nope", "application/json", 404, false}, // the API's own 404, never a page
		{"/healthz", "application/json", 200, false},
	} {
		res, err := http.Get(s.url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || res.Header.Get("Content-Type") != tc.contentType {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, res.StatusCode, res.Header.Get("Content-Type"), tc.status, tc.contentType)
		}
		if tc.page {
			checkSecurityHeaders(t, res.Header)
		}
		if tc.status == 404 && !bytes.Contains(body, []byte(`"code":"not_found"`)) {
			t.Errorf("GET %s: body %s", tc.path, body)
		}
	}
}

// TestJavaScript runs the Node tests of the SDK and the Playwright tests of
// the chat page against the real server binary.
func TestJavaScript(t *testing.T) {
	root := moduleRoot(t)
	dir := filepath.Join(root, "web", "e2e")
	ci := os.Getenv("CI") == "true"
	if missing := missingDeps(dir); len(missing) > 0 {
		if !ci {
			t.Skipf("skipping the SDK and browser tests: missing %s; run scripts/web-deps.sh to install them (under CI=true they are installed, and a failure to do so fails)",
				strings.Join(missing, ", "))
		}
		t.Logf("installing %s with scripts/web-deps.sh", strings.Join(missing, ", "))
		cmd := exec.Command("bash", filepath.Join(root, "scripts", "web-deps.sh"))
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("scripts/web-deps.sh: %v\n%s", err, out)
		}
		if missing := missingDeps(dir); len(missing) > 0 {
			t.Fatalf("still missing after scripts/web-deps.sh: %s\n%s", strings.Join(missing, ", "), out)
		}
	}
	bin := tollgateBinary(t)
	artifacts := filepath.Join(root, "test-artifacts", "web")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"sdk.test.mjs", "browser.test.mjs"} {
		t.Run(strings.TrimSuffix(file, ".test.mjs"), func(t *testing.T) {
			runNode(t, dir, file, bin, artifacts)
		})
	}
}

// runNode runs one test file under node --test and fails with its output.
func runNode(t *testing.T, dir, file, bin, artifacts string) {
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "node", "--test", "--test-concurrency=1", "--test-reporter=spec", file)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"TOLLGATE_BIN="+bin,
		"TOLLGATE_ARTIFACTS="+artifacts,
		"CHROMIUM="+chromium,
		"NO_COLOR=1",
		"FORCE_COLOR=0",
	)
	cmd.WaitDelay = 10 * time.Second
	out := &lineLogger{t: t}
	cmd.Stdout, cmd.Stderr = out, out
	err := cmd.Run()
	out.flush()
	if err != nil {
		t.Fatalf("node --test %s: %v (its output is above)", file, err)
	}
	if file == "browser.test.mjs" {
		t.Logf("screenshots in %s", artifacts)
	}
}

// missingDeps lists what the JavaScript tests need and this machine lacks.
func missingDeps(dir string) []string {
	var missing []string
	out, err := exec.Command("node", "-p", "process.versions.node").Output()
	if err != nil {
		missing = append(missing, "node")
	} else if major, _ := strconv.Atoi(strings.SplitN(strings.TrimSpace(string(out)), ".", 2)[0]); major < 20 {
		missing = append(missing, "node 20+ (found "+strings.TrimSpace(string(out))+")")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium)
	}
	for _, pkg := range []string{"playwright-core", "ws"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing = append(missing, "npm package "+pkg+" (npm ci in web/e2e)")
		}
	}
	return missing
}

// lineLogger passes a child's output to t.Log line by line.
type lineLogger struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.t.Log(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.t.Log(string(l.buf))
		l.buf = nil
	}
}
