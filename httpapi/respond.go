package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// errorBody is the one shape of every JSON error (docs/api.md, "Errors").
type errorBody struct {
	Success bool        `json:"success"`
	Error   errorDetail `json:"error"`
}

type errorDetail struct {
	Code    tollgate.Code `json:"code"`
	Message string        `json:"message"`
}

// writeError renders err as the contract's JSON error: the status of its
// code (tollgate.Code.HTTPStatus), the code and a client-safe message. It is
// the only place an error becomes an HTTP answer. A foreign error, or a code
// that is never an HTTP answer, becomes 500 internal with a fixed message; its
// cause goes to the log only (it never holds a secret). 429 carries
// Retry-After in whole seconds.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := tollgate.AsError(err)
	code, msg := e.Code, e.ClientMessage()
	status := code.HTTPStatus()
	if status == http.StatusInternalServerError {
		code, msg = tollgate.CodeInternal, tollgate.CodeInternal.Message()
	}
	switch {
	case status >= 500:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", string(e.Code), "error", causeOf(e))
	default:
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", string(code), "error", causeOf(e))
	}
	h := w.Header()
	setSecurityHeaders(h)
	if status == http.StatusTooManyRequests {
		secs := int64((e.RetryAfter + time.Second - 1) / time.Second)
		h.Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	writeJSON(w, status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

func causeOf(e *tollgate.Error) string {
	if e.Err == nil {
		return ""
	}
	return e.Err.Error()
}

// writeJSON writes v as the response body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only server-built values are marshalled; this cannot happen.
		status = http.StatusInternalServerError
		b = []byte(`{"success":false,"error":{"code":"internal","message":"Internal error."}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// setSecurityHeaders sets the headers of every API answer: no MIME
// sniffing, no caching (answers carry tokens and tickets), no Referer.
func setSecurityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
}

// errBadBody is the log-only cause of a body that is not one JSON object of
// the expected shape. The decoder's own error is not kept: its text can
// quote bytes of the body, which may be a password.
var errBadBody = errors.New("httpapi: body is not one JSON object of the expected shape")

// decodeJSON reads r's body strictly into dst: Content-Type application/json,
// at most max bytes (413 too_large beyond), known fields only, exactly one
// JSON value and nothing after it. Anything else is 400 invalid_request.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, dst any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return tollgate.Errorf(tollgate.CodeInvalidRequest, "The body must be JSON (Content-Type: application/json).")
	}
	r.Body = http.MaxBytesReader(w, r.Body, max)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return bodyError(err)
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return bodyError(err)
		}
		return tollgate.WrapError(tollgate.CodeInvalidRequest, errBadBody)
	}
	return nil
}

func bodyError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tollgate.NewError(tollgate.CodeTooLarge)
	}
	return tollgate.WrapError(tollgate.CodeInvalidRequest, errBadBody)
}

// hasBody reports whether the request carries a body at all.
func hasBody(r *http.Request) bool {
	if r.ContentLength > 0 || len(r.TransferEncoding) > 0 {
		return true
	}
	return r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody
}
