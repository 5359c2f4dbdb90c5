package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestMain lets a test run the real program in a child process: with
// TOLLGATE_TEST_MAIN=1 the test binary is tollgate.
func TestMain(m *testing.M) {
	if os.Getenv("TOLLGATE_TEST_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

var listening = regexp.MustCompile(`msg="tollgate listening" addr=(\S+)`)

// TestSIGTERMClosesSockets1001: the real process, sent SIGTERM, closes its
// sockets 1001 and exits 0.
func TestSIGTERMClosesSockets1001(t *testing.T) {
	cmd := exec.Command(os.Args[0], "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "TOLLGATE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	s := &testServer{t: t, taken: &secrets{}}
	select {
	case a := <-addr:
		s.url, s.ws = "http://"+a, "ws://"+a+"/ws"
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not start")
	}
	c := s.open(s.register("judy"))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, reason := c.closed(); code != websocket.StatusGoingAway || reason != "shutting_down" {
		t.Fatalf("close at SIGTERM: %d %q", code, reason)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) || err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the process did not exit within 15s of SIGTERM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, _, err := websocket.Dial(ctx, s.ws, nil); err == nil {
		t.Fatal("the server still accepts after exiting")
	}
}
