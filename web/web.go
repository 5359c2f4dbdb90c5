package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-ws/tollgate"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every answer of [Handler]. 'self' in
// connect-src also allows ws: and wss: to the page's own host and port (CSP
// Level 3; checked in a real Chromium by e2e/browser.test.mjs), so the page
// can open GET /ws and nothing else. No 'unsafe-inline' anywhere: the page
// has no inline script, style or style attribute.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded file, ready to serve.
type file struct {
	data        []byte
	contentType string
	etag        string
	// public files (the SDK) may be loaded by pages of other origins, as
	// any library from a CDN: they hold no secret and need no credential.
	public bool
}

// contentTypes are the only extensions the handler serves; an embedded file
// with another extension is a build mistake and makes Handler panic.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// files maps each served URL path to its file: /index.html is served at /
// only, every other file at its path under static/. Directories are never
// served, so there is no listing.
func files() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ct, ok := contentTypes[path.Ext(p)]
		if !ok {
			panic("web: no Content-Type for embedded file " + p)
		}
		sum := sha256.Sum256(data)
		urlPath := strings.TrimPrefix(p, "static")
		if urlPath == "/index.html" {
			urlPath = "/"
		}
		out[urlPath] = file{
			data:        data,
			contentType: ct,
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
			public:      strings.HasPrefix(urlPath, "/sdk/"),
		}
		return nil
	})
	if err != nil {
		panic("web: reading the embedded files: " + err.Error())
	}
	return out
}

// Handler returns the handler of the chat page and the SDK:
//
//	/                  the chat page (index.html)
//	/app.js, /style.css, /favicon.svg
//	/sdk/tollgate.js   the client SDK, an ES module
//
// Every answer, errors included, carries [ContentSecurityPolicy],
// X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer and
// X-Frame-Options: DENY. Files are revalidated on every use (Cache-Control:
// no-cache with a content ETag), so a new binary's page is never mixed with
// an old SDK. Any other path is 404 and any method but GET and HEAD 405,
// both with the JSON error body of the API (docs/api.md, "Errors"). The SDK
// alone may be loaded cross-origin (Access-Control-Allow-Origin: *; it is
// public and needs no credential); the page's files are same-origin only.
//
// The handler is safe for concurrent use and holds no state but the
// embedded files.
func Handler() http.Handler {
	fs := files()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		setSecurityHeaders(h)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, tollgate.CodeMethodNotAllowed)
			return
		}
		f, ok := fs[r.URL.Path]
		if !ok {
			writeError(w, tollgate.CodeNotFound)
			return
		}
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		if f.public {
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		} else {
			h.Set("Cross-Origin-Resource-Policy", "same-origin")
		}
		// ServeContent answers If-None-Match with 304, HEAD without a body,
		// and ranges; the zero time leaves out Last-Modified.
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.data))
	})
}

// setSecurityHeaders sets the headers of every answer, errors included.
func setSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// errorBody is the one shape of every JSON error (docs/api.md, "Errors").
type errorBody struct {
	Success bool        `json:"success"`
	Error   errorDetail `json:"error"`
}

type errorDetail struct {
	Code    tollgate.Code `json:"code"`
	Message string        `json:"message"`
}

// writeError writes the API's JSON error body for code (docs/api.md,
// "Errors"), with the status and message of the root code table.
func writeError(w http.ResponseWriter, code tollgate.Code) {
	b, _ := json.Marshal(errorBody{Error: errorDetail{Code: code, Message: code.Message()}})
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code.HTTPStatus())
	_, _ = w.Write(b)
}
