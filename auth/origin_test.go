package auth

import (
	"strings"
	"testing"
)

func TestOriginsAllowed(t *testing.T) {
	t.Parallel()
	o, err := NewOrigins([]string{"https://chat.example.com", "http://localhost:8080", "HTTP://127.0.0.1:8080", "https://[::1]:443", "https://exact.example.org:443"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://chat.example.com", true},
		{"http://localhost:8080", true},
		{"http://127.0.0.1:8080", true}, // entry normalized to lower case
		{"https://[::1]", true},         // default port dropped from the entry
		{"https://exact.example.org", true},
		{"", false},
		{"null", false},
		{"http://chat.example.com", false},               // scheme
		{"https://chat.example.com:443", false},          // browsers never send the default port
		{"https://chat.example.com:8443", false},         // port
		{"https://chat.example.com.evil.net", false},     // suffix trick
		{"https://evilchat.example.com", false},          // prefix trick
		{"https://sub.chat.example.com", false},          // subdomain
		{"https://chat.example.co", false},               // truncation
		{"https://chat.example.com/", false},             // path
		{"https://chat.example.com/x", false},            // path
		{"https://CHAT.example.com", false},              // browsers send lower case
		{" https://chat.example.com", false},             // whitespace
		{"https://chat.example.com ", false},             // whitespace
		{"https://chat.example.com, https://x.y", false}, // two Origin headers joined
		{"https://user@chat.example.com", false},
		{"http://localhost:80800", false},
		{"http://localhost", false},
		{"http://127.0.0.1:8080.evil.net", false},
		{"https://chat.example.com\x00", false},
		{"*", false},
		{strings.Repeat("a", 10000), false},
	}
	for _, tc := range tests {
		t.Run(tc.origin, func(t *testing.T) {
			t.Parallel()
			if got := o.Allowed(tc.origin); got != tc.want {
				t.Errorf("Allowed(%q) = %v, want %v", tc.origin, got, tc.want)
			}
		})
	}
}

func TestNewOriginsRefusesNonOrigins(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{
		"", "null", "*", "https://*.example.com", "example.com", "ftp://example.com", "https://",
		"https://example.com/path", "https://example.com?q", "https://example.com#f", "https://u:p@example.com",
		"https://example.com:", "javascript:alert(1)", "https://exa mple.com", "//example.com",
	} {
		if _, err := NewOrigins([]string{bad}); err == nil {
			t.Errorf("NewOrigins accepted %q", bad)
		}
	}
	var zero Origins
	if zero.Allowed("https://chat.example.com") {
		t.Error("the zero Origins allows something")
	}
}

// FuzzOrigin: for any allowlist entry and any request Origin, Allowed never
// panics, allows only an exact entry of the normalized list, and never allows
// "null" or the empty string.
func FuzzOrigin(f *testing.F) {
	f.Add("https://chat.example.com", "https://chat.example.com")
	f.Add("https://chat.example.com", "https://chat.example.com.evil.net")
	f.Add("http://LOCALHOST:80", "http://localhost")
	f.Add("https://[::1]:8443", "https://[::1]:8443")
	f.Add("null", "null")
	f.Add("https://a.b/", "https://a.b")
	f.Fuzz(func(t *testing.T, entry, origin string) {
		o, err := NewOrigins([]string{entry})
		if err != nil {
			if o.Allowed(origin) {
				t.Fatal("a failed NewOrigins allows something")
			}
			return
		}
		n, err := normalizeOrigin(entry)
		if err != nil {
			t.Fatalf("NewOrigins accepted %q but normalizeOrigin refuses it", entry)
		}
		if again, err := normalizeOrigin(n); err != nil || again != n {
			t.Fatalf("normalization is not stable: %q -> %q -> %q (%v)", entry, n, again, err)
		}
		allowed := o.Allowed(origin)
		if allowed != (origin == n) {
			t.Fatalf("Allowed(%q) = %v with entry %q (normalized %q)", origin, allowed, entry, n)
		}
		if o.Allowed("null") || o.Allowed("") {
			t.Fatal("null or empty allowed")
		}
		if strings.ContainsAny(n, "/?#@ *") && strings.Count(n, "/") != 2 {
			t.Fatalf("normalized origin %q has a path, query, fragment or user info", n)
		}
	})
}
