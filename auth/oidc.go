package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/tollgate-ws/tollgate"
)

// Defaults of [OIDCConfig].
const (
	// DefaultOIDCNameClaim is the claim read for the display name when
	// OIDCConfig.NameClaim is empty.
	DefaultOIDCNameClaim = "preferred_username"
	// DefaultOIDCHTTPTimeout bounds each fetch from the identity provider
	// when OIDCConfig.HTTPTimeout is zero.
	DefaultOIDCHTTPTimeout = 10 * time.Second
)

// OIDCUserIDPrefix starts the user id of every principal of an external
// identity provider. Registered users' ids are plain hex and anonymous ones
// start with "anon-", so an external id never names a local user.
const OIDCUserIDPrefix = "oidc:"

const (
	// maxOIDCResponseBytes bounds the body of the discovery document and of
	// the JWKS. Real ones are a few KiB (tens with x5c certificate chains).
	maxOIDCResponseBytes = 1 << 20
	// oidcRefreshInterval is how often the JWKS is fetched in the background,
	// so that keys the provider withdrew stop verifying.
	oidcRefreshInterval = 15 * time.Minute
	// oidcUnknownKIDEvery is the least time between two refreshes caused by a
	// token with an unknown kid (a key the provider just rotated in). Anyone
	// can send such a token, so this bounds the load they put on the
	// provider; a token that finds the limit used up fails at once instead of
	// waiting.
	oidcUnknownKIDEvery = time.Minute
	// minRSABits is the smallest RSA modulus accepted as a provider key.
	minRSABits = 2048
	// maxIssuerLen bounds the iss of a provider token.
	maxIssuerLen = 512
)

// oidcAlgorithms are the only algorithms accepted for provider tokens: the
// asymmetric ones. Never HS* (a provider's public key is public: anyone can
// HMAC with it) and never none.
var oidcAlgorithms = []string{
	jwt.SigningMethodRS256.Alg(), jwt.SigningMethodRS384.Alg(), jwt.SigningMethodRS512.Alg(),
	jwt.SigningMethodPS256.Alg(),
	jwt.SigningMethodES256.Alg(), jwt.SigningMethodES384.Alg(),
	jwt.SigningMethodEdDSA.Alg(),
}

var errOIDCResponseTooLarge = fmt.Errorf("response larger than %d bytes", maxOIDCResponseBytes)

// OIDCConfig configures an external identity provider whose JWTs are
// accepted as access tokens (OpenID Connect access or ID tokens signed with
// RS256, RS384, RS512, PS256, ES256, ES384 or EdDSA). The zero value means
// none; setting Issuer or JWKSURL turns it on, and then Audience is required.
//
// Provider tokens carry no tollgate session: logout and session revocation do
// not apply to them, and they stay valid until their exp (see
// [Service.VerifyAccess]).
type OIDCConfig struct {
	// Issuer is the provider's issuer URL (--oidc-issuer). With JWKSURL
	// empty, the keys are found through OpenID Connect discovery:
	// Issuer + "/.well-known/openid-configuration", whose "issuer" must equal
	// Issuer exactly and whose "jwks_uri" is used. When set, it is the only
	// iss accepted. Zero means: no discovery and any non-empty iss is
	// accepted (only with JWKSURL).
	Issuer string
	// JWKSURL is where the provider's keys are fetched (--jwks-url). When
	// set, discovery is skipped. Zero means: discovered from Issuer.
	JWKSURL string
	// Audience is the aud the provider's tokens must carry
	// (--oidc-audience). Required when Issuer or JWKSURL is set.
	Audience string
	// NameClaim is the claim that holds the display name
	// (--oidc-name-claim). A token whose claim is missing, not a string or
	// not printable gets its sub as name; names are cut to 64 bytes. Zero
	// means "preferred_username".
	NameClaim string
	// HTTPClient fetches discovery and keys. Its Timeout (when shorter) and
	// Transport are kept; every response body is bounded to 1 MiB. Nil means
	// a client on http.DefaultTransport.
	HTTPClient *http.Client
	// HTTPTimeout bounds each fetch (discovery, the first JWKS fetch, every
	// refresh). Zero means 10 seconds.
	HTTPTimeout time.Duration
}

func (c OIDCConfig) enabled() bool { return c.Issuer != "" || c.JWKSURL != "" }

// oidcVerifier verifies provider tokens against the provider's JWKS, which a
// keyfunc (github.com/MicahParks/keyfunc) keeps fresh: fetched at start,
// refreshed every oidcRefreshInterval in the background and, at most once per
// oidcUnknownKIDEvery, when a token names an unknown kid. It is safe for
// concurrent use.
type oidcVerifier struct {
	nameClaim string
	timeout   time.Duration
	parser    *jwt.Parser
	keys      keyfunc.Keyfunc
	cancel    context.CancelFunc // stops the background refresh
}

// newOIDCVerifier runs discovery (unless cfg.JWKSURL is set), fetches the
// JWKS once and starts its background refresh. Every failure is an error
// naming the setting; none holds a URL's query string.
func newOIDCVerifier(cfg OIDCConfig, now func() time.Time, leeway time.Duration, log *slog.Logger) (*oidcVerifier, error) {
	if cfg.Audience == "" {
		return nil, errors.New("auth: --oidc-audience is required with --oidc-issuer or --jwks-url")
	}
	if cfg.NameClaim == "" {
		cfg.NameClaim = DefaultOIDCNameClaim
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = DefaultOIDCHTTPTimeout
	}
	if log == nil {
		log = discardLogger()
	}
	client := boundedClient(cfg.HTTPClient, cfg.HTTPTimeout)

	jwksURL := cfg.JWKSURL
	setting := "--jwks-url " + redactURL(jwksURL) // names the keys' origin in errors
	if jwksURL == "" {
		if _, err := checkFetchURL(cfg.Issuer); err != nil {
			return nil, fmt.Errorf("auth: --oidc-issuer %s: %w", redactURL(cfg.Issuer), err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), cfg.HTTPTimeout)
		u, err := discoverJWKS(ctx, client, cfg.Issuer)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("auth: --oidc-issuer %s: discovery: %w", redactURL(cfg.Issuer), err)
		}
		jwksURL = u
		setting = "--oidc-issuer " + redactURL(cfg.Issuer) + ": jwks_uri " + redactURL(jwksURL)
	} else if _, err := checkFetchURL(jwksURL); err != nil {
		return nil, fmt.Errorf("auth: --jwks-url %s: %w", redactURL(jwksURL), err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	noStartWithoutKeys := false
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{jwksURL}, keyfunc.Override{
		Client:      client,
		HTTPTimeout: cfg.HTTPTimeout,
		// The first fetch must succeed: a server that cannot verify the
		// provider's tokens should say so at start, not at the first login.
		NoErrorReturnFirstHTTPReq: &noStartWithoutKeys,
		RefreshInterval:           oidcRefreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(oidcUnknownKIDEvery), 1),
		// The wait for the limiter and the refresh it allows share this
		// bound; a wait longer than it fails at once.
		RateLimitWaitMax: cfg.HTTPTimeout,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				log.Warn("refreshing the identity provider's keys failed; the keys already fetched stay in use",
					"url", redactURL(u), "error", jwksCause(err, u))
			}
		},
	})
	if err != nil {
		cancel() // the storage may have started its refresh goroutine already
		return nil, fmt.Errorf("auth: %s: fetching the keys: %w", setting, jwksCause(err, jwksURL))
	}
	v := &oidcVerifier{
		nameClaim: cfg.NameClaim,
		timeout:   cfg.HTTPTimeout,
		keys:      kf,
		cancel:    cancel,
	}
	if n := v.usableKeys(ctx); n == 0 {
		cancel()
		return nil, fmt.Errorf("auth: %s: the JWKS holds no usable signing key (RSA of at least %d bits, EC P-256 or P-384, Ed25519)",
			setting, minRSABits)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(oidcAlgorithms),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	log.Info("accepting tokens of an external identity provider", "issuer", redactURL(cfg.Issuer), "jwks_url", redactURL(jwksURL))
	return v, nil
}

// verify checks a provider token: algorithm (asymmetric, pinned), key (by
// kid, from the provider's JWKS only, matching the token's alg), signature,
// exp (required), nbf and iat (with the Service's leeway), aud, iss and sub.
// It returns a principal with Credential bearer, an "oidc:" user id (see
// [oidcUserID]), no session and ExpiresAt = exp. Errors are *tollgate.Error
// (token_expired or unauthenticated) whose cause is one of this package's
// fixed sentinels: never any part of the token.
func (v *oidcVerifier) verify(ctx context.Context, raw string) (tollgate.Principal, error) {
	if raw == "" || len(raw) > maxTokenLen {
		return tollgate.Principal{}, tollgate.WrapError(tollgate.CodeUnauthenticated, errTokenMalformed)
	}
	// Bounds a refresh caused by an unknown kid, and the wait for it.
	kctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	claims := &oidcClaims{nameClaim: v.nameClaim}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc(kctx)); err != nil {
		return tollgate.Principal{}, classify(err)
	}
	p := tollgate.Principal{
		UserID:     oidcUserID(claims.Issuer, claims.Subject),
		Name:       claims.displayName(),
		Credential: tollgate.CredentialBearer,
		ExpiresAt:  claims.ExpiresAt.Time,
		Issuer:     claims.Issuer,
	}
	if len(claims.ID) <= maxSubjectLen {
		p.TokenID = claims.ID
	}
	return p, nil
}

// keyfunc returns the jwt.Keyfunc of provider tokens. It only ever looks the
// header's kid up in the provider's JWKS (refreshing it, rate-limited, when
// the kid is unknown): keys or key locations carried in the header (jwk, jku,
// x5u, x5c) are never read. The key must suit the token's alg (see
// [keyFits]), so a token can never be checked with a key of another type.
// Without a kid, every key of the JWKS that suits the alg is tried.
func (v *oidcVerifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if _, crit := t.Header["crit"]; crit {
			// RFC 7515, 4.1.11: extensions we do not understand must be refused.
			return nil, errTokenSignature
		}
		alg := t.Method.Alg() // one of oidcAlgorithms: the parser checked it first
		storage := v.keys.Storage()
		kidValue, hasKID := t.Header[jwkset.HeaderKID]
		kid, ok := kidValue.(string)
		if hasKID && !ok {
			return nil, errTokenSignature
		}
		if kid != "" {
			jwk, err := storage.KeyRead(ctx, kid)
			if err != nil {
				return nil, errTokenSignature
			}
			key, ok := keyFits(alg, jwk)
			if !ok {
				return nil, errTokenSignature
			}
			return key, nil
		}
		all, err := storage.KeyReadAll(ctx)
		if err != nil {
			return nil, errTokenSignature
		}
		var set jwt.VerificationKeySet
		for _, jwk := range all {
			if key, ok := keyFits(alg, jwk); ok {
				set.Keys = append(set.Keys, key)
			}
		}
		if len(set.Keys) == 0 {
			return nil, errTokenSignature
		}
		return set, nil
	}
}

// keyFits returns the public key of jwk when it may verify a token of alg:
// the JWK's alg, when it has one, must be alg; its use, when it has one,
// must be sig; its type must be alg's (RSA of at least minRSABits for RS*
// and PS*, EC on the curve of ES256 or ES384, Ed25519 for EdDSA). A symmetric
// (oct) key never fits.
func keyFits(alg string, jwk jwkset.JWK) (crypto.PublicKey, bool) {
	m := jwk.Marshal()
	if a := m.ALG.String(); a != "" && a != alg {
		return nil, false
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return nil, false
	}
	key := jwk.Key()
	if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		key = pk.Public() // a provider that publishes private keys still only gets verified against
	}
	switch alg {
	case "RS256", "RS384", "RS512", "PS256":
		k, ok := key.(*rsa.PublicKey)
		if !ok || k.N == nil || k.N.BitLen() < minRSABits {
			return nil, false
		}
		return k, true
	case "ES256", "ES384":
		want := "P-256"
		if alg == "ES384" {
			want = "P-384"
		}
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k.Curve == nil || k.Curve.Params().Name != want {
			return nil, false
		}
		return k, true
	case "EdDSA":
		k, ok := key.(ed25519.PublicKey)
		if !ok || len(k) != ed25519.PublicKeySize {
			return nil, false
		}
		return k, true
	}
	return nil, false
}

// usableKeys counts the keys of the JWKS that fit one of oidcAlgorithms.
func (v *oidcVerifier) usableKeys(ctx context.Context) int {
	all, err := v.keys.Storage().KeyReadAll(ctx)
	if err != nil {
		return 0
	}
	n := 0
	for _, jwk := range all {
		for _, alg := range oidcAlgorithms {
			if _, ok := keyFits(alg, jwk); ok {
				n++
				break
			}
		}
	}
	return n
}

// close stops the background refresh: the refresh goroutine (owned by the
// jwkset storage, which offers no way to wait for it) ends at its next
// select, and a fetch in flight is canceled. Safe to call more than once.
func (v *oidcVerifier) close() { v.cancel() }

// oidcClaims are the claims read from a provider token: the registered ones
// and the configured name claim.
type oidcClaims struct {
	jwt.RegisteredClaims
	nameClaim string // which claim holds the display name; set before parsing
	name      string // that claim's value when it is a string
}

// UnmarshalJSON decodes the registered claims and the name claim.
func (c *oidcClaims) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.RegisteredClaims); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	if raw, ok := all[c.nameClaim]; ok {
		var name string
		if json.Unmarshal(raw, &name) == nil {
			c.name = name
		}
	}
	return nil
}

// Validate implements jwt.ClaimsValidator: iss (whatever its value, when no
// issuer is configured) and sub are required, printable and bounded, since
// together they name the user.
func (c *oidcClaims) Validate() error {
	if c.Issuer == "" || len(c.Issuer) > maxIssuerLen || !printable(c.Issuer) {
		return errClaimMissing
	}
	if c.Subject == "" || len(c.Subject) > maxSubjectLen || !printable(c.Subject) {
		return errClaimMissing
	}
	return nil
}

// displayName is the name claim when it is printable, else sub; either cut
// to maxNameLen bytes on a character boundary.
func (c *oidcClaims) displayName() string {
	name := strings.TrimSpace(c.name)
	if name == "" || !printable(name) {
		name = c.Subject
	}
	if len(name) > maxNameLen {
		cut := maxNameLen
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = name[:cut]
	}
	return name
}

// printable reports whether s is valid UTF-8 of printable characters only
// (no control, format or bidi-override characters, no line breaks).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// oidcUserID is the user id of the provider user (iss, sub): "oidc:" and the
// first 16 bytes, in hex, of a SHA-256 over a fixed label, the length of iss,
// iss and sub. It is stable (the same user always gets the same id, on every
// node), bounded (37 characters of [a-z0-9:]), unambiguous (the length prefix
// keeps ("a", "bc") and ("ab", "c") apart), and can never equal a local id,
// which is plain hex, nor an anonymous one ("anon-…").
func oidcUserID(iss, sub string) string {
	h := sha256.New()
	h.Write([]byte("tollgate oidc user\x00"))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(iss)))
	h.Write(n[:])
	h.Write([]byte(iss))
	h.Write([]byte(sub))
	return OIDCUserIDPrefix + hex.EncodeToString(h.Sum(nil)[:16])
}

// discoverJWKS fetches issuer's OpenID Connect discovery document and returns
// its jwks_uri. The document's issuer must equal issuer exactly (OpenID
// Connect Discovery 1.0, section 4.3).
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	u := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", unwrapURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: status %d", redactURL(u), resp.StatusCode)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return "", fmt.Errorf("GET %s: decoding the document: %w", redactURL(u), err)
	}
	if doc.Issuer != issuer {
		return "", fmt.Errorf("the document names issuer %q, not the configured %q; they must be equal", clip(doc.Issuer, 200), issuer)
	}
	if doc.JWKSURI == "" {
		return "", errors.New("the document has no jwks_uri")
	}
	if _, err := checkFetchURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("jwks_uri %s: %w", redactURL(clip(doc.JWKSURI, 200)), err)
	}
	return doc.JWKSURI, nil
}

// checkFetchURL accepts an absolute https URL, or http to a loopback host
// (the same rule as the settings): keys fetched over plain http from afar
// could be replaced on the way.
func checkFetchURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, errors.New("not an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return u, nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return u, nil
		}
	}
	return nil, errors.New("must use https (http only for localhost)")
}

// boundedClient returns a copy of c (nil: a default client) whose Timeout
// is at most timeout and whose response bodies are bounded.
func boundedClient(c *http.Client, timeout time.Duration) *http.Client {
	var out http.Client
	if c != nil {
		out = *c
	}
	if out.Timeout <= 0 || out.Timeout > timeout {
		out.Timeout = timeout
	}
	rt := out.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	out.Transport = limitTransport{next: rt, max: maxOIDCResponseBytes}
	return &out
}

// limitTransport bounds every response body to max bytes: reading past them
// fails, so a decoder never buffers more.
type limitTransport struct {
	next http.RoundTripper
	max  int64
}

// RoundTrip implements http.RoundTripper.
func (t limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > t.max {
		resp.Body.Close()
		return nil, errOIDCResponseTooLarge
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

// limitedBody reads at most left bytes of rc and fails if there are more.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errOIDCResponseTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// redactURL returns raw without its query, fragment and user info, which may
// hold a secret; "" stays "".
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	redacted := u.User != nil || u.RawQuery != "" || u.Fragment != ""
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	if redacted {
		return u.String() + "?…"
	}
	return u.String()
}

// jwksCause is the cause of a failed JWKS fetch without the layers of
// library context, which repeat the URL (query included) the caller already
// names in redacted form: the network error, the HTTP status, the size bound
// or the decoding error.
func jwksCause(err error, rawURL string) error {
	var ue *url.Error
	switch {
	case errors.As(err, &ue):
		return ue.Err
	case errors.Is(err, errOIDCResponseTooLarge):
		return errOIDCResponseTooLarge
	}
	msg, _, _ := strings.Cut(err.Error(), "\n") // errors.Join adds the library's own sentinels after a newline
	for _, marker := range []string{jwkset.ErrInvalidHTTPStatusCode.Error(), "failed to decode JWK Set response: "} {
		if i := strings.LastIndex(msg, marker); i >= 0 {
			msg = msg[i:]
			break
		}
	}
	if r := redactURL(rawURL); r != rawURL {
		msg = strings.ReplaceAll(msg, rawURL, r)
	}
	return errors.New(msg)
}

// unwrapURLError drops the URL from a *url.Error (the caller names it).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// clip cuts s to n bytes, for quoting provider input in an error.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
