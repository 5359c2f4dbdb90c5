package tollgate

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
)

// Secret is a ticket, token, password or cookie value. Everywhere it is
// printed, logged or marshalled it shows only its fingerprint: the first 8 hex
// characters of its SHA-256 (docs/api.md, "WebSocket tickets").
//
// fmt cannot call methods on unexported fields: a struct that holds a Secret
// must export the field (with `json:"-"`) or never be printed whole.
type Secret string

// Fingerprint is the first 8 hex characters of the SHA-256 of s.
func (s Secret) Fingerprint() string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:4])
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.Fingerprint()) }

// String implements fmt.Stringer (%s %v %q %x).
func (s Secret) String() string { return s.Fingerprint() }

// GoString implements fmt.GoStringer (%#v).
func (s Secret) GoString() string { return s.Fingerprint() }

// MarshalJSON marshals the fingerprint, never the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.Fingerprint()) }

// MarshalText marshals the fingerprint, never the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.Fingerprint()), nil }

// Reveal returns the value. Call it only where a secret must leave the
// process on purpose: a response body, a cookie, a hash.
func (s Secret) Reveal() string { return string(s) }

// Empty reports whether s is the empty secret.
func (s Secret) Empty() bool { return s == "" }
