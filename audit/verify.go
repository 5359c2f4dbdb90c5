package audit

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxLineBytes is the longest line, without its newline, that [Verify]
// accepts and [Open] continues from. A [Log] never writes a longer one: it
// bounds every string field to [MaxFieldBytes] first.
const MaxLineBytes = 64 << 10

// zeroPrev is the prev of the first line of a chain.
const zeroPrev = "0000000000000000000000000000000000000000000000000000000000000000"

// BrokenError reports the first line of an audit log that breaks the chain.
// Its text is stable: `tollgate audit verify` prints it.
type BrokenError struct {
	Line   int    // 1-based number of the first bad line
	Reason string // what is wrong with it, e.g. "prev does not match the line before"
}

// Error implements error.
func (e *BrokenError) Error() string {
	return fmt.Sprintf("audit log broken at line %d: %s", e.Line, e.Reason)
}

// Verify reads an audit log from r and checks the chain: every line is a JSON
// object whose "prev" is the hex SHA-256 of the line before it (64 zeros on
// the first line), and every line, the last one included, ends in a newline.
// An empty input is an intact log of 0 lines.
//
// It returns the number of intact lines read. The first line that breaks
// the chain is reported as a [*BrokenError] (lines is then the number of
// lines before it): an edited line shows at the line after it, a removed
// line at the line that followed it, two swapped lines at the first of them,
// garbage at itself. A line longer than [MaxLineBytes] is a *BrokenError
// too: Verify holds at most one line in memory. A read error from r is
// returned wrapped, as it is not a property of the log.
func Verify(r io.Reader) (lines int, err error) {
	br := bufio.NewReaderSize(r, MaxLineBytes+1) // one line and its newline
	want := zeroPrev
	for {
		b, err := br.ReadSlice('\n')
		n := lines + 1
		switch {
		case err == io.EOF && len(b) == 0:
			return lines, nil
		case errors.Is(err, bufio.ErrBufferFull):
			return lines, &BrokenError{Line: n, Reason: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
		case err == io.EOF:
			return lines, &BrokenError{Line: n, Reason: "last line has no newline (torn write)"}
		case err != nil:
			return lines, fmt.Errorf("audit: read line %d: %w", n, err)
		}
		b = b[:len(b)-1]
		prev, reason := linePrev(b)
		if reason != "" {
			return lines, &BrokenError{Line: n, Reason: reason}
		}
		if prev != want {
			reason = "prev does not match the line before"
			if n == 1 {
				reason = "prev of the first line is not 64 zeros"
			}
			return lines, &BrokenError{Line: n, Reason: reason}
		}
		want = hashLine(b)
		lines = n
	}
}

// hashLine is the prev of the line after b.
func hashLine(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// linePrev returns the prev of one line (without its newline), or why the
// line is not an audit record. Only the chain is checked: other fields may
// be added to the format without breaking older logs.
func linePrev(b []byte) (prev, reason string) {
	if len(b) == 0 {
		return "", "empty line"
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil || fields == nil {
		return "", "not a JSON object"
	}
	raw, ok := fields["prev"]
	if !ok {
		return "", "no prev"
	}
	if err := json.Unmarshal(raw, &prev); err != nil {
		return "", "prev is not a string"
	}
	if !isHash(prev) {
		return "", "prev is not 64 lowercase hex digits"
	}
	return prev, ""
}

// isHash reports whether s is a hex SHA-256 as hashLine writes it.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
