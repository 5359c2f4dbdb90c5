package web_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate-ws/tollgate/web"
)

// staticFiles are the files of static/, by URL path.
var staticFiles = map[string]struct{ file, contentType string }{
	"/":                {"static/index.html", "text/html; charset=utf-8"},
	"/app.js":          {"static/app.js", "text/javascript; charset=utf-8"},
	"/style.css":       {"static/style.css", "text/css; charset=utf-8"},
	"/favicon.svg":     {"static/favicon.svg", "image/svg+xml"},
	"/sdk/tollgate.js": {"static/sdk/tollgate.js", "text/javascript; charset=utf-8"},
}

// checkSecurityHeaders checks the headers every answer carries.
func checkSecurityHeaders(t *testing.T, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
			"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
		"X-Content-Type-Options": "nosniff",
		"Referrer-Policy":        "no-referrer",
		"X-Frame-Options":        "DENY",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if csp := h.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows something unsafe: %q", csp)
	}
}

func serve(t *testing.T, h http.Handler, method, path string, header http.Header) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, "http://tollgate.test"+path, nil)
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestHandlerServesEmbeddedFiles(t *testing.T) {
	t.Parallel()
	h := web.Handler()
	for path, f := range staticFiles {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			want, err := os.ReadFile(f.file)
			if err != nil {
				t.Fatal(err)
			}
			res := serve(t, h, http.MethodGet, path, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, res.StatusCode, body)
			}
			if ct := res.Header.Get("Content-Type"); ct != f.contentType {
				t.Errorf("Content-Type = %q, want %q", ct, f.contentType)
			}
			if string(body) != string(want) {
				t.Errorf("body is not %s", f.file)
			}
			checkSecurityHeaders(t, res.Header)
			if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("Cache-Control = %q", cc)
			}
			sdk := strings.HasPrefix(path, "/sdk/")
			if got := res.Header.Get("Access-Control-Allow-Origin"); (got == "*") != sdk {
				t.Errorf("Access-Control-Allow-Origin = %q (only the SDK is public)", got)
			}

			// HEAD: the same headers, no body.
			head := serve(t, h, http.MethodHead, path, nil)
			hb, _ := io.ReadAll(head.Body)
			if head.StatusCode != http.StatusOK || len(hb) != 0 || head.Header.Get("Content-Type") != f.contentType {
				t.Errorf("HEAD %s: %d, %d body bytes, %q", path, head.StatusCode, len(hb), head.Header.Get("Content-Type"))
			}
			checkSecurityHeaders(t, head.Header)

			// The ETag revalidates.
			etag := res.Header.Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			again := serve(t, h, http.MethodGet, path, http.Header{"If-None-Match": {etag}})
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("If-None-Match: %d, want 304", again.StatusCode)
			}
			checkSecurityHeaders(t, again.Header)
		})
	}
}

func TestHandlerErrors(t *testing.T) {
	t.Parallel()
	h := web.Handler()
	tests := []struct {
		name, method, path string
		status             int
		code               string
	}{
		{"unknown path", "GET", "/nope", 404, "not_found"},
		{"index.html is served at / only", "GET", "/index.html", 404, "not_found"},
		{"no directory listing", "GET", "/sdk/", 404, "not_found"},
		{"no directory", "GET", "/sdk", 404, "not_found"},
		{"no static prefix", "GET", "/static/app.js", 404, "not_found"},
		{"trailing slash", "GET", "/app.js/", 404, "not_found"},
		{"dot segments are not resolved", "GET", "/sdk/../app.js", 404, "not_found"},
		{"encoded dot segments", "GET", "/sdk/%2e%2e/app.js", 404, "not_found"},
		{"not a source map", "GET", "/sdk/tollgate.js.map", 404, "not_found"},
		{"unknown HEAD", "HEAD", "/nope", 404, ""},
		{"POST", "POST", "/", 405, "method_not_allowed"},
		{"PUT on the SDK", "PUT", "/sdk/tollgate.js", 405, "method_not_allowed"},
		{"DELETE of a missing path", "DELETE", "/nope", 405, "method_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := serve(t, h, tc.method, tc.path, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, res.StatusCode, tc.status)
			}
			checkSecurityHeaders(t, res.Header)
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tc.status == 405 && res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("Allow = %q", res.Header.Get("Allow"))
			}
			if tc.code == "" {
				return
			}
			var e struct {
				Success *bool `json:"success"`
				Error   struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if e.Success == nil || *e.Success || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Errorf("body %s, want the JSON error %q", body, tc.code)
			}
		})
	}
}

// TestPageHasNoInlineCode keeps the page within its CSP (no 'unsafe-inline'):
// no inline script, style element or attribute, no event-handler attribute,
// and no script that builds HTML or code from strings.
func TestPageHasNoInlineCode(t *testing.T) {
	t.Parallel()
	html, err := os.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	page := string(html)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`(?i)<style`),
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		regexp.MustCompile(`(?i)javascript:`),
	} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html has inline code: %q", m)
		}
	}
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(page, -1) {
		if !strings.Contains(tag, ` src="/`) {
			t.Errorf("index.html has a script without a same-origin src: %s", tag)
		}
	}
	// Everything the page loads is served by the handler.
	h := web.Handler()
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1) {
		if res := serve(t, h, http.MethodGet, m[1], nil); res.StatusCode != http.StatusOK {
			t.Errorf("index.html loads %s, which is %d", m[1], res.StatusCode)
		}
	}
	err = fs.WalkDir(os.DirFS("static"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := os.ReadFile("static/" + p)
		if err != nil {
			return err
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", `setAttribute("style"`, ".style.", "localStorage.setItem(\"token", "?token="} {
			if strings.Contains(string(b), bad) {
				t.Errorf("static/%s uses %s", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
