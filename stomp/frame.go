package stomp

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Version is a STOMP protocol version negotiated on CONNECT.
type Version uint8

// The versions tollgate speaks. The zero Version is "not negotiated yet":
// frames are then decoded as CONNECT frames are (headers not escaped).
const (
	V10 Version = 10
	V11 Version = 11
	V12 Version = 12
)

// String returns "1.0", "1.1" or "1.2" ("" for the zero Version).
func (v Version) String() string {
	switch v {
	case V10:
		return "1.0"
	case V11:
		return "1.1"
	case V12:
		return "1.2"
	}
	return ""
}

// Client and server commands (STOMP 1.2, "Client Frames", "Server Frames").
const (
	CmdConnect     = "CONNECT"
	CmdStomp       = "STOMP"
	CmdSend        = "SEND"
	CmdSubscribe   = "SUBSCRIBE"
	CmdUnsubscribe = "UNSUBSCRIBE"
	CmdAck         = "ACK"
	CmdNack        = "NACK"
	CmdBegin       = "BEGIN"
	CmdCommit      = "COMMIT"
	CmdAbort       = "ABORT"
	CmdDisconnect  = "DISCONNECT"
	CmdConnected   = "CONNECTED"
	CmdMessage     = "MESSAGE"
	CmdReceipt     = "RECEIPT"
	CmdError       = "ERROR"
)

// Header is one header entry of a frame, unescaped.
type Header struct {
	Key, Value string
}

// sensitive reports whether a header carries a credential: its value is
// never printed (API.md, "WebSocket tickets": secrets never in logs).
func sensitive(key string) bool {
	switch strings.ToLower(key) {
	case "authorization", "passcode", "ticket", "token", "cookie":
		return true
	}
	return false
}

// String prints the header with a credential's value (Authorization,
// passcode, ticket, token, cookie) replaced by "[redacted]", so that no log
// or error message can carry it.
func (h Header) String() string {
	if sensitive(h.Key) {
		return h.Key + ":[redacted]"
	}
	return h.Key + ":" + h.Value
}

// GoString is String, for %#v.
func (h Header) GoString() string { return h.String() }

// Frame is one STOMP frame. Headers keep their order and repeats; Get
// returns the first entry of a key, as STOMP 1.2 requires ("Repeated Header
// Entries"). A Frame prints (fmt, slog) without credential values and
// without its body.
type Frame struct {
	Command string
	Headers []Header
	Body    []byte
}

// Get returns the value of the first header entry named key.
func (f *Frame) Get(key string) (string, bool) {
	for _, h := range f.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return "", false
}

// Value returns the value of the first header entry named key, or "".
func (f *Frame) Value(key string) string {
	v, _ := f.Get(key)
	return v
}

// String prints the command and headers, credentials redacted, and the body length.
func (f Frame) String() string {
	var b strings.Builder
	b.WriteString(f.Command)
	for _, h := range f.Headers {
		b.WriteString(" ")
		b.WriteString(strconv.Quote(h.String()))
	}
	fmt.Fprintf(&b, " body=%dB", len(f.Body))
	return b.String()
}

// GoString is String, for %#v.
func (f Frame) GoString() string { return f.String() }

// LogValue implements slog.LogValuer with the same redaction as String.
func (f Frame) LogValue() slog.Value { return slog.StringValue(f.String()) }

// rawHeaders reports whether the headers of command are sent without
// escaping in version v: always in 1.0, and for CONNECT and CONNECTED in
// every version (STOMP 1.2, "Value Encoding").
func rawHeaders(v Version, command string) bool {
	return v == V10 || v == 0 || command == CmdConnect || command == CmdConnected || command == CmdStomp
}

// appendEscaped appends s to dst, escaped for version v. In raw mode (1.0,
// CONNECT, CONNECTED), and for CR in 1.1, a character the version cannot
// carry (CR, LF) becomes a space: our own values never hold one, and a
// header must not end early. NUL becomes a space everywhere: it ends frames.
func appendEscaped[T string | []byte](dst []byte, s T, v Version, raw bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0:
			dst = append(dst, ' ')
		case raw && (c == '\r' || c == '\n'):
			dst = append(dst, ' ')
		case raw:
			dst = append(dst, c)
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == ':':
			dst = append(dst, '\\', 'c')
		case c == '\r' && v >= V12:
			dst = append(dst, '\\', 'r')
		case c == '\r':
			dst = append(dst, ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// AppendFrame appends f, encoded for version v, to dst: the command, the
// headers in order (escaped as v requires), an empty line, the body and the
// NUL. It adds no header: a frame whose body may hold a NUL must carry
// content-length itself (see [Frame.SetContentLength]).
func AppendFrame(dst []byte, f *Frame, v Version) []byte {
	raw := rawHeaders(v, f.Command)
	dst = append(dst, f.Command...)
	dst = append(dst, '\n')
	for _, h := range f.Headers {
		dst = appendEscaped(dst, h.Key, v, raw)
		dst = append(dst, ':')
		dst = appendEscaped(dst, h.Value, v, raw)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, f.Body...)
	return append(dst, 0)
}

// SetContentLength sets the content-length header to the body's length,
// replacing any earlier entry.
func (f *Frame) SetContentLength() {
	n := strconv.Itoa(len(f.Body))
	for i, h := range f.Headers {
		if h.Key == "content-length" {
			f.Headers[i].Value = n
			return
		}
	}
	f.Headers = append(f.Headers, Header{"content-length", n})
}

// unescape decodes a header key or value of version v (STOMP 1.2, "Value
// Encoding"): \\ \n \c in 1.1 and 1.2, \r in 1.2. Any other escape is a
// fatal protocol error, and so is a trailing backslash.
func unescape(s []byte, v Version) (string, bool) {
	i := 0
	for i < len(s) && s[i] != '\\' {
		i++
	}
	if i == len(s) {
		return string(s), true
	}
	out := make([]byte, 0, len(s))
	out = append(out, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(s) {
			return "", false
		}
		switch s[i] {
		case '\\':
			out = append(out, '\\')
		case 'n':
			out = append(out, '\n')
		case 'c':
			out = append(out, ':')
		case 'r':
			if v < V12 {
				return "", false
			}
			out = append(out, '\r')
		default:
			return "", false
		}
	}
	return string(out), true
}
