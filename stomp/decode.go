package stomp

import (
	"bytes"
	"unicode/utf8"
)

// Default bounds of [Limits].
const (
	DefaultMaxFrameBytes = 65536
	DefaultMaxHeaders    = 64
	DefaultMaxHeaderLine = 8 << 10
	// MaxCommandLen bounds a command line; the longest command,
	// UNSUBSCRIBE, has 11 characters.
	MaxCommandLen = 16
)

// Limits bound what a [Decoder] accepts. Zero fields take the defaults.
type Limits struct {
	// MaxFrameBytes bounds a whole frame, from its command to its NUL.
	// Default 65536: the socket's largest WebSocket message
	// (ws.Config.MaxMessageBytes), so that a frame split over several
	// messages can never grow past what one message may hold.
	MaxFrameBytes int
	// MaxHeaders bounds the header entries of a frame. Default 64.
	MaxHeaders int
	// MaxHeaderLine bounds one header line, without its EOL. Default 8 KiB.
	MaxHeaderLine int
}

func (l Limits) withDefaults() Limits {
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderLine <= 0 {
		l.MaxHeaderLine = DefaultMaxHeaderLine
	}
	return l
}

// FrameError is a malformed or oversized frame. Reason is fixed text that
// never holds any part of the input (which may carry a credential).
type FrameError struct {
	Reason string
	// TooLarge is set when the frame broke Limits.MaxFrameBytes.
	TooLarge bool
}

func (e *FrameError) Error() string { return "stomp: " + e.Reason }

func malformed(reason string) *FrameError { return &FrameError{Reason: reason} }

var errTooLarge = &FrameError{Reason: "frame larger than the limit", TooLarge: true}

type decodeState uint8

const (
	stCommand decodeState = iota
	stHeaders
	stBody
)

// Decoder decodes STOMP frames from a byte stream that arrives in pieces of
// any size (a frame may span WebSocket messages, and a message may hold many
// frames). Its memory is bounded by Limits: it buffers at most one
// unfinished frame, and every scan resumes where the previous one stopped,
// so feeding a frame one byte at a time costs linear time. EOLs between
// frames (heart-beats) are skipped. A Decoder is not safe for concurrent use.
//
// Decoding follows STOMP 1.2 for every version, with these choices: CRLF is
// accepted as EOL in every version, and any other CR before the body is
// refused; commands are 1 to 16 of A-Z; header lines must be valid UTF-8
// without NUL and hold a colon after a non-empty name (the value is
// everything after the first colon); content-length, when present, is
// decimal digits and the byte after the body must be NUL. Once Next returns
// an error, the Decoder returns it forever.
type Decoder struct {
	lim     Limits
	version Version

	buf       []byte // unconsumed input, starting at the frame in progress
	state     decodeState
	scan      int // where the search for the next delimiter resumes
	lineStart int // start of the header line being read
	bodyStart int
	clen      int // content-length, -1 when absent
	frame     Frame
	err       error
}

// NewDecoder returns a Decoder with the given limits. It decodes headers as
// CONNECT frames are (no escapes) until SetVersion is called.
func NewDecoder(l Limits) *Decoder {
	return &Decoder{lim: l.withDefaults(), clen: -1}
}

// SetVersion sets the version whose escaping rules apply to the headers of
// the frames decoded from now on.
func (d *Decoder) SetVersion(v Version) { d.version = v }

// Buffered is the number of bytes held for an unfinished frame.
func (d *Decoder) Buffered() int { return len(d.buf) }

// Write adds p to the input. It copies p. It never fails; errors are
// reported by Next.
func (d *Decoder) Write(p []byte) {
	if d.err != nil || len(p) == 0 {
		return
	}
	d.buf = append(d.buf, p...)
}

// Next returns the next complete frame, or nil and no error when more input
// is needed. Heart-beat EOLs between frames are consumed silently.
func (d *Decoder) Next() (*Frame, error) {
	if d.err != nil {
		return nil, d.err
	}
	f, err := d.next()
	if err != nil {
		d.err = err
		d.buf = nil
		return nil, err
	}
	if len(d.buf) == 0 && cap(d.buf) > 4096 {
		d.buf = nil // an idle socket keeps no large buffer
	}
	return f, nil
}

func (d *Decoder) next() (*Frame, error) {
	for {
		switch d.state {
		case stCommand:
			// Skip heart-beats: LF or CRLF.
			for len(d.buf) > 0 {
				if d.buf[0] == '\n' {
					d.buf = d.buf[1:]
				} else if d.buf[0] == '\r' && len(d.buf) > 1 && d.buf[1] == '\n' {
					d.buf = d.buf[2:]
				} else {
					break
				}
			}
			if len(d.buf) == 0 || (len(d.buf) == 1 && d.buf[0] == '\r') {
				return nil, nil
			}
			idx := bytes.IndexByte(d.buf[d.scan:], '\n')
			if idx < 0 {
				d.scan = len(d.buf)
				if len(d.buf) > MaxCommandLen+1 {
					return nil, malformed("command too long")
				}
				return nil, nil
			}
			end := d.scan + idx
			line := trimCR(d.buf[:end])
			if len(line) == 0 || len(line) > MaxCommandLen {
				return nil, malformed("command too long or empty")
			}
			for _, c := range line {
				if c < 'A' || c > 'Z' {
					return nil, malformed("command is not A-Z")
				}
			}
			d.frame = Frame{Command: string(line)}
			d.clen = -1
			d.lineStart, d.scan = end+1, end+1
			d.state = stHeaders
		case stHeaders:
			idx := bytes.IndexByte(d.buf[d.scan:], '\n')
			if idx < 0 {
				d.scan = len(d.buf)
				if len(d.buf)-d.lineStart > d.lim.MaxHeaderLine+1 {
					return nil, malformed("header line too long")
				}
				if len(d.buf) > d.lim.MaxFrameBytes {
					return nil, errTooLarge
				}
				return nil, nil
			}
			end := d.scan + idx
			if end+1 > d.lim.MaxFrameBytes {
				return nil, errTooLarge
			}
			line := trimCR(d.buf[d.lineStart:end])
			d.lineStart, d.scan = end+1, end+1
			if len(line) == 0 {
				if err := d.endHeaders(); err != nil {
					return nil, err
				}
				continue
			}
			if err := d.header(line); err != nil {
				return nil, err
			}
		case stBody:
			var end int // index of the NUL
			if d.clen >= 0 {
				end = d.bodyStart + d.clen
				if len(d.buf) <= end {
					return nil, nil
				}
				if d.buf[end] != 0 {
					return nil, malformed("body not followed by NUL after content-length bytes")
				}
			} else {
				idx := bytes.IndexByte(d.buf[d.scan:], 0)
				if idx < 0 {
					d.scan = len(d.buf)
					if len(d.buf) >= d.lim.MaxFrameBytes {
						return nil, errTooLarge
					}
					return nil, nil
				}
				end = d.scan + idx
				if end+1 > d.lim.MaxFrameBytes {
					return nil, errTooLarge
				}
			}
			f := d.frame
			if end > d.bodyStart {
				f.Body = bytes.Clone(d.buf[d.bodyStart:end])
			}
			d.buf = d.buf[end+1:]
			d.frame = Frame{}
			d.state, d.scan, d.lineStart, d.bodyStart, d.clen = stCommand, 0, 0, 0, -1
			return &f, nil
		}
	}
}

// header parses one header line (without EOL) into the frame.
func (d *Decoder) header(line []byte) error {
	if len(line) > d.lim.MaxHeaderLine {
		return malformed("header line too long")
	}
	if len(d.frame.Headers) >= d.lim.MaxHeaders {
		return malformed("too many headers")
	}
	if bytes.IndexByte(line, 0) >= 0 || bytes.IndexByte(line, '\r') >= 0 {
		return malformed("NUL or bare CR in a header")
	}
	if !utf8.Valid(line) {
		return malformed("header is not UTF-8")
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return malformed("header line without a name and a colon")
	}
	raw := rawHeaders(d.version, d.frame.Command)
	var key, value string
	if raw {
		key, value = string(line[:colon]), string(line[colon+1:])
	} else {
		var ok1, ok2 bool
		key, ok1 = unescape(line[:colon], d.version)
		value, ok2 = unescape(line[colon+1:], d.version)
		if !ok1 || !ok2 {
			return malformed("undefined escape sequence in a header")
		}
	}
	d.frame.Headers = append(d.frame.Headers, Header{Key: key, Value: value})
	return nil
}

// endHeaders reads content-length and moves to the body.
func (d *Decoder) endHeaders() error {
	d.bodyStart = d.lineStart
	d.scan = d.bodyStart
	d.state = stBody
	v, ok := d.frame.Get("content-length")
	if !ok {
		d.clen = -1
		return nil
	}
	if len(v) == 0 || len(v) > 10 {
		return malformed("invalid content-length")
	}
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return malformed("invalid content-length")
		}
		n = n*10 + int(c-'0')
		if n > d.lim.MaxFrameBytes {
			return errTooLarge
		}
	}
	if d.bodyStart+n+1 > d.lim.MaxFrameBytes {
		return errTooLarge
	}
	d.clen = n
	return nil
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}
