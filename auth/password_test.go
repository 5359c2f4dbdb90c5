package auth

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

func TestPasswordHashRoundTrip(t *testing.T) {
	t.Parallel()
	h, err := newHasher(Argon2{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enc, err := h.hash(ctx, "hunter2hunter2")
	if err != nil {
		t.Fatal(err)
	}
	// Documented defaults: m=19456 KiB, t=2, p=1, 16-byte salt, 32-byte hash.
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(enc) {
		t.Fatalf("not a PHC argon2id string with the default parameters: %s", enc)
	}
	if strings.Contains(enc, "hunter2") {
		t.Fatal("hash contains the password")
	}
	for pw, want := range map[tollgate.Secret]bool{"hunter2hunter2": true, "hunter2hunter3": false, "": false} {
		ok, err := h.verify(ctx, pw, enc)
		if err != nil || ok != want {
			t.Errorf("verify(%s) = %v, %v; want %v", pw, ok, err, want)
		}
	}
	enc2, _ := h.hash(ctx, "hunter2hunter2")
	if enc2 == enc {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestParsePHCRefusesBadHashes(t *testing.T) {
	t.Parallel()
	good := "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("good hash refused: %v", err)
	}
	for _, bad := range []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g", // 95 GiB
		"$argon2id$v=19$m=64,t=100000,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=1,p=255$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$t=1,m=64,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=1,p=1$!!$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaA", // 4-byte hash
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g$extra",
	} {
		if _, err := parsePHC(bad); err == nil {
			t.Errorf("parsePHC accepted %q", bad)
		}
	}
}

// TestHashSlotsBounded: with every slot taken, a hash waits only as long as
// its context and then fails unavailable, rather than allocating more memory.
func TestHashSlotsBounded(t *testing.T) {
	t.Parallel()
	h, err := newHasher(Argon2{Memory: 64, Time: 1, MaxConcurrent: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer h.release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = h.hash(ctx, "password1")
	wantCode(t, err, tollgate.CodeUnavailable)
}

// TestLoginUnknownUserCostsAVerify: an unknown user goes through the same
// hashing slot as a known one (the dummy hash), so with every slot taken both
// wait and fail the same way.
func TestLoginUnknownUserCostsAVerify(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.Argon2.MaxConcurrent = 1 })
	e.login(t, "alice")
	if err := e.svc.hasher.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer e.svc.hasher.release()
	for _, name := range []string{"alice", "nobody"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := e.svc.Login(ctx, name, "wrong-password", tollgate.ClientInfo{})
		cancel()
		wantCode(t, err, tollgate.CodeUnavailable)
	}
}
