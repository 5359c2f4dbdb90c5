package httpapi

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/tollgate-ws/tollgate"
)

// GET /healthz: the process is up.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Success bool   `json:"success"`
		Status  string `json:"status"`
	}{true, "ok"})
}

// GET /readyz: every store is reachable. The checks run concurrently under
// one ReadyTimeout deadline; the 503 answer names the checks that failed
// (names come from server code), never their errors, which are logged.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	errs := make([]error, len(s.ready))
	var wg sync.WaitGroup
	for i, c := range s.ready {
		wg.Go(func() { errs[i] = c.Pinger.Ping(ctx) })
	}
	wg.Wait()
	var down []string
	checks := make(map[string]string, len(s.ready))
	for i, c := range s.ready {
		checks[c.Name] = "ok"
		if errs[i] != nil {
			checks[c.Name] = "down"
			down = append(down, c.Name)
			s.log.Warn("readiness check failed", "check", c.Name, "error", errs[i])
		}
	}
	if len(down) > 0 {
		s.writeError(w, r, tollgate.Errorf(tollgate.CodeUnavailable, "Not ready: %s unavailable.", strings.Join(down, ", ")))
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool              `json:"success"`
		Checks  map[string]string `json:"checks"`
	}{true, checks})
}
