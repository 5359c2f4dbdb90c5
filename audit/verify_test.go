package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// makeLog writes n events through a real Log and returns the file's bytes.
func makeLog(t testing.TB, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l.Record(context.Background(), event(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return readFile(t, path)
}

func event(i int) tollgate.AuditEvent {
	return tollgate.AuditEvent{
		TS:         time.Date(2025, 1, 2, 3, 4, 5, i, time.UTC),
		Event:      tollgate.AuditLogin,
		User:       fmt.Sprintf("user%d", i),
		IP:         "192.0.2.7",
		Origin:     "https://chat.example",
		ConnID:     fmt.Sprintf("c%d", i),
		Credential: tollgate.CredentialBearer,
	}
}

// splitLines returns the lines of b, each without its newline.
func splitLines(b []byte) [][]byte {
	s := bytes.Split(b, []byte("\n"))
	return s[:len(s)-1]
}

func joinLines(lines [][]byte) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func TestVerify(t *testing.T) {
	t.Parallel()
	orig := splitLines(makeLog(t, 5))
	if len(orig) != 5 {
		t.Fatalf("makeLog wrote %d lines, want 5", len(orig))
	}
	// edit returns a copy of the 5 lines with f applied.
	edit := func(f func(l [][]byte) [][]byte) []byte {
		c := make([][]byte, len(orig))
		for i := range orig {
			c[i] = bytes.Clone(orig[i])
		}
		return joinLines(f(c))
	}
	const mismatch = "prev does not match the line before"
	tests := []struct {
		name   string
		data   []byte
		line   int    // 0: intact
		lines  int    // when intact
		reason string // part of BrokenError.Reason
	}{
		{name: "intact", data: edit(func(l [][]byte) [][]byte { return l }), lines: 5},
		{name: "empty file", data: nil, lines: 0},
		{name: "one line", data: edit(func(l [][]byte) [][]byte { return l[:1] }), lines: 1},
		{name: "line 3 edited", data: edit(func(l [][]byte) [][]byte {
			l[2] = bytes.Replace(l[2], []byte("user2"), []byte("admin"), 1)
			return l
		}), line: 4, reason: mismatch},
		{name: "line 1 edited", data: edit(func(l [][]byte) [][]byte {
			l[0] = bytes.Replace(l[0], []byte("192.0.2.7"), []byte("192.0.2.8"), 1)
			return l
		}), line: 2, reason: mismatch},
		{name: "line 3 removed", data: edit(func(l [][]byte) [][]byte {
			return append(l[:2], l[3:]...)
		}), line: 3, reason: mismatch},
		{name: "line 1 removed", data: edit(func(l [][]byte) [][]byte { return l[1:] }),
			line: 1, reason: "first line is not 64 zeros"},
		{name: "lines 2 and 3 swapped", data: edit(func(l [][]byte) [][]byte {
			l[1], l[2] = l[2], l[1]
			return l
		}), line: 2, reason: mismatch},
		{name: "lines 4 and 5 swapped", data: edit(func(l [][]byte) [][]byte {
			l[3], l[4] = l[4], l[3]
			return l
		}), line: 4, reason: mismatch},
		{name: "line appended with bad prev", data: edit(func(l [][]byte) [][]byte {
			return append(l, []byte(`{"ts":"2025-01-02T03:04:05Z","event":"login","user":"mallory","prev":"`+hashLine(l[3])+`"}`))
		}), line: 6, reason: mismatch},
		{name: "line appended with zero prev", data: edit(func(l [][]byte) [][]byte {
			return append(l, []byte(`{"event":"login","prev":"`+zeroPrev+`"}`))
		}), line: 6, reason: mismatch},
		{name: "garbage line replaces line 3", data: edit(func(l [][]byte) [][]byte {
			l[2] = []byte("this is not json")
			return l
		}), line: 3, reason: "not a JSON object"},
		{name: "garbage line inserted", data: edit(func(l [][]byte) [][]byte {
			return append(l[:2], append([][]byte{[]byte(`{"ts":`)}, l[2:]...)...)
		}), line: 3, reason: "not a JSON object"},
		{name: "JSON array", data: edit(func(l [][]byte) [][]byte {
			l[1] = []byte(`["prev"]`)
			return l
		}), line: 2, reason: "not a JSON object"},
		{name: "JSON null", data: edit(func(l [][]byte) [][]byte {
			l[1] = []byte(`null`)
			return l
		}), line: 2, reason: "not a JSON object"},
		{name: "empty line", data: edit(func(l [][]byte) [][]byte {
			return append(l[:2], append([][]byte{{}}, l[2:]...)...)
		}), line: 3, reason: "empty line"},
		{name: "no prev", data: edit(func(l [][]byte) [][]byte {
			l[1] = []byte(`{"event":"login"}`)
			return l
		}), line: 2, reason: "no prev"},
		{name: "prev not a string", data: edit(func(l [][]byte) [][]byte {
			l[1] = []byte(`{"prev":7}`)
			return l
		}), line: 2, reason: "prev is not a string"},
		{name: "prev upper case", data: edit(func(l [][]byte) [][]byte {
			l[1] = []byte(`{"prev":"` + strings.ToUpper(hashLine(l[0])) + `"}`)
			return l
		}), line: 2, reason: "64 lowercase hex"},
		{name: "carriage return added to line 2", data: edit(func(l [][]byte) [][]byte {
			l[1] = append(l[1], '\r')
			return l
		}), line: 3, reason: mismatch},
		{name: "last line torn", data: edit(func(l [][]byte) [][]byte { return l })[:len(joinLines(orig))-10],
			line: 5, reason: "no newline"},
		{name: "newline missing after last line", data: bytes.TrimSuffix(edit(func(l [][]byte) [][]byte { return l }), []byte("\n")),
			line: 5, reason: "no newline"},
		{name: "line too long", data: edit(func(l [][]byte) [][]byte {
			l[2] = []byte(`{"prev":"` + hashLine(l[1]) + `","reason":"` + strings.Repeat("x", MaxLineBytes) + `"}`)
			return l
		}), line: 3, reason: "longer than 65536 bytes"},
		{name: "huge file of garbage", data: bytes.Repeat([]byte("a"), 4*MaxLineBytes),
			line: 1, reason: "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n, err := Verify(bytes.NewReader(tc.data))
			if tc.line == 0 {
				if err != nil || n != tc.lines {
					t.Fatalf("Verify = %d, %v; want %d, nil", n, err, tc.lines)
				}
				return
			}
			var be *BrokenError
			if !errors.As(err, &be) {
				t.Fatalf("Verify = %d, %v; want a *BrokenError at line %d", n, err, tc.line)
			}
			if be.Line != tc.line || !strings.Contains(be.Reason, tc.reason) {
				t.Fatalf("Verify error = line %d %q; want line %d %q", be.Line, be.Reason, tc.line, tc.reason)
			}
			if n != tc.line-1 {
				t.Fatalf("Verify counted %d intact lines before line %d", n, tc.line)
			}
			if want := fmt.Sprintf("audit log broken at line %d: ", tc.line); !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error text %q does not start with %q", err, want)
			}
		})
	}
}

// Every single-byte change of a line other than the last breaks the chain.
func TestVerifyDetectsEveryEdit(t *testing.T) {
	t.Parallel()
	data := makeLog(t, 3)
	lastStart := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
	for i := range lastStart {
		c := bytes.Clone(data)
		c[i] ^= 0x01
		if _, err := Verify(bytes.NewReader(c)); err == nil {
			t.Fatalf("flipping a bit of byte %d went undetected", i)
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestVerifyReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	data := makeLog(t, 2)
	_, err := Verify(io.MultiReader(bytes.NewReader(data), errReader{boom}))
	var be *BrokenError
	if !errors.Is(err, boom) || errors.As(err, &be) {
		t.Fatalf("Verify = %v; want the read error, not a *BrokenError", err)
	}
}

// countingReader counts the bytes Verify asked for.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzVerify(f *testing.F) {
	valid := makeLog(f, 3)
	f.Add(valid)
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte("null\n"))
	f.Add([]byte(`{"prev":"` + zeroPrev + `"}` + "\n"))
	f.Add([]byte(`{"prev":"` + zeroPrev + `"}`))
	f.Add(valid[:len(valid)-5])
	f.Add(bytes.Replace(valid, []byte("user1"), []byte("userX"), 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		n, err := Verify(cr)
		total := bytes.Count(data, []byte("\n"))
		var be *BrokenError
		switch {
		case err == nil:
			if n != total || len(data) > 0 && data[len(data)-1] != '\n' {
				t.Fatalf("intact with %d lines; input has %d newlines", n, total)
			}
		case errors.As(err, &be):
			if be.Line != n+1 || be.Line < 1 || be.Line > total+1 || be.Reason == "" {
				t.Fatalf("broken at line %d after %d intact lines; input has %d newlines", be.Line, n, total)
			}
			// Verify stops at the bad line: it read no more than that
			// line's end plus one buffer.
			lineEnd := 0
			for range be.Line {
				i := bytes.IndexByte(data[lineEnd:], '\n')
				if i < 0 {
					lineEnd = len(data)
					break
				}
				lineEnd += i + 1
			}
			if cr.n > lineEnd+MaxLineBytes+1 {
				t.Fatalf("read %d bytes to report line %d ending at %d", cr.n, be.Line, lineEnd)
			}
		default:
			t.Fatalf("Verify of a bytes.Reader: %v", err)
		}
	})
}
