package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-ws/tollgate"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// hsToken builds an HS256-signed JWT by hand, so that tests control every
// header and claim.
func hsToken(header, claims map[string]any, key []byte) string {
	signing := b64(mustJSON(header)) + "." + b64(mustJSON(claims))
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signing))
	return signing + "." + b64(m.Sum(nil))
}

// claimsOf decodes a JWT's claims without verifying it.
func claimsOf(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func headerOf(t testing.TB, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func TestAccessTokenShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login(t, "alice")
	h := headerOf(t, tok.Access.Reveal())
	if h["alg"] != "HS256" || h["typ"] != "at+jwt" || h["kid"] != KeyID(testKey) {
		t.Fatalf("header = %v", h)
	}
	c := claimsOf(t, tok.Access.Reveal())
	for _, k := range []string{"iss", "aud", "sub", "name", "sid", "jti", "iat", "nbf", "exp"} {
		if _, ok := c[k]; !ok {
			t.Errorf("claim %s missing: %v", k, c)
		}
	}
	now := e.clock.Now()
	if c["sub"] != tok.User.ID || c["sid"] != tok.SessionID || c["name"] != "alice" || c["iss"] != "tollgate" {
		t.Errorf("claims = %v", c)
	}
	if exp := int64(c["exp"].(float64)); exp != now.Add(15*time.Minute).Unix() || !tok.AccessExpiresAt.Equal(time.Unix(exp, 0)) {
		t.Errorf("exp = %d, AccessExpiresAt = %v; want now+15m", exp, tok.AccessExpiresAt)
	}
	p := e.principal(t, tok)
	if p.UserID != tok.User.ID || p.SessionID != tok.SessionID || p.Name != "alice" || p.Credential != tollgate.CredentialBearer ||
		!p.ExpiresAt.Equal(tok.AccessExpiresAt) || p.TokenID == "" || p.Anonymous {
		t.Errorf("principal = %+v", p)
	}
}

// TestJWTAttacks: every forged, confused or stale token is refused with
// unauthenticated (or token_expired when expiry is the only fault), and no
// header-supplied key location is ever fetched.
func TestJWTAttacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login(t, "alice")
	bob := e.login(t, "bob")
	valid := claimsOf(t, tok.Access.Reveal())
	now := e.clock.Now()
	kid := KeyID(testKey)
	hdr := map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": kid}

	with := func(m map[string]any, kv ...any) map[string]any {
		out := maps.Clone(m)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}

	// Key locations an attacker puts in the header: never fetched.
	var fetched atomic.Int32
	attackerKey := []byte("attacker-key-attacker-key-attack")
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		w.Write(mustJSON(map[string]any{"keys": []any{map[string]any{"kty": "oct", "kid": "evil", "k": b64(attackerKey)}}}))
	}))
	defer jwks.Close()

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	rs256, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(valid)).SignedString(rsaKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	es256, _ := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(valid)).SignedString(ecKey)
	hs512 := func() string {
		tk := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims(valid))
		tk.Header["typ"], tk.Header["kid"] = "at+jwt", kid
		s, _ := tk.SignedString(testKey)
		return s
	}()
	noneTok := func(alg string) string {
		return b64(mustJSON(with(hdr, "alg", alg))) + "." + b64(mustJSON(valid)) + "."
	}
	good := hsToken(hdr, valid, testKey)
	// Flip the last character of the signature's base64 to a value that
	// decodes to the same bytes under lenient decoding.
	nonCanonical := good[:len(good)-1] + string(good[len(good)-1]^1)

	tests := []struct {
		name string
		tok  string
		want tollgate.Code
	}{
		{"control: hand-built valid token", good, ""},
		{"alg none", noneTok("none"), tollgate.CodeUnauthenticated},
		{"alg None", noneTok("None"), tollgate.CodeUnauthenticated},
		{"alg NONE", noneTok("NONE"), tollgate.CodeUnauthenticated},
		{"alg missing", b64(mustJSON(with(hdr, "alg", nil))) + "." + b64(mustJSON(valid)) + ".", tollgate.CodeUnauthenticated},
		{"HS256 with a wrong key", hsToken(hdr, valid, []byte("another-key-another-key-another-")), tollgate.CodeUnauthenticated},
		{"HS256 signed with the RSA public key (key confusion)", hsToken(hdr, valid, pubPEM), tollgate.CodeUnauthenticated},
		{"HS256 signed with the RSA public key DER", hsToken(hdr, valid, pubDER), tollgate.CodeUnauthenticated},
		{"RS256", rs256, tollgate.CodeUnauthenticated},
		{"ES256", es256, tollgate.CodeUnauthenticated},
		{"HS512 with the right key (algorithm pinned)", hs512, tollgate.CodeUnauthenticated},
		{"jku to an attacker JWKS", hsToken(with(hdr, "jku", jwks.URL, "kid", "evil"), valid, attackerKey), tollgate.CodeUnauthenticated},
		{"x5u to an attacker", hsToken(with(hdr, "x5u", jwks.URL, "kid", "evil"), valid, attackerKey), tollgate.CodeUnauthenticated},
		{"embedded jwk", hsToken(with(hdr, "jwk", map[string]any{"kty": "oct", "k": b64(attackerKey)}, "kid", nil), valid, attackerKey), tollgate.CodeUnauthenticated},
		{"embedded jwk with our kid", hsToken(with(hdr, "jwk", map[string]any{"kty": "oct", "k": b64(attackerKey)}), valid, attackerKey), tollgate.CodeUnauthenticated},
		{"kid path traversal", hsToken(with(hdr, "kid", "../../etc/passwd"), valid, []byte("root:x:0:0")), tollgate.CodeUnauthenticated},
		{"kid /dev/null with an empty key", hsToken(with(hdr, "kid", "/dev/null"), valid, []byte{}), tollgate.CodeUnauthenticated},
		{"kid SQL", hsToken(with(hdr, "kid", "x' UNION SELECT 'key"), valid, []byte("key")), tollgate.CodeUnauthenticated},
		{"kid missing", hsToken(with(hdr, "kid", nil), valid, testKey), tollgate.CodeUnauthenticated},
		{"kid a number", hsToken(with(hdr, "kid", 1), valid, testKey), tollgate.CodeUnauthenticated},
		{"kid unknown", hsToken(with(hdr, "kid", "deadbeef"), valid, testKey), tollgate.CodeUnauthenticated},
		{"typ JWT", hsToken(with(hdr, "typ", "JWT"), valid, testKey), tollgate.CodeUnauthenticated},
		{"typ missing", hsToken(with(hdr, "typ", nil), valid, testKey), tollgate.CodeUnauthenticated},
		{"typ anon+jwt", hsToken(with(hdr, "typ", "anon+jwt"), valid, testKey), tollgate.CodeUnauthenticated},
		{"crit header", hsToken(with(hdr, "crit", []string{"exp"}), valid, testKey), tollgate.CodeUnauthenticated},
		{"expired", hsToken(hdr, with(valid, "exp", now.Add(-time.Minute).Unix()), testKey), tollgate.CodeTokenExpired},
		{"expired within leeway", hsToken(hdr, with(valid, "exp", now.Add(-3*time.Second).Unix()), testKey), ""},
		{"expired and wrong audience", hsToken(hdr, with(valid, "exp", now.Add(-time.Minute).Unix(), "aud", "other"), testKey), tollgate.CodeUnauthenticated},
		{"expired and forged", hsToken(hdr, with(valid, "exp", now.Add(-time.Minute).Unix()), attackerKey), tollgate.CodeUnauthenticated},
		{"exp missing", hsToken(hdr, with(valid, "exp", nil), testKey), tollgate.CodeUnauthenticated},
		{"exp a string", hsToken(hdr, with(valid, "exp", "tomorrow"), testKey), tollgate.CodeUnauthenticated},
		{"nbf in the future", hsToken(hdr, with(valid, "nbf", now.Add(time.Minute).Unix()), testKey), tollgate.CodeUnauthenticated},
		{"iat in the future", hsToken(hdr, with(valid, "iat", now.Add(time.Minute).Unix()), testKey), tollgate.CodeUnauthenticated},
		{"wrong issuer", hsToken(hdr, with(valid, "iss", "https://idp.example.com"), testKey), tollgate.CodeUnauthenticated},
		{"issuer missing", hsToken(hdr, with(valid, "iss", nil), testKey), tollgate.CodeUnauthenticated},
		{"wrong audience", hsToken(hdr, with(valid, "aud", "someone-else"), testKey), tollgate.CodeUnauthenticated},
		{"audience missing", hsToken(hdr, with(valid, "aud", nil), testKey), tollgate.CodeUnauthenticated},
		{"audience list containing ours", hsToken(hdr, with(valid, "aud", []string{"x", "tollgate"}), testKey), ""},
		{"sub missing", hsToken(hdr, with(valid, "sub", nil), testKey), tollgate.CodeUnauthenticated},
		{"sid missing", hsToken(hdr, with(valid, "sid", nil), testKey), tollgate.CodeUnauthenticated},
		{"jti missing", hsToken(hdr, with(valid, "jti", nil), testKey), tollgate.CodeUnauthenticated},
		{"sid of another user's session", hsToken(hdr, with(valid, "sid", bob.SessionID), testKey), tollgate.CodeUnauthenticated},
		{"sid unknown", hsToken(hdr, with(valid, "sid", "0000"), testKey), tollgate.CodeUnauthenticated},
		{"non-canonical base64", nonCanonical, tollgate.CodeUnauthenticated},
		{"two segments", strings.Join(strings.Split(good, ".")[:2], "."), tollgate.CodeUnauthenticated},
		{"four segments", good + ".x", tollgate.CodeUnauthenticated},
		{"empty", "", tollgate.CodeUnauthenticated},
		{"huge", good + strings.Repeat("A", maxTokenLen), tollgate.CodeUnauthenticated},
		{"garbage", "not a jwt", tollgate.CodeUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := e.svc.VerifyAccess(context.Background(), tollgate.Secret(tc.tok))
			wantCode(t, err, tc.want)
			if err != nil && p != (tollgate.Principal{}) {
				t.Errorf("a refused token returned a principal: %+v", p)
			}
			if err != nil && strings.Contains(err.Error(), tc.tok) && tc.tok != "" {
				t.Errorf("error text contains the token")
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Fatalf("a header-supplied key location was fetched %d times", n)
	}
}

func TestAccessTokenExpiresWithInjectedClock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login(t, "alice")
	e.clock.Advance(15*time.Minute - time.Second)
	if _, err := e.svc.VerifyAccess(context.Background(), tok.Access); err != nil {
		t.Fatalf("token refused before exp: %v", err)
	}
	e.clock.Advance(DefaultLeeway + 2*time.Second)
	_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeTokenExpired)
}

func TestRevokedSessionRefusedAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login(t, "alice")
	p := e.principal(t, tok)
	if err := e.svc.Logout(context.Background(), p, tollgate.ClientInfo{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
	ev := e.control.all()
	if len(ev) != 1 || ev[0].Kind != tollgate.ControlRevokeSession || ev[0].Target != tok.SessionID || ev[0].Code != tollgate.CodeSessionRevoked {
		t.Fatalf("control events = %+v", ev)
	}
	if _, ok := e.audit.last(tollgate.AuditLogout); !ok {
		t.Fatalf("logout not audited: %v", e.audit.kinds())
	}
}

func TestKeyRotationVerifiesOldTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login(t, "alice")
	newKey := []byte("a-brand-new-key-a-brand-new-key-")
	ks, err := NewKeySet(newKey, testKey)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := New(Config{Keys: ks, Argon2: fastArgon, Now: e.clock.Now}, e.users, e.sessions, e.tickets)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.VerifyAccess(context.Background(), tok.Access); err != nil {
		t.Fatalf("token signed with the previous key refused: %v", err)
	}
	fresh, err := rotated.Login(context.Background(), "alice", testPass, tollgate.ClientInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if headerOf(t, fresh.Access.Reveal())["kid"] != KeyID(newKey) {
		t.Fatal("new tokens are not signed with the current key")
	}
	// The old node, without the new key, refuses the new token.
	_, err = e.svc.VerifyAccess(context.Background(), fresh.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
}

func TestStoreDownFailsClosed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.login(t, "alice")
	down := &downSessions{SessionStore: e.sessions}
	svc, err := New(Config{Keys: e.svc.cfg.Keys, Argon2: fastArgon, Now: e.clock.Now}, e.users, down, e.tickets)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeUnavailable)
	_, err = svc.Refresh(context.Background(), tok.Refresh, tollgate.ClientInfo{})
	wantCode(t, err, tollgate.CodeUnavailable)
}

// downSessions is a SessionStore whose backend is unreachable.
type downSessions struct{ tollgate.SessionStore }

func (downSessions) Session(context.Context, string) (tollgate.Session, error) {
	return tollgate.Session{}, tollgate.ErrUnavailable
}

func (downSessions) RotateRefresh(context.Context, string, tollgate.RefreshToken, time.Time) (tollgate.Session, error) {
	return tollgate.Session{}, tollgate.ErrUnavailable
}
