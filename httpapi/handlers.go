package httpapi

import (
	"net/http"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// credentialsRequest is the body of register and login.
type credentialsRequest struct {
	Username string          `json:"username"`
	Password tollgate.Secret `json:"password"`
}

// refreshRequest is the body of POST /api/auth/refresh.
type refreshRequest struct {
	RefreshToken tollgate.Secret `json:"refresh_token"`
}

// userJSON is a user as the API shows it.
type userJSON struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Admin     bool   `json:"admin,omitempty"`
	Anonymous bool   `json:"anonymous,omitempty"`
}

// tokensJSON is the answer of login and refresh (docs/api.md, "Accounts and
// tokens"). The secrets leave the process here, on purpose.
type tokensJSON struct {
	Success      bool     `json:"success"`
	AccessToken  string   `json:"access_token"`
	TokenType    string   `json:"token_type"`
	ExpiresIn    int64    `json:"expires_in"`
	RefreshToken string   `json:"refresh_token"`
	User         userJSON `json:"user"`
}

type okJSON struct {
	Success bool `json:"success"`
}

// POST /api/auth/register: 201 {"success":true,"user":{"id","username"}}.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req credentialsRequest
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.auth.Register(r.Context(), req.Username, req.Password, s.clientInfo(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Success bool     `json:"success"`
		User    userJSON `json:"user"`
	}{true, userJSON{ID: u.ID, Username: u.Name, Admin: u.Admin}})
}

// POST /api/auth/login: the tokens in the body and in cookies.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req credentialsRequest
	if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	c := s.clientInfo(r)
	if err := s.guard.AllowLogin(r.Context(), c.IP, req.Username); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.guard.CheckBlocked(r.Context(), "", c.IP); err != nil {
		s.writeError(w, r, err)
		return
	}
	t, err := s.auth.Login(r.Context(), req.Username, req.Password, c)
	if err == nil {
		// A blocked user's password still works, but it buys nothing.
		err = s.guard.CheckBlocked(r.Context(), t.User.ID, "")
		if err != nil {
			_ = s.auth.Logout(r.Context(), tollgate.Principal{UserID: t.User.ID, Name: t.User.Name, SessionID: t.SessionID}, c)
		}
	}
	if err != nil {
		s.countFailure(r, c.IP, err)
		s.writeError(w, r, err)
		return
	}
	s.writeTokens(w, t)
}

// POST /api/auth/refresh: the refresh token from the body, else from the
// refresh cookie; a new pair as login.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if hasBody(r) {
		if err := decodeJSON(w, r, s.cfg.MaxBodyBytes, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	tok := req.RefreshToken
	if tok.Empty() {
		cs := r.CookiesNamed(s.auth.CookieNames().Refresh)
		if len(cs) > 1 {
			// Two refresh cookies: one was planted. Refuse rather than guess.
			s.writeError(w, r, tollgate.NewError(tollgate.CodeUnauthenticated))
			return
		}
		if len(cs) == 1 {
			tok = tollgate.Secret(cs[0].Value)
		}
	}
	if tok.Empty() {
		s.writeError(w, r, tollgate.NewError(tollgate.CodeUnauthenticated))
		return
	}
	t, err := s.auth.Refresh(r.Context(), tok, s.clientInfo(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeTokens(w, t)
}

// POST /api/auth/logout: revoke the session (closing its sockets) and clear
// the cookies. The cookies are cleared even when the credential is refused,
// so a browser never keeps dead ones.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	c := s.clientInfo(r)
	s.clearCookies(w)
	p, err := s.auth.AuthenticateRequest(r.Context(), r, c, false)
	if err == nil {
		err = s.auth.Logout(r.Context(), p, c)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, okJSON{Success: true})
}

// GET /api/me: who the credential names.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	p, err := s.auth.AuthenticateRequest(r.Context(), r, s.clientInfo(r), false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool     `json:"success"`
		User    userJSON `json:"user"`
	}{true, userJSON{ID: p.UserID, Username: p.Name, Admin: p.Admin, Anonymous: p.Anonymous}})
}

// POST /api/auth/ws-ticket: a one-time ticket for GET /ws. With cookie auth
// the Origin must be present and allowed: no cross-site ticket minting
// (docs/api.md, "Accounts and tokens").
func (s *Server) handleTicket(w http.ResponseWriter, r *http.Request) {
	c := s.clientInfo(r)
	p, err := s.auth.AuthenticateRequest(r.Context(), r, c, true)
	if err == nil {
		err = s.guard.CheckBlocked(r.Context(), p.UserID, c.IP)
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ticket, exp, err := s.auth.IssueTicket(r.Context(), p, c)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success   bool   `json:"success"`
		Ticket    string `json:"ticket"`
		ExpiresIn int64  `json:"expires_in"`
		ExpiresAt string `json:"expires_at"`
	}{true, ticket.Reveal(), s.secondsUntil(exp), exp.UTC().Format(time.RFC3339)})
}

// GET /api/auth/anon: an anonymous session in the HttpOnly anon_session
// cookie (only with --anonymous).
func (s *Server) handleAnonymous(w http.ResponseWriter, r *http.Request) {
	p, tok, err := s.auth.IssueAnonymous(r.Context(), s.clientInfo(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	maxAge := s.secondsUntil(p.ExpiresAt)
	http.SetCookie(w, s.cookie(s.auth.CookieNames().Anonymous, tok.Reveal(), "/", maxAge))
	writeJSON(w, http.StatusOK, struct {
		Success   bool     `json:"success"`
		User      userJSON `json:"user"`
		ExpiresIn int64    `json:"expires_in"`
	}{true, userJSON{ID: p.UserID, Username: p.Name, Anonymous: true}, maxAge})
}

// writeTokens answers login and refresh: the body and both cookies.
func (s *Server) writeTokens(w http.ResponseWriter, t tollgate.Tokens) {
	names := s.auth.CookieNames()
	accessAge := s.secondsUntil(t.AccessExpiresAt)
	http.SetCookie(w, s.cookie(names.Access, t.Access.Reveal(), "/", accessAge))
	http.SetCookie(w, s.cookie(names.Refresh, t.Refresh.Reveal(), refreshCookiePath, s.secondsUntil(t.RefreshExpiresAt)))
	writeJSON(w, http.StatusOK, tokensJSON{
		Success:      true,
		AccessToken:  t.Access.Reveal(),
		TokenType:    "Bearer",
		ExpiresIn:    accessAge,
		RefreshToken: t.Refresh.Reveal(),
		User:         userJSON{ID: t.User.ID, Username: t.User.Name, Admin: t.User.Admin},
	})
}

// secondsUntil is the whole seconds from now to t, rounded up, at least 0.
func (s *Server) secondsUntil(t time.Time) int64 {
	d := t.Sub(s.now())
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
