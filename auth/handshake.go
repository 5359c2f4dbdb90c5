package auth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/tollgate-ws/tollgate"
)

// maxRawQuery bounds the query string of a handshake; a ticket needs 50 bytes.
const maxRawQuery = 8 << 10

var (
	errBadAuthorization = errors.New("auth: Authorization header is not one Bearer token")
	errRepeated         = errors.New("auth: credential given more than once")
	errBadQuery         = errors.New("auth: query string malformed or too long")
	errCookieNoOrigin   = errors.New("auth: cookie credential without an Origin header")
	errOriginRefused    = errors.New("auth: Origin not in the allowlist")
	errNoCredential     = errors.New("auth: no credential")
	errLegacySunset     = errors.New("auth: ?token= is past its sunset date")
)

// credential is the one credential that decides a handshake: its kind and
// its value, which never leaves the Secret type until it is verified.
type credential struct {
	kind  tollgate.CredentialKind
	value tollgate.Secret
}

// extractOptions says which optional credentials exist in this deployment.
type extractOptions struct {
	cookies     CookieNames
	legacyQuery bool // --legacy-query-token
	anonymous   bool // --anonymous
}

// extractCredential finds the first credential present in r, in the
// contract's order (docs/api.md, "Opening a socket"): Authorization: Bearer,
// ?ticket=, the access cookie, ?token= (legacy, when enabled), the
// anon_session cookie (when enabled). A credential is present as soon as its
// header, parameter or cookie is, even when empty or malformed: it then
// decides the handshake and fails it, and the weaker credentials after it are
// never looked at. A credential given twice is refused rather than guessed
// at. With nothing present the kind is none.
//
// The returned error is a *tollgate.Error whose code is the answer; its
// cause never holds any part of a credential.
func extractCredential(r *http.Request, o extractOptions) (credential, error) {
	// 1. Authorization: Bearer <JWT> (non-browser clients).
	if c, present, err := bearer(r); present {
		return c, err
	}
	if len(r.URL.RawQuery) > maxRawQuery {
		return credential{kind: tollgate.CredentialNone}, tollgate.WrapError(tollgate.CodeInvalidRequest, errBadQuery)
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		// A query we cannot read might hide a credential: refuse it rather
		// than guess which parameter was meant.
		return credential{kind: tollgate.CredentialNone}, tollgate.WrapError(tollgate.CodeInvalidRequest, errBadQuery)
	}
	// 2. ?ticket= (the browser path).
	if vals, ok := q["ticket"]; ok {
		if len(vals) != 1 {
			return credential{kind: tollgate.CredentialTicket}, tollgate.WrapError(tollgate.CodeInvalidTicket, errRepeated)
		}
		return credential{kind: tollgate.CredentialTicket, value: tollgate.Secret(vals[0])}, nil
	}
	// 3. The access cookie, under the name of the current secure mode only.
	if c, present, err := oneCookie(r, o.cookies.Access, tollgate.CredentialCookie); present {
		return c, err
	}
	// 4. ?token= (legacy, only when enabled).
	if o.legacyQuery {
		if vals, ok := q["token"]; ok {
			if len(vals) != 1 {
				return credential{kind: tollgate.CredentialLegacyToken}, tollgate.WrapError(tollgate.CodeUnauthenticated, errRepeated)
			}
			return credential{kind: tollgate.CredentialLegacyToken, value: tollgate.Secret(vals[0])}, nil
		}
	}
	// 5. The anon_session cookie (only when enabled).
	if o.anonymous {
		if c, present, err := oneCookie(r, o.cookies.Anonymous, tollgate.CredentialAnonymous); present {
			return c, err
		}
	}
	return credential{kind: tollgate.CredentialNone}, nil
}

// bearer returns the token of an Authorization: Bearer header. Any
// Authorization header is a credential present: another scheme, an empty
// token or two headers are refused, never skipped.
func bearer(r *http.Request) (credential, bool, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return credential{}, false, nil
	}
	if len(vals) != 1 {
		return credential{kind: tollgate.CredentialBearer}, true, tollgate.WrapError(tollgate.CodeUnauthenticated, errRepeated)
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return credential{kind: tollgate.CredentialBearer}, true, tollgate.WrapError(tollgate.CodeUnauthenticated, errBadAuthorization)
	}
	return credential{kind: tollgate.CredentialBearer, value: tollgate.Secret(tok)}, true, nil
}

// oneCookie returns the cookie name of r as a credential of kind. Two cookies
// of that name (cookie tossing from a sibling domain) are refused.
func oneCookie(r *http.Request, name string, kind tollgate.CredentialKind) (credential, bool, error) {
	cs := r.CookiesNamed(name)
	switch len(cs) {
	case 0:
		return credential{}, false, nil
	case 1:
		return credential{kind: kind, value: tollgate.Secret(cs[0].Value)}, true, nil
	default:
		return credential{kind: kind}, true, tollgate.WrapError(tollgate.CodeUnauthenticated, errRepeated)
	}
}

// AuthenticateHandshake is the credential decision of GET /ws, made before
// the server answers 101 (docs/api.md, "Opening a socket"). It is the only
// place that decides which credential opens a socket.
//
//   - Whatever the credential, an Origin that is present (c.HasOrigin) must
//     be in the allowlist: origin_not_allowed otherwise. "null" never is.
//   - One credential decides, taken in this order: Authorization: Bearer,
//     ?ticket=, the access cookie (only with an Origin present: a cookie
//     without Origin is origin_not_allowed), ?token= (legacy, when enabled
//     and before its sunset; the result carries Deprecation and Sunset
//     headers), the anon_session cookie (when enabled). The first present
//     wins; if it is invalid the handshake fails and never falls through to
//     a weaker one.
//   - With none present: unauthenticated, or with first-message auth a
//     pending principal (Credential first_message, empty UserID).
//
// c must describe r (its IP and Origin header, as the HTTP edge computed
// them). Every refusal is recorded as handshake_rejected with the kind of
// credential, never its value. Errors are *tollgate.Error: 400
// invalid_request, 401 unauthenticated / token_expired / invalid_ticket, 403
// origin_not_allowed, 503 unavailable. Safe for concurrent use.
func (s *Service) AuthenticateHandshake(ctx context.Context, r *http.Request, c tollgate.ClientInfo) (Handshake, error) {
	h, kind, err := s.authenticateHandshake(ctx, r, c)
	if err != nil {
		te := tollgate.AsError(err)
		s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditHandshakeRejected, IP: c.IP, Origin: c.Origin, Credential: kind, Reason: string(te.Code)})
		return Handshake{}, te
	}
	return h, nil
}

func (s *Service) authenticateHandshake(ctx context.Context, r *http.Request, c tollgate.ClientInfo) (Handshake, tollgate.CredentialKind, error) {
	// Whatever the credential, a present Origin must be allowed (API.md,
	// "Opening a socket"): this is what stops cross-site WebSocket hijacking.
	if c.HasOrigin && !s.origins.Allowed(c.Origin) {
		return Handshake{}, tollgate.CredentialNone, tollgate.WrapError(tollgate.CodeOriginNotAllowed, errOriginRefused)
	}
	cred, err := extractCredential(r, extractOptions{cookies: s.cookies, legacyQuery: s.cfg.LegacyQueryToken, anonymous: s.cfg.Anonymous})
	if err != nil {
		// Never fall through to a weaker credential (API.md, "Opening a socket").
		return Handshake{}, cred.kind, err
	}
	var p tollgate.Principal
	var h Handshake
	switch cred.kind {
	case tollgate.CredentialBearer:
		p, err = s.VerifyAccess(ctx, cred.value)
	case tollgate.CredentialTicket:
		p, err = s.RedeemTicket(ctx, cred.value, c)
	case tollgate.CredentialCookie:
		// A cookie rides along on cross-site requests; only a present and
		// allowed Origin proves the page is ours (API.md, "Opening a socket").
		if !c.HasOrigin {
			return Handshake{}, cred.kind, tollgate.WrapError(tollgate.CodeOriginNotAllowed, errCookieNoOrigin)
		}
		p, err = s.VerifyAccess(ctx, cred.value)
	case tollgate.CredentialLegacyToken:
		p, h.Header, err = s.verifyLegacy(ctx, cred.value, c)
	case tollgate.CredentialAnonymous:
		// A cookie, so the same rule as for auth_token: a cross-site page
		// must not ride on a visitor's anonymous session either.
		if !c.HasOrigin {
			return Handshake{}, cred.kind, tollgate.WrapError(tollgate.CodeOriginNotAllowed, errCookieNoOrigin)
		}
		p, err = s.VerifyAnonymous(cred.value)
	default:
		if !s.cfg.FirstMessageAuth {
			return Handshake{}, cred.kind, tollgate.WrapError(tollgate.CodeUnauthenticated, errNoCredential)
		}
		// Pending: the socket opens, must authenticate with its first
		// message within the first-message timeout, and may send nothing
		// else before (enforced by the socket side).
		return Handshake{Principal: tollgate.Principal{Credential: tollgate.CredentialFirstMessage}}, cred.kind, nil
	}
	if err != nil {
		return Handshake{}, cred.kind, err
	}
	p.Credential = cred.kind
	h.Principal = p
	return h, cred.kind, nil
}

// verifyLegacy checks a ?token= access JWT (docs/api.md, "Opening a socket",
// item 4): refused from LegacyQueryTokenUntil on; each accepted use is
// audited as legacy_token_used and logged as deprecated with the token
// redacted to its fingerprint, and answered with Deprecation and Sunset
// headers.
func (s *Service) verifyLegacy(ctx context.Context, tok tollgate.Secret, c tollgate.ClientInfo) (tollgate.Principal, http.Header, error) {
	if !s.now().Before(s.cfg.LegacyQueryTokenUntil) {
		s.log.Warn("refused a deprecated ?token= credential after its sunset date", "ip", c.IP, "token", tok)
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.LegacyTokenUsed(false)
		}
		return tollgate.Principal{}, nil, tollgate.WrapError(tollgate.CodeUnauthenticated, errLegacySunset)
	}
	p, err := s.VerifyAccess(ctx, tok)
	if err != nil {
		return tollgate.Principal{}, nil, err
	}
	s.log.Warn("deprecated ?token= credential used; move the client to tickets",
		"user", p.UserID, "ip", c.IP, "token", tok, "sunset", s.cfg.LegacyQueryTokenUntil.UTC().Format(http.TimeFormat))
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.LegacyTokenUsed(true)
	}
	s.record(ctx, tollgate.AuditEvent{Event: tollgate.AuditLegacyTokenUsed, User: p.UserID, IP: c.IP, Origin: c.Origin, Credential: tollgate.CredentialLegacyToken})
	h := http.Header{}
	h.Set("Deprecation", "true")
	h.Set("Sunset", s.cfg.LegacyQueryTokenUntil.UTC().Format(http.TimeFormat))
	return p, h, nil
}

// AuthenticateRequest authenticates a REST request (GET /api/me, POST
// /api/auth/logout, POST /api/auth/ws-ticket) by the same rules as the
// handshake, limited to the two credentials the contract allows there:
// Authorization: Bearer, else the access cookie of the current secure mode.
// A present Origin must be allowed; the first credential present decides and
// an invalid one is never skipped. With cookieNeedsOrigin (ws-ticket: no
// cross-site ticket minting, docs/api.md "Accounts and tokens") a cookie is
// accepted only when an Origin is present. The principal's Credential is
// bearer or cookie. Errors as for [Service.VerifyAccess], plus
// origin_not_allowed. Safe for concurrent use.
func (s *Service) AuthenticateRequest(ctx context.Context, r *http.Request, c tollgate.ClientInfo, cookieNeedsOrigin bool) (tollgate.Principal, error) {
	if c.HasOrigin && !s.origins.Allowed(c.Origin) {
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeOriginNotAllowed, errOriginRefused)
	}
	cred, present, err := bearer(r)
	if !present {
		cred, present, err = oneCookie(r, s.cookies.Access, tollgate.CredentialCookie)
	}
	switch {
	case !present:
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errNoCredential)
	case err != nil:
		return tollgate.Principal{}, err
	case cred.kind == tollgate.CredentialCookie && cookieNeedsOrigin && !c.HasOrigin:
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeOriginNotAllowed, errCookieNoOrigin)
	}
	p, err := s.VerifyAccess(ctx, cred.value)
	if err != nil {
		return tollgate.Principal{}, err
	}
	p.Credential = cred.kind
	return p, nil
}
