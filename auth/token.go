package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-ws/tollgate"
)

// JWT header types of tollgate's own tokens. A token of one type never
// verifies as the other: the type is checked before the signature.
const (
	typAccess = "at+jwt"
	typAnon   = "anon+jwt"
)

// maxTokenLen bounds a JWT before it is parsed; tollgate's own tokens are
// about 400 bytes and provider tokens rarely pass 2 KiB.
const maxTokenLen = 8 << 10

// Claim limits: values beyond them are refused rather than stored in a
// principal that is logged and sent to every room member.
const (
	maxSubjectLen = 255
	maxNameLen    = 64
)

// Reasons a token was refused. They go to the log as the cause of an
// unauthenticated error; they never hold any part of the token.
var (
	errTokenMalformed = errors.New("auth: token malformed or over the size limit")
	errTokenSignature = errors.New("auth: token signature, algorithm, type or key id refused")
	errTokenClaims    = errors.New("auth: token claims refused")
	errTokenExpired   = errors.New("auth: token expired")
	errSessionDead    = errors.New("auth: token's session is revoked, expired or unknown")
	errClaimMissing   = errors.New("auth: required claim missing or too long")
)

// accessClaims are the claims of tollgate's access token (docs/api.md,
// "Accounts and tokens"): iss, aud, sub (user id), name, sid, jti, iat, nbf,
// exp. admin is set only for administrators.
type accessClaims struct {
	jwt.RegisteredClaims
	Name  string `json:"name"`
	SID   string `json:"sid"`
	Admin bool   `json:"admin,omitempty"`
}

// Validate implements jwt.ClaimsValidator: sub, sid and jti are required.
func (c *accessClaims) Validate() error {
	if c.Subject == "" || len(c.Subject) > maxSubjectLen || c.SID == "" || len(c.SID) > maxSubjectLen ||
		c.ID == "" || len(c.Name) > maxNameLen {
		return errClaimMissing
	}
	return nil
}

// anonClaims are the claims of an anonymous session (typ anon+jwt).
type anonClaims struct {
	jwt.RegisteredClaims
	Name string `json:"name"`
}

// Validate implements jwt.ClaimsValidator.
func (c *anonClaims) Validate() error {
	if !strings.HasPrefix(c.Subject, anonIDPrefix) || len(c.Subject) > maxSubjectLen || c.ID == "" ||
		c.Name == "" || len(c.Name) > maxNameLen {
		return errClaimMissing
	}
	return nil
}

// newOwnParser returns the parser of tollgate's own tokens: HS256 pinned, so
// alg none and key-type confusion (an RS or ES token against an HMAC key) are
// refused before any key is looked up; iss, aud and exp required; iat and nbf
// checked; at most Leeway of clock skew (docs/api.md, "Accounts and tokens").
// A jwt.Parser is safe for concurrent use.
func (s *Service) newOwnParser() *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(s.cfg.Leeway),
		jwt.WithTimeFunc(s.now),
		jwt.WithStrictDecoding(),
	)
}

// ownKeyfunc returns the jwt.Keyfunc for tollgate's own tokens of type typ.
// It only ever looks kid up in the KeySet: keys or key locations carried in
// the header (jwk, jku, x5u, x5c) are never read, and kid is never used as a
// path or URL (docs/api.md, "Accounts and tokens").
func (s *Service) ownKeyfunc(typ string) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodHS256 {
			return nil, errTokenSignature
		}
		if got, _ := t.Header["typ"].(string); got != typ {
			return nil, errTokenSignature
		}
		if _, crit := t.Header["crit"]; crit {
			// RFC 7515, 4.1.11: extensions we do not understand must be refused.
			return nil, errTokenSignature
		}
		kid, _ := t.Header["kid"].(string)
		key, ok := s.signingKeys().lookup(kid)
		if !ok {
			return nil, errTokenSignature
		}
		return key, nil
	}
}

// sign signs claims as a token of type typ with the current key.
func (s *Service) sign(typ string, claims jwt.Claims) (tollgate.Secret, error) {
	kid, key := s.signingKeys().signer()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = typ
	t.Header["kid"] = kid
	str, err := t.SignedString(key)
	if err != nil {
		return "", tollgate.WrapError(tollgate.CodeInternal, errors.New("auth: signing a token failed"))
	}
	return tollgate.Secret(str), nil
}

// issueAccess mints an access token for u in session sid that expires at
// the earlier of now+AccessTTL and limit (the session's end; zero: none).
func (s *Service) issueAccess(u tollgate.User, sid string, now, limit time.Time) (tollgate.Secret, time.Time, error) {
	exp := now.Add(s.cfg.AccessTTL)
	if !limit.IsZero() && limit.Before(exp) {
		exp = limit
	}
	expAt := jwt.NewNumericDate(exp)
	claims := &accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			Subject:   u.ID,
			ID:        randomHex(16),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: expAt,
		},
		Name:  u.Name,
		SID:   sid,
		Admin: u.Admin,
	}
	tok, err := s.sign(typAccess, claims)
	return tok, expAt.Time, err
}

// classify turns a jwt parse error into the contract error: token_expired
// when expiry is the only fault of a token whose signature verified,
// unauthenticated for everything else, with no detail beyond the code
// (docs/api.md, "Errors").
func classify(err error) *tollgate.Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return tollgate.WrapError(tollgate.CodeUnauthenticated, errTokenMalformed)
	case errors.Is(err, jwt.ErrTokenUnverifiable), errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return tollgate.WrapError(tollgate.CodeUnauthenticated, errTokenSignature)
	case errors.Is(err, jwt.ErrTokenExpired) &&
		!errors.Is(err, jwt.ErrTokenInvalidAudience) && !errors.Is(err, jwt.ErrTokenInvalidIssuer) &&
		!errors.Is(err, jwt.ErrTokenNotValidYet) && !errors.Is(err, jwt.ErrTokenUsedBeforeIssued) &&
		!errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && !errors.Is(err, jwt.ErrInvalidType) &&
		!errors.Is(err, errClaimMissing):
		return tollgate.WrapError(tollgate.CodeTokenExpired, errTokenExpired)
	default:
		return tollgate.WrapError(tollgate.CodeUnauthenticated, errTokenClaims)
	}
}

// VerifyAccess checks an access token and returns its principal, with
// Credential bearer. It accepts tollgate's own tokens and, when configured,
// the external identity provider's (see [OIDCConfig]).
//
// For tollgate's tokens the signature, type, key id, iss, aud, exp, nbf, iat,
// sub and sid are checked, and then the session named by sid must be live in
// the SessionStore: a revoked session is refused at once even though its
// tokens have not expired. A token verified before is not decoded again (see
// tokenCache), and the session is read through the session cache when
// Config.SessionCacheTTL is set (see [Service.ForgetRevoked]).
//
// For the provider's tokens the signature (RS256, RS384, RS512, PS256,
// ES256, ES384 or EdDSA, with a key of the provider's JWKS whose alg and type
// match), iss, aud, exp (required), nbf, iat and sub are checked. The
// principal's UserID is "oidc:" and a hash of (iss, sub) (see
// [OIDCUserIDPrefix]), its Issuer the token's iss, its SessionID empty and
// its ExpiresAt the token's exp. Such a token has no sid, so there is no
// local session to check: logout, refresh-token reuse and [Service.DisableUser]
// revoke nothing for it, and it stays valid until its exp (the provider is
// not asked about revocation); blocks by user id still apply.
//
// Errors: token_expired for an expired but otherwise valid token,
// unauthenticated for anything else, unavailable when the session store is
// down. A token whose kid is unknown may wait for one rate-limited refresh of
// the provider's keys, at most OIDCConfig.HTTPTimeout. Safe for concurrent
// use.
func (s *Service) VerifyAccess(ctx context.Context, token tollgate.Secret) (tollgate.Principal, error) {
	raw := token.Reveal()
	if raw == "" || len(raw) > maxTokenLen {
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errTokenMalformed)
	}
	if s.oidc != nil && !ownAlg(raw) {
		// No session and no revocation check: see the doc comment.
		return s.oidc.verify(ctx, raw)
	}
	claims, err := s.parseAccess(raw)
	if err != nil {
		return tollgate.Principal{}, err
	}
	now := s.now()
	sctx, cancel := s.storeCtx(ctx)
	sess, err := s.sessions.Session(sctx, claims.SID)
	cancel()
	switch {
	case errors.Is(err, tollgate.ErrNotFound):
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errSessionDead)
	case err != nil:
		return tollgate.Principal{}, storeError("load session", err)
	case sess.UserID != claims.Subject || !sess.Live(now):
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errSessionDead)
	}
	return tollgate.Principal{
		UserID:     claims.Subject,
		Name:       claims.Name,
		SessionID:  claims.SID,
		TokenID:    claims.ID,
		Admin:      claims.Admin,
		Credential: tollgate.CredentialBearer,
		ExpiresAt:  claims.ExpiresAt.Time,
	}, nil
}

// ownAlg reports whether raw's (unverified) header names HS256, the only
// algorithm of tollgate's own tokens: those go to the own verifier, every
// other token to the provider's when one is configured. The routing decides
// nothing by itself: the own verifier pins HS256 with tollgate's keys (a kid
// of its KeySet, its iss and aud), the provider's pins the asymmetric
// algorithms with keys of their matching type, so neither ever checks a
// token with the other's keys: an HS256 token MACed with a provider's public
// key (algorithm confusion) meets only tollgate's secret keys and fails.
func ownAlg(raw string) bool { return headerAlg(raw) == jwt.SigningMethodHS256.Alg() }

// headerAlg returns the alg of a JWT's (unverified) header, or "" when it
// cannot be read. It only routes a token to the verifier that pins that
// algorithm family; it decides nothing by itself.
func headerAlg(raw string) string {
	seg, _, ok := strings.Cut(raw, ".")
	if !ok || len(seg) > 1024 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return ""
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(b, &h) != nil {
		return ""
	}
	return h.Alg
}
