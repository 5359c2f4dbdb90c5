package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-ws/tollgate"
	"github.com/tollgate-ws/tollgate/memory"
)

const testAudience = "chat-api"

// idpKey is one signing key of the test identity provider.
type idpKey struct {
	kid  string // "" = published without kid
	alg  string // the JWK's alg; "" = published without alg
	priv crypto.Signer
}

// Keys generated once for all tests (RSA generation is slow).
var (
	rsaKeyA, rsaKeyB, rsaKeyOther *rsa.PrivateKey
	rsaKeyWeak                    *rsa.PrivateKey
	ecKey256, ecKey384            *ecdsa.PrivateKey
	edKey                         ed25519.PrivateKey
	testKeysOnce                  sync.Once
)

func testKeys(t testing.TB) {
	t.Helper()
	testKeysOnce.Do(func() {
		must := func(err error) {
			if err != nil {
				panic(err)
			}
		}
		var err error
		rsaKeyA, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		rsaKeyB, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		rsaKeyOther, err = rsa.GenerateKey(rand.Reader, 2048)
		must(err)
		rsaKeyWeak, err = rsa.GenerateKey(rand.Reader, 1024)
		must(err)
		ecKey256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		ecKey384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		_, edKey, err = ed25519.GenerateKey(rand.Reader)
		must(err)
	})
}

// testIdP is a real HTTP identity provider on loopback: discovery document
// and JWKS, with keys the test can rotate and hit counters.
type testIdP struct {
	srv           *httptest.Server
	mu            sync.Mutex
	issuer        string // the discovery document's issuer; "" = srv.URL
	jwksURI       string // the discovery document's jwks_uri; "" = srv.URL/jwks
	keys          []idpKey
	extra         []any // raw JWKs published besides keys
	jwksStatus    int   // 0 = 200
	jwksBody      []byte
	discoveryHits atomic.Int32
	jwksHits      atomic.Int32
}

func newTestIdP(t testing.TB, keys ...idpKey) *testIdP {
	t.Helper()
	p := &testIdP{keys: keys}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		p.discoveryHits.Add(1)
		p.mu.Lock()
		iss, jwks := p.issuer, p.jwksURI
		p.mu.Unlock()
		if iss == "" {
			iss = p.srv.URL
		}
		if jwks == "" {
			jwks = p.srv.URL + "/jwks"
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(mustJSON(map[string]any{"issuer": iss, "jwks_uri": jwks, "id_token_signing_alg_values_supported": oidcAlgorithms}))
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		p.jwksHits.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.jwksStatus != 0 {
			w.WriteHeader(p.jwksStatus)
			return
		}
		if p.jwksBody != nil {
			w.Write(p.jwksBody)
			return
		}
		keys := append([]any(nil), p.extra...)
		for _, k := range p.keys {
			keys = append(keys, jwkOf(k))
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(mustJSON(map[string]any{"keys": keys}))
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *testIdP) URL() string { return p.srv.URL }

func (p *testIdP) setKeys(keys ...idpKey) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

// jwkOf is k's public JWK, encoded by hand (RFC 7518, section 6), not by the
// library under test.
func jwkOf(k idpKey) map[string]any {
	m := map[string]any{"use": "sig"}
	if k.kid != "" {
		m["kid"] = k.kid
	}
	if k.alg != "" {
		m["alg"] = k.alg
	}
	switch pub := k.priv.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		point, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			panic(err)
		}
		size := (len(point) - 1) / 2
		m["kty"], m["crv"] = "EC", pub.Curve.Params().Name
		m["x"], m["y"] = b64(point[1:1+size]), b64(point[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64(pub)
	default:
		panic("unknown key type")
	}
	return m
}

// signJWT signs claims with k as a token of alg, with k's kid in the header
// and header's entries added (nil deletes).
func signJWT(t testing.TB, k idpKey, alg string, header, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(alg), jwt.MapClaims(claims))
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	for hk, hv := range header {
		if hv == nil {
			delete(tok.Header, hk)
		} else {
			tok.Header[hk] = hv
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatalf("signing %s: %v", alg, err)
	}
	return s
}

// signRawECDSA signs header and claims by hand with an ECDSA key, the hash
// of header's alg and r and s of that alg's size, which the library refuses
// to do when key is not on the alg's curve (r and s of a larger curve keep
// their size).
func signRawECDSA(header, claims map[string]any, key *ecdsa.PrivateKey) string {
	signing := b64(mustJSON(header)) + "." + b64(mustJSON(claims))
	var sum []byte
	size := 32
	if header["alg"] == "ES384" {
		h := sha512.Sum384([]byte(signing))
		sum, size = h[:], 48
	} else {
		h := sha256.Sum256([]byte(signing))
		sum = h[:]
	}
	r, s, err := ecdsa.Sign(rand.Reader, key, sum)
	if err != nil {
		panic(err)
	}
	if curveSize := (key.Curve.Params().BitSize + 7) / 8; curveSize > size {
		size = curveSize // cannot fit the alg's size: the length alone is then wrong
	}
	sig := make([]byte, 2*size)
	r.FillBytes(sig[:size])
	s.FillBytes(sig[size:])
	return signing + "." + b64(sig)
}

// newOIDCEnv is a Service that accepts the tokens of idp.
func newOIDCEnv(t testing.TB, idp *testIdP, mutate ...func(*OIDCConfig)) *env {
	t.Helper()
	return newEnv(t, func(c *Config) {
		c.OIDC = OIDCConfig{Issuer: idp.URL(), Audience: testAudience, HTTPTimeout: 5 * time.Second}
		for _, m := range mutate {
			m(&c.OIDC)
		}
	})
}

// newOIDCService calls New with oc and fresh stores, for tests of New's errors.
func newOIDCService(t testing.TB, oc OIDCConfig) (*Service, error) {
	t.Helper()
	ks, err := NewKeySet(testKey)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Keys: ks, Argon2: fastArgon, Now: newClock().Now, OIDC: oc},
		memory.NewUserStore(), memory.NewSessionStore(), memory.NewTicketStore())
	if svc != nil {
		t.Cleanup(svc.Close)
	}
	return svc, err
}

// tokenSentinels are the only causes a refused token may carry: fixed texts
// that hold no part of any token.
var tokenSentinels = []error{errTokenMalformed, errTokenSignature, errTokenClaims, errTokenExpired}

// checkRefusal fails unless err is a *tollgate.Error of code want whose
// cause is one of tokenSentinels, and whose text holds neither the token
// nor any of its parts.
func checkRefusal(t testing.TB, err error, want tollgate.Code, tok string) {
	t.Helper()
	wantCode(t, err, want)
	te := err.(*tollgate.Error)
	known := false
	for _, s := range tokenSentinels {
		if te.Err == s {
			known = true
		}
	}
	if !known {
		t.Errorf("cause %v is not one of the fixed token errors", te.Err)
	}
	text := err.Error()
	if tok != "" && strings.Contains(text, tok) {
		t.Fatalf("error text contains the token")
	}
	for _, part := range strings.Split(tok, ".") {
		if len(part) >= 8 && strings.Contains(text, part) {
			t.Fatalf("error text %q contains a part of the token", text)
		}
	}
}

// TestOIDCVerify: the provider's tokens are accepted only with a pinned
// asymmetric algorithm, a key of the provider's JWKS that matches it, and
// valid iss, aud, exp, nbf, iat and sub; every refusal is unauthenticated
// (token_expired when expiry is the only fault) and says nothing of the
// token.
func TestOIDCVerify(t *testing.T) {
	t.Parallel()
	testKeys(t)
	kRSA := idpKey{kid: "rsa1", alg: "RS256", priv: rsaKeyA}
	kRSAAny := idpKey{kid: "rsa-any", priv: rsaKeyB} // no alg: any RSA algorithm
	kEC := idpKey{kid: "ec256", alg: "ES256", priv: ecKey256}
	kEC384 := idpKey{kid: "ec384", alg: "ES384", priv: ecKey384}
	kEC384Any := idpKey{kid: "ec384-any", priv: ecKey384} // no alg: only its curve decides
	kEC256Any := idpKey{kid: "ec256-any", priv: ecKey256}
	kEd := idpKey{kid: "ed1", alg: "EdDSA", priv: edKey}
	kWeak := idpKey{kid: "rsa-weak", priv: rsaKeyWeak}
	hmacSecret := []byte("an-oct-key-in-the-providers-jwks")
	idp := newTestIdP(t, kRSA, kRSAAny, kEC, kEC384, kEC384Any, kEC256Any, kEd, kWeak)
	idp.extra = []any{map[string]any{"kty": "oct", "kid": "hmac", "k": b64(hmacSecret), "alg": "HS256"}}

	// Key locations an attacker puts in the header: never fetched.
	var attackerHits atomic.Int32
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attackerHits.Add(1)
		w.Write(mustJSON(map[string]any{"keys": []any{jwkOf(idpKey{kid: "rsa1", alg: "RS256", priv: rsaKeyOther})}}))
	}))
	defer attacker.Close()

	e := newOIDCEnv(t, idp)
	now := e.clock.Now()
	iss := idp.URL()
	valid := map[string]any{
		"iss": iss, "aud": testAudience, "sub": "248289761001", "preferred_username": "ada",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": "tok-1",
	}
	with := func(kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range valid {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(out, kv[i].(string))
			} else {
				out[kv[i].(string)] = kv[i+1]
			}
		}
		return out
	}
	sign := func(k idpKey, alg string, claims map[string]any) string { return signJWT(t, k, alg, nil, claims) }
	signH := func(k idpKey, alg string, header map[string]any) string { return signJWT(t, k, alg, header, valid) }

	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKeyA.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	rsaHeader := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "rsa1"}
	noneTok := func(alg string) string {
		return b64(mustJSON(map[string]any{"alg": alg, "kid": "rsa1"})) + "." + b64(mustJSON(valid)) + "."
	}
	good := sign(kRSA, "RS256", valid)

	tests := []struct {
		name     string
		tok      string
		want     tollgate.Code
		wantName string // for accepted tokens; "" = "ada"
		wantSub  string // for accepted tokens; "" = valid's sub
	}{
		{name: "RS256", tok: good},
		{name: "ES256", tok: sign(kEC, "ES256", valid)},
		{name: "ES384", tok: sign(kEC384, "ES384", valid)},
		{name: "EdDSA", tok: sign(kEd, "EdDSA", valid)},
		{name: "PS256 with a JWK without alg", tok: sign(kRSAAny, "PS256", valid)},
		{name: "RS512 with a JWK without alg", tok: sign(kRSAAny, "RS512", valid)},
		{name: "no kid: the keys of the alg's type are tried", tok: signH(kRSA, "RS256", map[string]any{"kid": nil})},
		{name: "typ at+jwt (RFC 9068)", tok: signH(kRSA, "RS256", map[string]any{"typ": "at+jwt"})},
		{name: "audience list containing ours", tok: sign(kRSA, "RS256", with("aud", []string{"other", testAudience}))},
		{name: "expired within leeway", tok: sign(kRSA, "RS256", with("exp", now.Add(-3*time.Second).Unix()))},
		{name: "name claim missing: sub", tok: sign(kRSA, "RS256", with("preferred_username", nil)), wantName: "248289761001"},
		{name: "name claim not a string: sub", tok: sign(kRSA, "RS256", with("preferred_username", 7)), wantName: "248289761001"},
		{name: "name claim with a control character: sub", tok: sign(kRSA, "RS256", with("preferred_username", "ada\nadmin")), wantName: "248289761001"},
		{name: "name claim with a bidi override: sub", tok: sign(kRSA, "RS256", with("preferred_username", "ada\u202egnp.exe")), wantName: "248289761001"},
		{name: "long name cut to 64 bytes", tok: sign(kRSA, "RS256", with("preferred_username", strings.Repeat("é", 40))), wantName: strings.Repeat("é", 32)},
		{name: "unicode sub", tok: sign(kRSA, "RS256", with("sub", "ünïcode|42")), wantSub: "ünïcode|42"},

		{name: "wrong audience", tok: sign(kRSA, "RS256", with("aud", "someone-else")), want: tollgate.CodeUnauthenticated},
		{name: "tollgate's own audience", tok: sign(kRSA, "RS256", with("aud", "tollgate")), want: tollgate.CodeUnauthenticated},
		{name: "audience missing", tok: sign(kRSA, "RS256", with("aud", nil)), want: tollgate.CodeUnauthenticated},
		{name: "wrong issuer", tok: sign(kRSA, "RS256", with("iss", "https://evil.example.net")), want: tollgate.CodeUnauthenticated},
		{name: "issuer with a trailing slash", tok: sign(kRSA, "RS256", with("iss", iss+"/")), want: tollgate.CodeUnauthenticated},
		{name: "issuer tollgate", tok: sign(kRSA, "RS256", with("iss", "tollgate")), want: tollgate.CodeUnauthenticated},
		{name: "issuer missing", tok: sign(kRSA, "RS256", with("iss", nil)), want: tollgate.CodeUnauthenticated},
		{name: "expired", tok: sign(kRSA, "RS256", with("exp", now.Add(-time.Minute).Unix())), want: tollgate.CodeTokenExpired},
		{name: "expired and wrong audience", tok: sign(kRSA, "RS256", with("exp", now.Add(-time.Minute).Unix(), "aud", "x")), want: tollgate.CodeUnauthenticated},
		{name: "expired and forged", tok: sign(idpKey{kid: "rsa1", priv: rsaKeyOther}, "RS256", with("exp", now.Add(-time.Minute).Unix())), want: tollgate.CodeUnauthenticated},
		{name: "exp missing", tok: sign(kRSA, "RS256", with("exp", nil)), want: tollgate.CodeUnauthenticated},
		{name: "exp a string", tok: sign(kRSA, "RS256", with("exp", "tomorrow")), want: tollgate.CodeUnauthenticated},
		{name: "nbf in the future", tok: sign(kRSA, "RS256", with("nbf", now.Add(time.Minute).Unix())), want: tollgate.CodeUnauthenticated},
		{name: "iat in the future", tok: sign(kRSA, "RS256", with("iat", now.Add(time.Minute).Unix())), want: tollgate.CodeUnauthenticated},
		{name: "sub missing", tok: sign(kRSA, "RS256", with("sub", nil)), want: tollgate.CodeUnauthenticated},
		{name: "sub empty", tok: sign(kRSA, "RS256", with("sub", "")), want: tollgate.CodeUnauthenticated},
		{name: "sub too long", tok: sign(kRSA, "RS256", with("sub", strings.Repeat("s", 256))), want: tollgate.CodeUnauthenticated},
		{name: "sub with a control character", tok: sign(kRSA, "RS256", with("sub", "a\x00b")), want: tollgate.CodeUnauthenticated},

		{name: "alg none", tok: noneTok("none"), want: tollgate.CodeUnauthenticated},
		{name: "alg None", tok: noneTok("None"), want: tollgate.CodeUnauthenticated},
		{name: "alg missing", tok: b64(mustJSON(map[string]any{"kid": "rsa1"})) + "." + b64(mustJSON(valid)) + ".", want: tollgate.CodeUnauthenticated},
		{name: "HS256 signed with the RSA public key PEM (confusion)", tok: hsToken(rsaHeader, valid, pubPEM), want: tollgate.CodeUnauthenticated},
		{name: "HS256 signed with the RSA public key DER (confusion)", tok: hsToken(rsaHeader, valid, pubDER), want: tollgate.CodeUnauthenticated},
		{name: "HS256 signed with the RSA modulus (confusion)", tok: hsToken(rsaHeader, valid, rsaKeyA.N.Bytes()), want: tollgate.CodeUnauthenticated},
		{name: "HS256 with an oct key of the provider's JWKS", tok: hsToken(map[string]any{"alg": "HS256", "kid": "hmac"}, valid, hmacSecret), want: tollgate.CodeUnauthenticated},
		{name: "HS512 signed with the RSA public key PEM", tok: func() string {
			tk := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims(valid))
			tk.Header["kid"] = "rsa1"
			s, _ := tk.SignedString(pubPEM)
			return s
		}(), want: tollgate.CodeUnauthenticated},
		{name: "RS384 with a JWK whose alg is RS256", tok: sign(kRSA, "RS384", valid), want: tollgate.CodeUnauthenticated},
		{name: "PS256 with a JWK whose alg is RS256", tok: sign(kRSA, "PS256", valid), want: tollgate.CodeUnauthenticated},
		{name: "ES256 token naming an RSA key", tok: sign(idpKey{kid: "rsa-any", priv: ecKey256}, "ES256", valid), want: tollgate.CodeUnauthenticated},
		{name: "RS256 token naming an EC key", tok: sign(idpKey{kid: "ec256", priv: rsaKeyA}, "RS256", valid), want: tollgate.CodeUnauthenticated},
		{name: "EdDSA token naming an RSA key", tok: sign(idpKey{kid: "rsa-any", priv: edKey}, "EdDSA", valid), want: tollgate.CodeUnauthenticated},
		{name: "control: hand-signed ES384", tok: signRawECDSA(map[string]any{"alg": "ES384", "kid": "ec384-any"}, valid, ecKey384)},
		{name: "control: hand-signed ES256", tok: signRawECDSA(map[string]any{"alg": "ES256", "kid": "ec256-any"}, valid, ecKey256)},
		{name: "ES384 header with a P-256 key (curve mismatch)", tok: signRawECDSA(map[string]any{"alg": "ES384", "kid": "ec256-any"}, valid, ecKey256), want: tollgate.CodeUnauthenticated},
		{name: "ES256 header with a P-384 key", tok: signRawECDSA(map[string]any{"alg": "ES256", "kid": "ec384-any"}, valid, ecKey384), want: tollgate.CodeUnauthenticated},
		{name: "RSA key under 2048 bits", tok: sign(kWeak, "RS256", valid), want: tollgate.CodeUnauthenticated},
		{name: "signed by another key under a known kid", tok: sign(idpKey{kid: "rsa1", priv: rsaKeyOther}, "RS256", valid), want: tollgate.CodeUnauthenticated},
		{name: "no kid, signed by a key the JWKS lacks", tok: signRawECDSA(map[string]any{"alg": "ES256"}, valid, ecKey384), want: tollgate.CodeUnauthenticated},
		{name: "jku to an attacker JWKS", tok: signJWT(t, idpKey{kid: "rsa1", priv: rsaKeyOther}, "RS256", map[string]any{"jku": attacker.URL}, valid), want: tollgate.CodeUnauthenticated},
		{name: "x5u to an attacker", tok: signJWT(t, idpKey{kid: "rsa1", priv: rsaKeyOther}, "RS256", map[string]any{"x5u": attacker.URL}, valid), want: tollgate.CodeUnauthenticated},
		{name: "embedded jwk", tok: signJWT(t, idpKey{priv: rsaKeyOther}, "RS256", map[string]any{"jwk": jwkOf(idpKey{priv: rsaKeyOther})}, valid), want: tollgate.CodeUnauthenticated},
		{name: "embedded jwk with a known kid", tok: signJWT(t, idpKey{kid: "rsa1", priv: rsaKeyOther}, "RS256", map[string]any{"jwk": jwkOf(idpKey{kid: "rsa1", priv: rsaKeyOther})}, valid), want: tollgate.CodeUnauthenticated},
		{name: "crit header", tok: signH(kRSA, "RS256", map[string]any{"crit": []string{"exp"}}), want: tollgate.CodeUnauthenticated},
		{name: "kid a number", tok: signH(kRSA, "RS256", map[string]any{"kid": 1}), want: tollgate.CodeUnauthenticated},
		{name: "non-canonical base64", tok: good[:len(good)-1] + string(good[len(good)-1]^1), want: tollgate.CodeUnauthenticated},
		{name: "signature of another token", tok: strings.Join(strings.Split(good, ".")[:2], ".") + "." + strings.Split(sign(kRSA, "RS256", with("sub", "x")), ".")[2], want: tollgate.CodeUnauthenticated},
		{name: "two segments", tok: strings.Join(strings.Split(good, ".")[:2], "."), want: tollgate.CodeUnauthenticated},
		{name: "four segments", tok: good + ".x", want: tollgate.CodeUnauthenticated},
		{name: "huge", tok: good + strings.Repeat("A", maxTokenLen), want: tollgate.CodeUnauthenticated},
		{name: "garbage", tok: "not a jwt", want: tollgate.CodeUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Through the Service, and straight to the provider's verifier:
			// neither path may accept what the other refuses.
			p, err := e.svc.VerifyAccess(context.Background(), tollgate.Secret(tc.tok))
			p2, err2 := e.svc.oidc.verify(context.Background(), tc.tok)
			if tc.want != "" {
				checkRefusal(t, err, tc.want, tc.tok)
				checkRefusal(t, err2, tc.want, tc.tok)
				if p != (tollgate.Principal{}) || p2 != (tollgate.Principal{}) {
					t.Errorf("a refused token returned a principal: %+v", p)
				}
				return
			}
			if err != nil || err2 != nil {
				t.Fatalf("refused: %v / %v", err, err2)
			}
			if p != p2 {
				t.Fatalf("the two paths disagree: %+v vs %+v", p, p2)
			}
			sub, name := tc.wantSub, tc.wantName
			if sub == "" {
				sub = valid["sub"].(string)
			}
			if name == "" {
				name = "ada"
			}
			exp := claimsOf(t, tc.tok)["exp"].(float64)
			if p.UserID != oidcUserID(iss, sub) || p.Name != name || p.Issuer != iss ||
				p.Credential != tollgate.CredentialBearer || !p.ExpiresAt.Equal(time.Unix(int64(exp), 0)) ||
				p.SessionID != "" || p.Admin || p.Anonymous || p.TokenID != "tok-1" {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
	t.Cleanup(func() {
		if n := attackerHits.Load(); n != 0 {
			t.Errorf("a header-supplied key location was fetched %d times", n)
		}
		if strings.Contains(e.logs.String(), good) {
			t.Errorf("a token reached the log")
		}
	})
}

// TestOIDCUserID: ids are stable, bounded, distinct per (iss, sub) and never
// collide with local or anonymous ids.
func TestOIDCUserID(t *testing.T) {
	t.Parallel()
	a := oidcUserID("https://id.example.com", "42")
	if a != oidcUserID("https://id.example.com", "42") {
		t.Fatal("not stable")
	}
	if !strings.HasPrefix(a, OIDCUserIDPrefix) || len(a) != len(OIDCUserIDPrefix)+32 {
		t.Fatalf("id %q has the wrong shape", a)
	}
	distinct := map[string]bool{a: true}
	for _, p := range [][2]string{
		{"https://id.example.com", "43"}, {"https://id.example.com/", "42"}, {"https://other.example.com", "42"},
		{"a", "bc"}, {"ab", "c"}, {"", "abc"}, {"abc", ""},
	} {
		id := oidcUserID(p[0], p[1])
		if distinct[id] {
			t.Fatalf("id of %q repeats another", p)
		}
		distinct[id] = true
	}
	// A local id is 32 hex characters, an anonymous one starts with anon-.
	if local := randomHex(16); strings.Contains(local, ":") || strings.HasPrefix(local, OIDCUserIDPrefix) {
		t.Fatal("local ids can look like provider ids")
	}
}

// TestOIDCUnknownKIDRefetchesOnce: a token naming a kid the JWKS lacks
// causes one refetch, then fails; another within the rate limit fails at once
// without a fetch.
func TestOIDCUnknownKIDRefetchesOnce(t *testing.T) {
	t.Parallel()
	testKeys(t)
	idp := newTestIdP(t, idpKey{kid: "rsa1", alg: "RS256", priv: rsaKeyA})
	e := newOIDCEnv(t, idp)
	if n := idp.jwksHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times at start, want 1", n)
	}
	now := e.clock.Now()
	claims := map[string]any{"iss": idp.URL(), "aud": testAudience, "sub": "u", "exp": now.Add(time.Minute).Unix()}
	tok := signJWT(t, idpKey{kid: "not-yet-published", priv: rsaKeyOther}, "RS256", nil, claims)
	_, err := e.svc.VerifyAccess(context.Background(), tollgate.Secret(tok))
	checkRefusal(t, err, tollgate.CodeUnauthenticated, tok)
	if n := idp.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times after an unknown kid, want 2", n)
	}
	start := time.Now()
	tok2 := signJWT(t, idpKey{kid: "another-unknown", priv: rsaKeyOther}, "RS256", nil, claims)
	_, err = e.svc.VerifyAccess(context.Background(), tollgate.Secret(tok2))
	checkRefusal(t, err, tollgate.CodeUnauthenticated, tok2)
	if n := idp.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times after a second unknown kid, want still 2 (rate-limited)", n)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("a rate-limited unknown kid waited %s instead of failing at once", d)
	}
}

// TestOIDCKeyRotation: a key the provider rotates in is picked up by the
// refresh an unknown kid causes, and the key it withdrew stops verifying.
func TestOIDCKeyRotation(t *testing.T) {
	t.Parallel()
	testKeys(t)
	oldKey := idpKey{kid: "2025", alg: "RS256", priv: rsaKeyA}
	newKey := idpKey{kid: "2026", alg: "ES256", priv: ecKey256}
	idp := newTestIdP(t, oldKey)
	e := newOIDCEnv(t, idp)
	now := e.clock.Now()
	claims := map[string]any{"iss": idp.URL(), "aud": testAudience, "sub": "u", "exp": now.Add(time.Minute).Unix()}
	oldTok := signJWT(t, oldKey, "RS256", nil, claims)
	if _, err := e.svc.VerifyAccess(context.Background(), tollgate.Secret(oldTok)); err != nil {
		t.Fatalf("old key before rotation: %v", err)
	}
	idp.setKeys(newKey)
	newTok := signJWT(t, newKey, "ES256", nil, claims)
	p, err := e.svc.VerifyAccess(context.Background(), tollgate.Secret(newTok))
	if err != nil {
		t.Fatalf("new key after rotation: %v", err)
	}
	if p.UserID != oidcUserID(idp.URL(), "u") {
		t.Fatalf("principal = %+v", p)
	}
	if n := idp.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
	_, err = e.svc.VerifyAccess(context.Background(), tollgate.Secret(oldTok))
	checkRefusal(t, err, tollgate.CodeUnauthenticated, oldTok)
}

// TestOIDCJWKSURLWithoutIssuer: with --jwks-url alone there is no discovery
// and any iss is accepted (it still names the user); with an issuer too, iss
// is checked.
func TestOIDCJWKSURLWithoutIssuer(t *testing.T) {
	t.Parallel()
	testKeys(t)
	k := idpKey{kid: "rsa1", alg: "RS256", priv: rsaKeyA}
	idp := newTestIdP(t, k)
	open := newOIDCEnv(t, idp, func(c *OIDCConfig) { c.Issuer, c.JWKSURL = "", idp.URL()+"/jwks" })
	pinned := newOIDCEnv(t, idp, func(c *OIDCConfig) { c.JWKSURL = idp.URL() + "/jwks" })
	if n := idp.discoveryHits.Load(); n != 0 {
		t.Fatalf("discovery fetched %d times with --jwks-url", n)
	}
	now := open.clock.Now()
	claims := map[string]any{"iss": "https://tenant-7.example.com", "aud": testAudience, "sub": "u", "exp": now.Add(time.Minute).Unix()}
	tok := signJWT(t, k, "RS256", nil, claims)
	p, err := open.svc.VerifyAccess(context.Background(), tollgate.Secret(tok))
	if err != nil {
		t.Fatal(err)
	}
	if p.Issuer != "https://tenant-7.example.com" || p.UserID != oidcUserID("https://tenant-7.example.com", "u") {
		t.Fatalf("principal = %+v", p)
	}
	_, err = pinned.svc.VerifyAccess(context.Background(), tollgate.Secret(tok))
	checkRefusal(t, err, tollgate.CodeUnauthenticated, tok)

	delete(claims, "iss")
	noIss := signJWT(t, k, "RS256", nil, claims)
	_, err = open.svc.VerifyAccess(context.Background(), tollgate.Secret(noIss))
	checkRefusal(t, err, tollgate.CodeUnauthenticated, noIss)
}

// TestOIDCNameClaim: --oidc-name-claim selects the claim.
func TestOIDCNameClaim(t *testing.T) {
	t.Parallel()
	testKeys(t)
	k := idpKey{kid: "ed", alg: "EdDSA", priv: edKey}
	idp := newTestIdP(t, k)
	e := newOIDCEnv(t, idp, func(c *OIDCConfig) { c.NameClaim = "nickname" })
	now := e.clock.Now()
	tok := signJWT(t, k, "EdDSA", nil, map[string]any{"iss": idp.URL(), "aud": testAudience, "sub": "u",
		"exp": now.Add(time.Minute).Unix(), "preferred_username": "ada", "nickname": "Countess"})
	p, err := e.svc.VerifyAccess(context.Background(), tollgate.Secret(tok))
	if err != nil || p.Name != "Countess" {
		t.Fatalf("principal = %+v, err %v", p, err)
	}
}

// TestOIDCNewErrors: New refuses, with an error naming the setting and the
// cause, a provider it cannot trust or reach, and never waits longer than
// HTTPTimeout.
func TestOIDCNewErrors(t *testing.T) {
	t.Parallel()
	testKeys(t)
	k := idpKey{kid: "rsa1", alg: "RS256", priv: rsaKeyA}

	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()

	hangDone := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hangDone:
		}
	}))
	t.Cleanup(func() { close(hangDone); hang.Close() })

	tests := []struct {
		name  string
		setup func(t *testing.T) OIDCConfig
		want  []string // substrings of the error
	}{
		{"discovery names another issuer", func(t *testing.T) OIDCConfig {
			idp := newTestIdP(t, k)
			idp.issuer = "https://login.example.com"
			return OIDCConfig{Issuer: idp.URL(), Audience: testAudience}
		}, []string{"--oidc-issuer", "https://login.example.com", "must be equal"}},
		{"configured issuer with a trailing slash the document lacks", func(t *testing.T) OIDCConfig {
			idp := newTestIdP(t, k)
			return OIDCConfig{Issuer: idp.URL() + "/", Audience: testAudience}
		}, []string{"--oidc-issuer", "must be equal"}},
		{"IdP down at start", func(t *testing.T) OIDCConfig {
			return OIDCConfig{Issuer: downURL, Audience: testAudience}
		}, []string{"--oidc-issuer " + downURL, "discovery", "refused"}},
		{"JWKS URL down at start", func(t *testing.T) OIDCConfig {
			return OIDCConfig{JWKSURL: downURL + "/jwks", Audience: testAudience}
		}, []string{"keys", downURL + "/jwks", "refused"}},
		{"JWKS answers 500", func(t *testing.T) OIDCConfig {
			idp := newTestIdP(t, k)
			idp.jwksStatus = http.StatusInternalServerError
			return OIDCConfig{Issuer: idp.URL(), Audience: testAudience}
		}, []string{"keys", "500"}},
		{"JWKS without a usable key", func(t *testing.T) OIDCConfig {
			idp := newTestIdP(t)
			idp.extra = []any{map[string]any{"kty": "oct", "kid": "h", "k": b64([]byte("0123456789abcdef0123456789abcdef"))}}
			return OIDCConfig{Issuer: idp.URL(), Audience: testAudience}
		}, []string{"no usable signing key"}},
		{"JWKS over the size bound", func(t *testing.T) OIDCConfig {
			idp := newTestIdP(t, k)
			idp.jwksBody = []byte(`{"keys":[],"pad":"` + strings.Repeat("x", maxOIDCResponseBytes) + `"}`)
			return OIDCConfig{Issuer: idp.URL(), Audience: testAudience}
		}, []string{"larger than"}},
		{"discovered jwks_uri over plain http to another host", func(t *testing.T) OIDCConfig {
			idp := newTestIdP(t, k)
			idp.jwksURI = "http://keys.example.com/jwks"
			return OIDCConfig{Issuer: idp.URL(), Audience: testAudience}
		}, []string{"jwks_uri", "https"}},
		{"IdP hangs: bounded by HTTPTimeout", func(t *testing.T) OIDCConfig {
			return OIDCConfig{Issuer: hang.URL, Audience: testAudience, HTTPTimeout: 200 * time.Millisecond}
		}, []string{"--oidc-issuer", "discovery"}},
		{"JWKS URL with a secret in its query", func(t *testing.T) OIDCConfig {
			return OIDCConfig{JWKSURL: downURL + "/jwks?api_key=s3cr3t-value", Audience: testAudience}
		}, []string{"keys", "refused"}},
		{"no audience", func(t *testing.T) OIDCConfig {
			return OIDCConfig{Issuer: downURL}
		}, []string{"--oidc-audience"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			svc, err := newOIDCService(t, tc.setup(t))
			if err == nil {
				t.Fatalf("New accepted it: %v", svc)
			}
			t.Log(err)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("New took %s", d)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t-value") {
				t.Errorf("error %q holds the URL's query", err)
			}
		})
	}
}

// TestOIDCHandshake: a provider token in Authorization: Bearer opens a
// socket; a bad one is refused 401 and audited without its value; a ticket
// minted by a provider principal opens a socket as that principal.
func TestOIDCHandshake(t *testing.T) {
	t.Parallel()
	testKeys(t)
	k := idpKey{kid: "rsa1", alg: "RS256", priv: rsaKeyA}
	idp := newTestIdP(t, k)
	e := newOIDCEnv(t, idp)
	now := e.clock.Now()
	exp := now.Add(5 * time.Minute).Truncate(time.Second)
	tok := signJWT(t, k, "RS256", nil, map[string]any{"iss": idp.URL(), "aud": testAudience, "sub": "u-1",
		"preferred_username": "ada", "iat": now.Unix(), "exp": exp.Unix()})
	ctx := context.Background()

	r := wsRequest("/ws", http.Header{"Authorization": {"Bearer " + tok}, "Origin": {testOrigin}})
	h, err := e.svc.AuthenticateHandshake(ctx, r, browser(testOrigin))
	if err != nil {
		t.Fatal(err)
	}
	p := h.Principal
	if p.Credential != tollgate.CredentialBearer || p.UserID != oidcUserID(idp.URL(), "u-1") || p.Name != "ada" ||
		!p.ExpiresAt.Equal(exp) || p.Issuer != idp.URL() || p.SessionID != "" {
		t.Fatalf("principal = %+v", p)
	}

	// The same token from a REST call, then a ticket for the browser path.
	rp, err := e.svc.AuthenticateRequest(ctx, wsRequest("/api/auth/ws-ticket", http.Header{"Authorization": {"Bearer " + tok}}), tollgate.ClientInfo{IP: "198.51.100.7"}, true)
	if err != nil || rp.UserID != p.UserID {
		t.Fatalf("AuthenticateRequest = %+v, %v", rp, err)
	}
	ticket, ticketExp, err := e.svc.IssueTicket(ctx, rp, browser(testOrigin))
	if err != nil || ticketExp.After(exp) {
		t.Fatalf("IssueTicket: %v (expires %v)", err, ticketExp)
	}
	h, err = e.svc.AuthenticateHandshake(ctx, wsRequest("/ws?ticket="+ticket.Reveal(), nil), browser(testOrigin))
	if err != nil || h.Principal.UserID != p.UserID || !h.Principal.ExpiresAt.Equal(exp) || h.Principal.Credential != tollgate.CredentialTicket {
		t.Fatalf("ticket handshake = %+v, %v", h.Principal, err)
	}

	// Logout has nothing to revoke for a provider principal.
	if err := e.svc.Logout(ctx, p, tollgate.ClientInfo{}); err != nil {
		t.Fatal(err)
	}

	bad := signJWT(t, k, "RS256", nil, map[string]any{"iss": idp.URL(), "aud": "other", "sub": "u-1", "exp": exp.Unix()})
	_, err = e.svc.AuthenticateHandshake(ctx, wsRequest("/ws", http.Header{"Authorization": {"Bearer " + bad}}), tollgate.ClientInfo{IP: "198.51.100.7"})
	checkRefusal(t, err, tollgate.CodeUnauthenticated, bad)
	ev, ok := e.audit.last(tollgate.AuditHandshakeRejected)
	if !ok || ev.Credential != tollgate.CredentialBearer || ev.Reason != string(tollgate.CodeUnauthenticated) {
		t.Fatalf("audit = %+v", ev)
	}

	e.clock.Advance(5*time.Minute + DefaultLeeway + time.Second)
	_, err = e.svc.AuthenticateHandshake(ctx, wsRequest("/ws", http.Header{"Authorization": {"Bearer " + tok}}), tollgate.ClientInfo{IP: "198.51.100.7"})
	checkRefusal(t, err, tollgate.CodeTokenExpired, tok)

	logs := e.logs.String()
	for _, s := range []string{tok, bad, ticket.Reveal()} {
		if strings.Contains(logs, s) {
			t.Fatal("a credential reached the log")
		}
	}
	e.audit.mu.Lock()
	defer e.audit.mu.Unlock()
	if b := string(mustJSON(e.audit.events)); strings.Contains(b, tok) || strings.Contains(b, bad) {
		t.Fatal("a token reached the audit log")
	}
}

// TestOIDCOwnTokensStillWork: with a provider configured, tollgate's own
// tokens keep their path, session check included.
func TestOIDCOwnTokensStillWork(t *testing.T) {
	t.Parallel()
	testKeys(t)
	idp := newTestIdP(t, idpKey{kid: "rsa1", alg: "RS256", priv: rsaKeyA})
	e := newOIDCEnv(t, idp)
	tok := e.login(t, "alice")
	p := e.principal(t, tok)
	if p.Issuer != "" || p.SessionID != tok.SessionID || strings.HasPrefix(p.UserID, OIDCUserIDPrefix) {
		t.Fatalf("principal = %+v", p)
	}
	if err := e.svc.Logout(context.Background(), p, tollgate.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.VerifyAccess(context.Background(), tok.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
}

// TestLimitedBody: bodies are cut at the bound with an error, never
// silently.
func TestLimitedBody(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush() // chunked: no Content-Length to refuse early
		w.Write([]byte(strings.Repeat("x", maxOIDCResponseBytes+1)))
	}))
	defer srv.Close()
	c := boundedClient(nil, 5*time.Second)
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 0, maxOIDCResponseBytes)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			if !errors.Is(err, errOIDCResponseTooLarge) {
				t.Fatalf("read error %v, want the size error", err)
			}
			break
		}
	}
	if len(b) != maxOIDCResponseBytes {
		t.Fatalf("read %d bytes", len(b))
	}
}

// FuzzOIDCVerify: the provider's verifier never panics, accepts only
// well-formed principals, and refuses with a fixed cause that holds no part
// of the input.
func FuzzOIDCVerify(f *testing.F) {
	testKeys(f)
	kRSA := idpKey{kid: "rsa1", alg: "RS256", priv: rsaKeyA}
	kEC := idpKey{kid: "ec256", alg: "ES256", priv: ecKey256}
	kEd := idpKey{kid: "ed1", priv: edKey}
	idp := newTestIdP(f, kRSA, kEC, kEd)
	clk := newClock()
	v, err := newOIDCVerifier(OIDCConfig{Issuer: idp.URL(), Audience: testAudience, HTTPTimeout: 2 * time.Second}, clk.Now, DefaultLeeway, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(v.close)
	now := clk.Now()
	claims := map[string]any{"iss": idp.URL(), "aud": testAudience, "sub": "u", "preferred_username": "ada",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
	f.Add(signJWT(f, kRSA, "RS256", nil, claims))
	f.Add(signJWT(f, kEC, "ES256", nil, claims))
	f.Add(signJWT(f, kEd, "EdDSA", nil, claims))
	f.Add(signJWT(f, kRSA, "RS256", map[string]any{"kid": nil}, claims))
	f.Add(signJWT(f, kRSA, "RS256", map[string]any{"crit": []string{"x"}}, claims))
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKeyA.PublicKey)
	f.Add(hsToken(map[string]any{"alg": "HS256", "kid": "rsa1"}, claims, pubDER))
	f.Add(b64(mustJSON(map[string]any{"alg": "none"})) + "." + b64(mustJSON(claims)) + ".")
	f.Add(b64([]byte(`{"alg":"RS256","kid":{"a":1}}`)) + "." + b64([]byte(`{"exp":1e400,"sub":[1]}`)) + ".AA")
	f.Add(b64([]byte(`{"alg":"ES256","kid":"ec256"}`)) + "." + b64([]byte(`{"aud":{},"iss":null}`)) + ".")
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.", strings.Repeat(".", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.verify(context.Background(), tok)
		if err == nil {
			if !strings.HasPrefix(p.UserID, OIDCUserIDPrefix) || p.Name == "" || len(p.Name) > maxNameLen ||
				p.ExpiresAt.IsZero() || p.Issuer != idp.URL() || p.Credential != tollgate.CredentialBearer {
				t.Fatalf("accepted with principal %+v", p)
			}
			return
		}
		if p != (tollgate.Principal{}) {
			t.Fatalf("refused with principal %+v", p)
		}
		code := tollgate.ErrorCode(err)
		if code != tollgate.CodeUnauthenticated && code != tollgate.CodeTokenExpired {
			t.Fatalf("code %q", code)
		}
		te := err.(*tollgate.Error)
		for _, s := range tokenSentinels {
			if te.Err == s {
				return
			}
		}
		t.Fatalf("cause %v is not one of the fixed token errors", te.Err)
	})
}
