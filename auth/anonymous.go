package auth

import (
	"context"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-ws/tollgate"
)

// anonIDPrefix starts every anonymous user id. Registered users' ids are
// plain hex, so an anonymous id can never name a registered user.
const anonIDPrefix = "anon-"

var errAnonymousOff = errors.New("auth: anonymous sessions are disabled")

// IssueAnonymous starts an anonymous session (GET /api/auth/anon, only with
// --anonymous): a random id ("anon-" + 16 hex) and name ("guest-" + 6 hex),
// carried by a JWT of type anon+jwt signed with tollgate's key and valid for
// AnonymousTTL. The caller puts the token in the HttpOnly anon_session
// cookie. An anonymous token is never accepted as an access token, nor the
// reverse: the type is checked before the signature.
//
// Errors: forbidden when anonymous sessions are off, origin_not_allowed for a
// present Origin that is not allowed. Safe for concurrent use.
func (s *Service) IssueAnonymous(ctx context.Context, c tollgate.ClientInfo) (tollgate.Principal, tollgate.Secret, error) {
	if !s.cfg.Anonymous {
		return tollgate.Principal{}, "", tollgate.WrapError(tollgate.CodeForbidden, errAnonymousOff)
	}
	if c.HasOrigin && !s.origins.Allowed(c.Origin) {
		return tollgate.Principal{}, "", tollgate.WrapError(tollgate.CodeOriginNotAllowed, errOriginRefused)
	}
	now := s.now()
	exp := jwt.NewNumericDate(now.Add(s.cfg.AnonymousTTL))
	claims := &anonClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			Subject:   anonIDPrefix + randomHex(8),
			ID:        randomHex(16),
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: exp,
		},
		Name: "guest-" + randomHex(3),
	}
	tok, err := s.sign(typAnon, claims)
	if err != nil {
		return tollgate.Principal{}, "", err
	}
	return anonPrincipal(claims), tok, nil
}

// VerifyAnonymous checks an anonymous session token and returns its
// principal (Anonymous true, Credential anonymous). Errors: token_expired or
// unauthenticated, as for access tokens; forbidden when anonymous sessions
// are off. Safe for concurrent use.
func (s *Service) VerifyAnonymous(tok tollgate.Secret) (tollgate.Principal, error) {
	if !s.cfg.Anonymous {
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeForbidden, errAnonymousOff)
	}
	raw := tok.Reveal()
	if raw == "" || len(raw) > maxTokenLen {
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errTokenMalformed)
	}
	claims := &anonClaims{}
	if _, err := s.anon.ParseWithClaims(raw, claims, s.anonKeyfunc); err != nil {
		return tollgate.Principal{}, classify(err)
	}
	return anonPrincipal(claims), nil
}

func anonPrincipal(c *anonClaims) tollgate.Principal {
	var exp time.Time
	if c.ExpiresAt != nil {
		exp = c.ExpiresAt.Time
	}
	return tollgate.Principal{
		UserID:     c.Subject,
		Name:       c.Name,
		TokenID:    c.ID,
		Anonymous:  true,
		Credential: tollgate.CredentialAnonymous,
		ExpiresAt:  exp,
	}
}
