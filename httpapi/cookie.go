package httpapi

import "net/http"

// refreshCookiePath limits the refresh cookie to the endpoints that use it
// (docs/api.md, "Accounts and tokens").
const refreshCookiePath = "/api/auth"

// cookie builds one of tollgate's cookies with the contract's flags:
// HttpOnly always; SameSite=Strict and Secure in secure mode, SameSite=Lax
// otherwise; no Domain (so __Host- cookies stay host-only); Max-Age matching
// the credential. A maxAge of 0 or less deletes the cookie.
func (s *Server) cookie(name, value, path string, maxAge int64) *http.Cookie {
	secure := s.auth.SecureCookies()
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		MaxAge:   int(maxAge),
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
	if secure {
		c.SameSite = http.SameSiteStrictMode
	}
	if maxAge <= 0 {
		c.MaxAge = -1 // Max-Age=0: delete now
		c.Value = ""
	}
	return c
}

// clearCookies deletes the access and refresh cookies (logout).
func (s *Server) clearCookies(w http.ResponseWriter) {
	names := s.auth.CookieNames()
	http.SetCookie(w, s.cookie(names.Access, "", "/", 0))
	http.SetCookie(w, s.cookie(names.Refresh, "", refreshCookiePath, 0))
}
