package httpapi

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/tollgate-ws/tollgate"
)

// middleware wraps every route: panic recovery, the access log, security
// headers on API answers, and the Origin rule for /api/.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		c := s.clientInfo(r)
		rec := &recorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// Only the panic's type is logged: its value could hold anything.
				s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic_type", fmt.Sprintf("%T", v))
				if !rec.wrote {
					s.writeError(rec, r, tollgate.NewError(tollgate.CodeInternal))
				}
			}
			// r.URL.Path only, never the query: ?ticket= and ?token= values
			// must never reach a log (API.md, "Operations").
			s.log.Info("http request", "method", r.Method, "path", r.URL.Path, "status", rec.statusCode(),
				"duration", s.now().Sub(start), "ip", c.IP)
		}()
		if r.URL.Path != "/ws" {
			// The /ws answer is a 101 whose headers are those on w before
			// Accept; security headers go only on its refusals (writeError).
			setSecurityHeaders(w.Header())
		}
		if strings.HasPrefix(r.URL.Path, "/api/") && c.HasOrigin && !s.auth.Origins().Allowed(c.Origin) {
			// A present Origin must be allowed (API.md, "Opening a socket"),
			// on the REST API as on the socket: no cross-site login, logout,
			// refresh or ticket minting.
			s.writeError(rec, r, tollgate.NewError(tollgate.CodeOriginNotAllowed))
			return
		}
		next.ServeHTTP(rec, r)
	})
}

// recorder remembers the status written for the access log. It passes
// Hijack through (the WebSocket upgrade needs it) and records 101 then.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (rw *recorder) WriteHeader(code int) {
	if !rw.wrote {
		rw.status, rw.wrote = code, true
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(b []byte) (int, error) {
	if !rw.wrote {
		rw.status, rw.wrote = http.StatusOK, true
	}
	return rw.ResponseWriter.Write(b)
}

// Hijack implements http.Hijacker for the WebSocket upgrade.
func (rw *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := rw.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("httpapi: %T cannot be hijacked", rw.ResponseWriter)
	}
	conn, brw, err := hj.Hijack()
	if err == nil && !rw.wrote {
		rw.status, rw.wrote = http.StatusSwitchingProtocols, true
	}
	return conn, brw, err
}

// Flush implements http.Flusher.
func (rw *recorder) Flush() {
	if f, ok := rw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rw *recorder) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

func (rw *recorder) statusCode() int {
	if !rw.wrote {
		return http.StatusOK
	}
	return rw.status
}
