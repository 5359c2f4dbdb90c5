package audit

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate-ws/tollgate"
)

// MaxFieldBytes bounds every string field of a recorded event. User names,
// Origins and reasons can come from clients (a failed login names any user
// it likes), so a longer value is cut at a rune boundary and ends in "…".
// This keeps every line far below [MaxLineBytes], even when encoding/json
// escapes each byte as \u00XX.
const MaxFieldBytes = 256

const ellipsis = "…"

// sanitize makes e safe and encodable: a TS (now when zero or not
// representable in RFC 3339), in UTC; bounded strings; a finite Seconds.
// AuditEvent holds no secret field to clear: Credential is a kind.
func sanitize(e tollgate.AuditEvent, now func() time.Time) tollgate.AuditEvent {
	if y := e.TS.Year(); e.TS.IsZero() || y < 0 || y > 9999 {
		e.TS = now()
	}
	e.TS = e.TS.UTC()
	e.Event = tollgate.AuditKind(bound(string(e.Event)))
	e.User = bound(e.User)
	e.IP = bound(e.IP)
	e.Origin = bound(e.Origin)
	e.ConnID = bound(e.ConnID)
	e.Credential = tollgate.CredentialKind(bound(string(e.Credential)))
	e.Reason = bound(e.Reason)
	if math.IsNaN(e.Seconds) || math.IsInf(e.Seconds, 0) {
		e.Seconds = 0
	}
	return e
}

// bound cuts s to at most MaxFieldBytes of valid UTF-8, invalid bytes
// replaced by U+FFFD as encoding/json would (after, they would triple the
// length). A cut string is a new one, so a huge input is not kept alive by
// the queue.
func bound(s string) string {
	s = cut(s)
	if !utf8.ValidString(s) {
		s = cut(strings.ToValidUTF8(s, "\uFFFD"))
	}
	return s
}

// cut cuts s to at most MaxFieldBytes at a rune boundary, marking the cut.
func cut(s string) string {
	if len(s) <= MaxFieldBytes {
		return s
	}
	i := MaxFieldBytes - len(ellipsis)
	for j := 0; j < utf8.UTFMax && i > 0 && !utf8.RuneStart(s[i]); j++ {
		i--
	}
	return s[:i] + ellipsis
}
