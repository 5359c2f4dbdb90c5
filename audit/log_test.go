package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tollgate-ws/tollgate"
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustVerify(t testing.TB, data []byte, want int) {
	t.Helper()
	n, err := Verify(bytes.NewReader(data))
	if err != nil || n != want {
		t.Fatalf("Verify = %d, %v; want %d, nil", n, err, want)
	}
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func TestRecordWritesContractFields(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	var copyBuf bytes.Buffer
	now := time.Date(2025, 6, 7, 8, 9, 10, 0, time.FixedZone("X", 3600))
	l, err := Open(path, Options{Copy: &copyBuf, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l.Record(ctx, tollgate.AuditEvent{Event: tollgate.AuditLogin, User: "alice", IP: "192.0.2.1",
		Origin: "https://chat.example", ConnID: "c1", Credential: tollgate.CredentialCookie})
	l.Record(ctx, tollgate.AuditEvent{Event: tollgate.AuditDisconnect, ConnID: "c1", Code: 1000, Seconds: 12.5})
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	l.Record(cancelled, tollgate.AuditEvent{Event: tollgate.AuditSessionRevoked, Reason: "session_revoked"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data := readFile(t, path)
	mustVerify(t, data, 3)
	if !bytes.Equal(copyBuf.Bytes(), data) {
		t.Fatalf("copy differs from the file:\n%s\n%s", copyBuf.Bytes(), data)
	}
	lines := splitLines(data)
	var first map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"ts": "2025-06-07T07:09:10Z", "event": "login", "user": "alice", "ip": "192.0.2.1",
		"origin": "https://chat.example", "conn_id": "c1", "credential": "cookie", "prev": zeroPrev}
	if fmt.Sprint(first) != fmt.Sprint(want) {
		t.Fatalf("line 1 = %v\nwant     %v", first, want)
	}
	var second map[string]any
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	if second["code"] != 1000.0 || second["seconds"] != 12.5 || second["prev"] != hashLine(lines[0]) {
		t.Fatalf("line 2 = %s", lines[1])
	}
	if !bytes.Contains(lines[2], []byte(`"event":"session_revoked"`)) {
		t.Fatalf("an event recorded with a cancelled ctx was not written: %s", data)
	}
	if l.Dropped() != 0 {
		t.Fatalf("Dropped = %d", l.Dropped())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

// Client-supplied strings are bounded and escaped; no line carries a field
// outside the contract's list; unencodable values do not lose the event.
func TestFieldsBoundedAndEscaped(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "SECRET-TOKEN-VALUE-0123456789"
	long := strings.Repeat("é", 1000) + secret // the secret sits past the bound
	injected := "bob\n{\"event\":\"login\",\"prev\":\"" + zeroPrev + "\"}\r\n\u2028<script>"
	ctx := context.Background()
	l.Record(ctx, tollgate.AuditEvent{Event: tollgate.AuditLoginFailed, User: long, Origin: long, Reason: long,
		IP: long, ConnID: long, Credential: tollgate.CredentialKind(long)})
	l.Record(ctx, tollgate.AuditEvent{Event: tollgate.AuditLoginFailed, User: injected})
	l.Record(ctx, tollgate.AuditEvent{Event: tollgate.AuditDisconnect, Seconds: math.NaN()})
	l.Record(ctx, tollgate.AuditEvent{Event: tollgate.AuditDisconnect, Seconds: math.Inf(1),
		TS: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)})
	l.Record(ctx, tollgate.AuditEvent{Event: tollgate.AuditKind(strings.Repeat("\x00", 100000)),
		User: strings.Repeat("\x80", 1000)})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data := readFile(t, path)
	mustVerify(t, data, 5)
	if bytes.Contains(data, []byte(secret)) {
		t.Fatal("a value past MaxFieldBytes reached the file")
	}
	allowed := []string{"ts", "event", "user", "ip", "origin", "conn_id", "credential", "reason", "code", "seconds", "prev"}
	for i, line := range splitLines(data) {
		if len(line) > 16<<10 {
			t.Errorf("line %d is %d bytes", i+1, len(line))
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		for k, v := range m {
			if !slices.Contains(allowed, k) {
				t.Errorf("line %d has field %q", i+1, k)
			}
			if s, ok := v.(string); ok && len(s) > MaxFieldBytes {
				t.Errorf("line %d field %q is %d bytes", i+1, k, len(s))
			}
		}
		if i == 0 {
			for _, k := range []string{"user", "origin", "reason", "ip", "conn_id", "credential"} {
				s := m[k].(string)
				if !utf8.ValidString(s) || !strings.HasSuffix(s, "…") || !strings.HasPrefix(s, "éé") {
					t.Errorf("field %q cut badly: %q", k, s)
				}
			}
		}
		if i == 1 && m["user"] != injected {
			t.Errorf("user = %q, want %q kept verbatim inside the JSON string", m["user"], injected)
		}
		if i == 3 && !strings.HasPrefix(m["ts"].(string), "20") {
			t.Errorf("an unencodable ts was kept: %v", m["ts"])
		}
	}
	if bytes.Contains(data, []byte("<script>")) {
		t.Error("< > not escaped")
	}
}

func TestConcurrentRecord(t *testing.T) {
	t.Parallel()
	const goroutines, each = 32, 300
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{QueueSize: goroutines * each}) // room for all: nothing may drop
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				l.Record(context.Background(), tollgate.AuditEvent{Event: tollgate.AuditConnect,
					ConnID: fmt.Sprintf("g%d-%d", g, i)})
				if i%50 == 0 {
					if err := l.Ping(context.Background()); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Dropped() != 0 {
		t.Fatalf("Dropped = %d", l.Dropped())
	}
	data := readFile(t, path)
	mustVerify(t, data, goroutines*each)
	seen := make(map[string]bool)
	for _, line := range splitLines(data) {
		var e tollgate.AuditEvent
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		if seen[e.ConnID] {
			t.Fatalf("%s written twice", e.ConnID)
		}
		seen[e.ConnID] = true
	}
}

func TestReopenContinuesChain(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	for round := range 3 {
		l, err := Open(path, Options{Sync: SyncAlways})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 4 {
			l.Record(context.Background(), event(round*10+i))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	mustVerify(t, readFile(t, path), 12)
}

func TestReopenTornLastLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tail func(data []byte) []byte // what the crash left
		keep int                      // complete lines left
	}{
		{"partial line", func(d []byte) []byte { return append(d, `{"ts":"2025-01-0`...) }, 3},
		{"line without newline", func(d []byte) []byte { return d[:len(d)-1] }, 2},
		{"zeros after a crash", func(d []byte) []byte { return append(d, make([]byte, 4096)...) }, 3},
		{"only a fragment", func(d []byte) []byte { return []byte(`{"ts":"20`) }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(path, tc.tail(makeLog(t, 3)), 0o600); err != nil {
				t.Fatal(err)
			}
			var logBuf bytes.Buffer
			var mu sync.Mutex
			l, err := Open(path, Options{Logger: newTestLogger(&mu, &logBuf)})
			if err != nil {
				t.Fatal(err)
			}
			l.Record(context.Background(), event(7))
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			mustVerify(t, readFile(t, path), tc.keep+1)
			mu.Lock()
			defer mu.Unlock()
			if !strings.Contains(logBuf.String(), "torn line") {
				t.Fatalf("no warning about the torn line: %s", logBuf.String())
			}
		})
	}
}

func TestOpenRefusesForeignLastLine(t *testing.T) {
	t.Parallel()
	valid := makeLog(t, 2)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"not JSON", append(bytes.Clone(valid), "hello world\n"...), "not an audit record"},
		{"no prev", append(bytes.Clone(valid), "{\"event\":\"login\"}\n"...), "no prev"},
		{"empty last line", append(bytes.Clone(valid), '\n'), "empty line"},
		{"last line too long", append(bytes.Clone(valid), append(bytes.Repeat([]byte("x"), MaxLineBytes+1), '\n')...), "longer than"},
		{"torn line too long", append(bytes.Clone(valid), bytes.Repeat([]byte("x"), MaxLineBytes+10)...), "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "audit.log")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			l, err := Open(path, Options{})
			if err == nil {
				l.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want %q", err, tc.want)
			}
			if !bytes.Equal(readFile(t, path), tc.data) {
				t.Fatal("Open changed a file it refused")
			}
		})
	}
}

func TestReopenLongLastLine(t *testing.T) {
	t.Parallel()
	// A last line of exactly MaxLineBytes is one Open must continue from.
	line := []byte(`{"prev":"` + zeroPrev + `","reason":"`)
	line = append(line, bytes.Repeat([]byte("x"), MaxLineBytes-len(line)-2)...)
	line = append(line, `"}`...)
	if len(line) != MaxLineBytes {
		t.Fatalf("line is %d bytes", len(line))
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, append(line, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(context.Background(), event(1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, readFile(t, path), 2)
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
		opts Options
	}{
		{"missing directory", filepath.Join(dir, "nope", "audit.log"), Options{}},
		{"directory", dir, Options{}},
		{"sync policy", filepath.Join(dir, "a.log"), Options{Sync: "sometimes"}},
		{"queue size", filepath.Join(dir, "a.log"), Options{QueueSize: -1}},
		{"queue wait", filepath.Join(dir, "a.log"), Options{QueueWait: -1}},
		{"sync period", filepath.Join(dir, "a.log"), Options{SyncPeriod: -1}},
	} {
		if l, err := Open(tc.path, tc.opts); err == nil {
			l.Close()
			t.Errorf("%s: Open succeeded", tc.name)
		}
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(context.Background(), event(1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	l.Record(context.Background(), event(2))
	if l.Dropped() != 1 {
		t.Fatalf("Dropped after a Record after Close = %d, want 1", l.Dropped())
	}
	if err := l.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ping after Close = %v", err)
	}
	mustVerify(t, readFile(t, path), 1)
}

// /dev/full fails every write with ENOSPC: Ping says so, Record neither
// blocks nor panics, and Close returns.
func TestWriteFailureDevFull(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	l, err := Open("/dev/full", Options{QueueSize: 8})
	if err != nil {
		t.Skipf("open /dev/full: %v", err)
	}
	ctx := context.Background()
	l.Record(ctx, event(0))
	eventually(t, "Ping to fail", func() bool { return l.Ping(ctx) != nil })
	if err := l.Ping(ctx); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Ping = %v, want ENOSPC", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			l.Record(ctx, event(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a failing disk")
	}
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped although the queue overflowed")
	}
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "events not written") {
		t.Fatalf("Close = %v", err)
	}
	if l.Dropped() != 1001 {
		t.Fatalf("Dropped = %d, want all 1001 events", l.Dropped())
	}
}

// fakeFile is an in-memory file opened with O_APPEND whose writes can fail,
// write part of their bytes, or block.
type fakeFile struct {
	mu         sync.Mutex
	data       []byte
	failWrites int  // the next this many writes fail with ENOSPC
	partial    bool // a failing write stores half its bytes first
	syncs      int
	block      chan struct{} // when set, Write waits for it to close
	blocked    chan struct{} // when set, Write sends on it before it waits
}

func (f *fakeFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		if f.blocked != nil {
			select {
			case f.blocked <- struct{}{}:
			default:
			}
		}
		<-block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWrites > 0 {
		f.failWrites--
		n := 0
		if f.partial {
			n = len(p) / 2
			f.data = append(f.data, p[:n]...)
		}
		return n, &os.PathError{Op: "write", Path: "fake", Err: syscall.ENOSPC}
	}
	f.data = append(f.data, p...)
	return len(p), nil
}

func (f *fakeFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	return nil
}

func (f *fakeFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = f.data[:size]
	return nil
}

func (f *fakeFile) Close() error { return nil }

func (f *fakeFile) bytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.data)
}

// startFake runs a Log on f that retries every millisecond.
func startFake(f *fakeFile, opts Options) *Log {
	l := newLog(f, "fake", 0, zeroPrev, opts, nil)
	l.w.retryEvery = time.Millisecond
	l.start()
	return l
}

// A write that fails part-way leaves no torn line: the retry cuts it first,
// and Ping recovers once writes work again.
func TestPartialWriteRecovers(t *testing.T) {
	t.Parallel()
	f := &fakeFile{}
	l := startFake(f, Options{})
	ctx := context.Background()
	l.Record(ctx, event(0))
	eventually(t, "the first line", func() bool { return len(f.bytes()) > 0 })
	f.mu.Lock()
	f.failWrites, f.partial = 3, true
	f.mu.Unlock()
	l.Record(ctx, event(1))
	eventually(t, "Ping to fail", func() bool { return l.Ping(ctx) != nil })
	l.Record(ctx, event(2))
	eventually(t, "Ping to recover", func() bool { return l.Ping(ctx) == nil })
	l.Record(ctx, event(3))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	mustVerify(t, f.bytes(), 4)
	if l.Dropped() != 0 {
		t.Fatalf("Dropped = %d", l.Dropped())
	}
}

// A full queue drops events instead of blocking Record; whatever was queued
// is written, so written + dropped = recorded.
func TestFullQueueDrops(t *testing.T) {
	t.Parallel()
	block, blocked := make(chan struct{}), make(chan struct{}, 1)
	f := &fakeFile{block: block, blocked: blocked}
	l := startFake(f, Options{QueueSize: 4, QueueWait: time.Millisecond})
	const total = 100
	// The writer takes the first event and sticks in Write; only then can
	// the queue fill up (until then the writer drains it as fast as Record
	// fills it, and a loaded machine would drop nothing).
	l.Record(context.Background(), event(0))
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer never wrote")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i < total; i++ {
			l.Record(context.Background(), event(i))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Record blocked on a full queue")
	}
	if l.Dropped() == 0 {
		t.Fatal("nothing dropped")
	}
	close(block)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := Verify(bytes.NewReader(f.bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if uint64(n)+l.Dropped() != total {
		t.Fatalf("%d written + %d dropped != %d recorded", n, l.Dropped(), total)
	}
}

// A write that blocks longer than stallLimit makes Ping fail. The stall is
// simulated by backdating busySince, not by waiting.
func TestPingReportsStall(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	f := &fakeFile{block: block}
	l := startFake(f, Options{})
	l.Record(context.Background(), event(0))
	eventually(t, "the write to start", func() bool { return l.busySince.Load() != 0 })
	l.busySince.Store(time.Now().Add(-time.Minute).UnixNano())
	if err := l.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("Ping = %v", err)
	}
	close(block)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Ping(cancelled); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping(cancelled) = %v", err)
	}
}

func TestSyncPolicies(t *testing.T) {
	t.Parallel()
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			f := &fakeFile{}
			l := startFake(f, Options{Sync: p, SyncPeriod: time.Millisecond})
			l.Record(context.Background(), event(0))
			eventually(t, "the line", func() bool { return len(f.bytes()) > 0 })
			if p != SyncNever {
				eventually(t, "an fsync", func() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.syncs > 0 })
			}
			f.mu.Lock()
			before := f.syncs
			f.mu.Unlock()
			if p == SyncNever && before != 0 {
				t.Fatalf("%d fsyncs before Close", before)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if p == SyncNever && f.syncs != 1 {
				t.Fatalf("%d fsyncs at Close, want 1", f.syncs)
			}
			mustVerify(t, f.bytes(), 1)
		})
	}
}

func BenchmarkRecord(b *testing.B) {
	path := filepath.Join(b.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := event(1)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Record(ctx, e)
		}
	})
	b.StopTimer()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(l.Dropped())/float64(b.N), "dropped/op")
}

// lockedWriter lets a test read what a Logger wrote.
type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newTestLogger(mu *sync.Mutex, b *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, nil))
}
