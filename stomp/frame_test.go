package stomp

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func TestHeaderEscaping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		v       Version
		command string
		value   string
		wire    string // the encoded value
		back    string // the value decoded from wire
	}{
		{"1.2 plain", V12, CmdMessage, "abc", "abc", "abc"},
		{"1.2 colon", V12, CmdMessage, "a:b", `a\cb`, "a:b"},
		{"1.2 newline", V12, CmdMessage, "a\nb", `a\nb`, "a\nb"},
		{"1.2 carriage return", V12, CmdMessage, "a\rb", `a\rb`, "a\rb"},
		{"1.2 backslash", V12, CmdMessage, `a\b`, `a\\b`, `a\b`},
		{"1.2 all", V12, CmdMessage, "\\:\n\r", `\\\c\n\r`, "\\:\n\r"},
		{"1.1 colon", V11, CmdMessage, "a:b", `a\cb`, "a:b"},
		{"1.1 newline", V11, CmdMessage, "a\nb", `a\nb`, "a\nb"},
		{"1.1 backslash", V11, CmdMessage, `a\b`, `a\\b`, `a\b`},
		{"1.1 cannot carry CR", V11, CmdMessage, "a\rb", "a b", "a b"},
		{"1.0 is raw", V10, CmdMessage, `a:b\c`, `a:b\c`, `a:b\c`},
		{"1.0 cannot carry LF", V10, CmdMessage, "a\nb", "a b", "a b"},
		{"CONNECTED is raw in 1.2", V12, CmdConnected, `a:b\n`, `a:b\n`, `a:b\n`},
		{"CONNECTED cannot carry LF", V12, CmdConnected, "a\nb", "a b", "a b"},
		{"NUL never leaves", V12, CmdMessage, "a\x00b", "a b", "a b"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := &Frame{Command: tc.command, Headers: []Header{{"k", tc.value}}}
			got := string(AppendFrame(nil, f, tc.v))
			want := tc.command + "\nk:" + tc.wire + "\n\n\x00"
			if got != want {
				t.Fatalf("encoded %q, want %q", got, want)
			}
			d := NewDecoder(Limits{})
			d.SetVersion(tc.v)
			d.Write([]byte(got))
			back, err := d.Next()
			if err != nil || back == nil {
				t.Fatalf("decode: %v %v", back, err)
			}
			if back.Value("k") != tc.back {
				t.Fatalf("decoded %q, want %q", back.Value("k"), tc.back)
			}
		})
	}
}

func TestUnescape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		v    Version
		want string
		ok   bool
	}{
		{`plain`, V12, "plain", true},
		{`a\cb`, V12, "a:b", true},
		{`\n\r\\\c`, V12, "\n\r\\:", true},
		{`\r`, V11, "", false}, // 1.1 defines no \r
		{`\t`, V12, "", false}, // undefined escapes are fatal
		{`\`, V12, "", false},  // trailing backslash
		{`a\`, V11, "", false},
		{`\\`, V11, `\`, true},
	}
	for _, tc := range tests {
		got, ok := unescape([]byte(tc.in), tc.v)
		if ok != tc.ok || got != tc.want {
			t.Errorf("unescape(%q, %v) = %q %v, want %q %v", tc.in, tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDecodeValid(t *testing.T) {
	t.Parallel()
	in := "\n\r\n\nCONNECT\r\naccept-version:1.2\r\nhost:a:b\\c\r\n\r\n\x00\n\n" +
		"SEND\ndestination:/topic/x\ndestination:/topic/ignored\ncontent-length:3\n\na\x00b\x00\n" +
		"SEND\ndestination:/topic/x\nempty:\n\n\x00" +
		"ACK\nid:1\n\n\x00"
	want := []Frame{
		{Command: "CONNECT", Headers: []Header{{"accept-version", "1.2"}, {"host", `a:b\c`}}},
		{Command: "SEND", Headers: []Header{{"destination", "/topic/x"}, {"destination", "/topic/ignored"}, {"content-length", "3"}}, Body: []byte("a\x00b")},
		{Command: "SEND", Headers: []Header{{"destination", "/topic/x"}, {"empty", ""}}},
		{Command: "ACK", Headers: []Header{{"id", "1"}}},
	}
	// Whole, and split at every byte: the same frames.
	for _, step := range []int{len(in), 1, 2, 3, 7} {
		d := NewDecoder(Limits{})
		var got []Frame
		for i := 0; i < len(in); i += step {
			d.Write([]byte(in[i:min(i+step, len(in))]))
			for {
				f, err := d.Next()
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if f == nil {
					break
				}
				got = append(got, *f)
				if f.Command == "CONNECT" {
					d.SetVersion(V12)
				}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d:\n got %v\nwant %v", step, got, want)
		}
		if got[1].Value("destination") != "/topic/x" {
			t.Fatal("a repeated header: the first entry wins")
		}
		if d.Buffered() != 0 {
			t.Fatalf("step %d: %d bytes left", step, d.Buffered())
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	lim := Limits{MaxFrameBytes: 256, MaxHeaders: 4, MaxHeaderLine: 64}
	tests := []struct {
		name     string
		in       string
		version  Version
		tooLarge bool
	}{
		{"lowercase command", "send\n\n\x00", V12, false},
		{"command with digits", "SEND2\n\n\x00", V12, false},
		{"command too long", strings.Repeat("A", 17) + "\n\n\x00", V12, false},
		{"command too long, unfinished", strings.Repeat("A", 40), V12, false},
		{"NUL instead of command", "\x00\n", V12, false},
		{"bare CR in command", "SE\rND\n\n\x00", V12, false},
		{"header without colon", "SEND\nnocolon\n\n\x00", V12, false},
		{"empty header name", "SEND\n:value\n\n\x00", V12, false},
		{"NUL in header", "SEND\na:b\x00c\n\n\x00", V12, false},
		{"bare CR in header", "SEND\na:b\rc\n\n\x00", V12, false},
		{"invalid UTF-8 in header", "SEND\na:\xff\n\n\x00", V12, false},
		{"undefined escape", "SEND\na:\\t\n\n\x00", V12, false},
		{"\\r escape in 1.1", "SEND\na:\\r\n\n\x00", V11, false},
		{"trailing backslash", "SEND\na:b\\\n\n\x00", V12, false},
		{"escape in key", "SEND\na\\x:b\n\n\x00", V11, false},
		{"too many headers", "SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n\x00", V12, false},
		{"header line too long", "SEND\na:" + strings.Repeat("x", 70) + "\n\n\x00", V12, false},
		{"header line too long, unfinished", "SEND\na:" + strings.Repeat("x", 100), V12, false},
		{"content-length not a number", "SEND\ncontent-length:abc\n\n\x00", V12, false},
		{"content-length negative", "SEND\ncontent-length:-1\n\n\x00", V12, false},
		{"content-length empty", "SEND\ncontent-length:\n\n\x00", V12, false},
		{"content-length with space", "SEND\ncontent-length: 1\n\nx\x00", V12, false},
		{"content-length too many digits", "SEND\ncontent-length:00000000001\n\nx\x00", V12, false},
		{"body not NUL-terminated", "SEND\ncontent-length:1\n\nxy\x00", V12, false},
		{"content-length over the limit", "SEND\ncontent-length:1000\n\n", V12, true},
		{"content-length huge", "SEND\ncontent-length:9999999999\n\n", V12, true},
		{"body over the limit", "SEND\n\n" + strings.Repeat("x", 300) + "\x00", V12, true},
		{"body over the limit, unfinished", "SEND\n\n" + strings.Repeat("x", 300), V12, true},
		{"headers over the limit", "SEND\n" + strings.Repeat("a:"+strings.Repeat("x", 60)+"\n", 4) + "b:1", V12, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, step := range []int{len(tc.in), 1} {
				d := NewDecoder(lim)
				d.SetVersion(tc.version)
				var err error
				for i := 0; i < len(tc.in) && err == nil; i += step {
					d.Write([]byte(tc.in[i:min(i+step, len(tc.in))]))
					for {
						var f *Frame
						f, err = d.Next()
						if f == nil || err != nil {
							break
						}
					}
				}
				fe, ok := err.(*FrameError)
				if !ok {
					t.Fatalf("step %d: err %v, want a FrameError", step, err)
				}
				if fe.TooLarge != tc.tooLarge {
					t.Fatalf("step %d: TooLarge %v (%s)", step, fe.TooLarge, fe.Reason)
				}
				if d.Buffered() > lim.MaxFrameBytes {
					t.Fatalf("step %d: buffered %d", step, d.Buffered())
				}
				// The error sticks, and never holds input.
				d.Write([]byte("ACK\nid:1\n\n\x00"))
				if _, again := d.Next(); again != err {
					t.Fatal("error not sticky")
				}
				if strings.Contains(fe.Error(), "xxxx") || strings.Contains(fe.Error(), "abc") {
					t.Fatalf("error holds input: %v", fe)
				}
			}
		})
	}
}

func TestFramePrintsNoCredential(t *testing.T) {
	t.Parallel()
	const tok = "eyJhbGciOiJIUzI1NiJ9.secret.sig"
	f := Frame{Command: CmdConnect, Headers: []Header{
		{"Authorization", "Bearer " + tok}, {"passcode", tok}, {"ticket", tok}, {"host", "h"},
	}, Body: []byte(tok)}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("frame", "f", f, "h", f.Headers[0])
	for _, s := range []string{fmt.Sprint(f), fmt.Sprintf("%v %+v %#v %s", f, f, f, f), fmt.Sprint(f.Headers), fmt.Sprintf("%#v", &f), buf.String()} {
		if strings.Contains(s, "secret") {
			t.Fatalf("printed a credential: %s", s)
		}
	}
	if !strings.Contains(f.String(), "host:h") {
		t.Fatalf("String lost the harmless headers: %s", f)
	}
}
