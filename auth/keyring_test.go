package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-ws/tollgate"
)

// TestRotateKeyOldTokensVerifyUntilRetired is issue 5's key rotation check:
// a token signed before a rotation verifies after it, and is refused once its
// key has been retired for longer than keep (here shorter than the token's
// lifetime, so that retirement and not expiry refuses it).
func TestRotateKeyOldTokensVerifyUntilRetired(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	const keep = time.Minute
	e := newEnv(t)
	ctx := context.Background()

	ks0, err := LoadKeySet("", dir, e.clock.Now(), keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetKeys(ks0)
	old := e.login(t, "alice")
	if kid := headerOf(t, old.Access.Reveal())["kid"]; kid != ks0.CurrentKID() {
		t.Fatalf("signed with %v, want %s", kid, ks0.CurrentKID())
	}

	e.clock.Advance(10 * time.Second)
	kid1, err := RotateKey("", dir, e.clock.Now(), keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kid1 == ks0.CurrentKID() || len(kid1) != 8 {
		t.Fatalf("new kid %q (old %q)", kid1, ks0.CurrentKID())
	}
	// Until it reloads, the node still signs with the old key.
	if kid := headerOf(t, e.login(t, "alice").Access.Reveal())["kid"]; kid != ks0.CurrentKID() {
		t.Fatalf("before reload: signed with %v", kid)
	}
	ks1, err := LoadKeySet("", dir, e.clock.Now(), keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ks1.CurrentKID() != kid1 {
		t.Fatalf("loaded current %s, rotated to %s", ks1.CurrentKID(), kid1)
	}
	e.svc.SetKeys(ks1)
	if _, err := e.svc.VerifyAccess(ctx, old.Access); err != nil {
		t.Fatalf("token signed before the rotation refused after it: %v", err)
	}
	fresh := e.login(t, "alice")
	if kid := headerOf(t, fresh.Access.Reveal())["kid"]; kid != kid1 {
		t.Fatalf("after reload: signed with %v, want %s", kid, kid1)
	}
	// A node restarted on the same data dir does the same.
	restarted, err := New(Config{Keys: ks1, Argon2: fastArgon, Now: e.clock.Now}, e.users, e.sessions, e.tickets)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []tollgate.Tokens{old, fresh} {
		if _, err := restarted.VerifyAccess(ctx, tok.Access); err != nil {
			t.Fatalf("restarted node: %v", err)
		}
	}

	// Exactly keep after the rotation the old key still verifies.
	e.clock.Advance(keep)
	ks2, err := LoadKeySet("", dir, e.clock.Now(), keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ks2.lookup(ks0.CurrentKID()); !ok {
		t.Fatal("old key dropped before keep elapsed")
	}
	// One second later it is retired.
	e.clock.Advance(time.Second)
	ks3, err := LoadKeySet("", dir, e.clock.Now(), keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ks3.lookup(ks0.CurrentKID()); ok {
		t.Fatal("old key still verifies after keep elapsed")
	}
	e.svc.SetKeys(ks3)
	if !e.clock.Now().Before(old.AccessExpiresAt) {
		t.Fatal("test setup: the old token expired; retirement would not be what refuses it")
	}
	_, err = e.svc.VerifyAccess(ctx, old.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
	if _, err := e.svc.VerifyAccess(ctx, fresh.Access); err != nil {
		t.Fatalf("token of the current key refused: %v", err)
	}
}

func TestRotateKeyFileModesAndLayout(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ks0, err := LoadKeySet("", dir, now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	kid1, err := RotateKey("", dir, now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v; want 0700", st.Mode(), err)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		names = append(names, ent.Name())
		info, err := ent.Info()
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v %v; want 0600", ent.Name(), info.Mode(), err)
		}
	}
	want := []string{KeyFileName, RetiredKeysFileName, KeyLockFileName}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("data dir holds %v; want %v (no temporary files)", names, want)
	}
	retired, err := readRetiredKeys(filepath.Join(dir, RetiredKeysFileName))
	if err != nil || len(retired) != 1 || retired[0].kid != ks0.CurrentKID() || !retired[0].retired.Equal(now) {
		t.Fatalf("jwt.keys = %+v, %v", retired, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, RetiredKeysFileName))
	if !bytes.HasPrefix(raw, []byte("#")) || !bytes.Contains(raw, []byte(ks0.CurrentKID()+" 2026-11-25T12:00:00Z ")) {
		t.Fatalf("jwt.keys layout:\n%s", raw)
	}
	// The new jwt.key is a generated key file like LoadKey's.
	key, err := LoadKey("", dir, nil)
	if err != nil || KeyID(key) != kid1 || len(key) != 64 {
		t.Fatalf("jwt.key after rotation: kid %s, %d bytes, %v", KeyID(key), len(key), err)
	}
	if _, err := hex.DecodeString(string(key)); err != nil {
		t.Fatal("jwt.key is not hex")
	}

	// A key ring readable by others is refused, by load and by rotation,
	// and the rotation then changes nothing.
	os.Chmod(filepath.Join(dir, RetiredKeysFileName), 0o640)
	if _, err := LoadKeySet("", dir, now, time.Hour, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable jwt.keys loaded: %v", err)
	}
	if _, err := RotateKey("", dir, now, time.Hour, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable jwt.keys rotated: %v", err)
	}
	if k, _ := readKeyFileNoCheck(t, filepath.Join(dir, KeyFileName)); KeyID(k) != kid1 {
		t.Fatal("a refused rotation replaced jwt.key")
	}
}

// readKeyFileNoCheck reads a key file whatever its mode.
func readKeyFileNoCheck(t *testing.T, path string) ([]byte, error) {
	t.Helper()
	b, err := os.ReadFile(path)
	return bytes.TrimSpace(b), err
}

func TestRotateKeyDropsRetiredKeysAfterKeep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const keep = 90 * time.Second
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ks, err := LoadKeySet("", dir, t0, keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	kids := []string{ks.CurrentKID()}
	for i := range 3 {
		kid, err := RotateKey("", dir, t0.Add(time.Duration(i)*time.Minute), keep, nil)
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, kid)
	}
	// Rotations at t0, t0+1m, t0+2m retired kids[0], kids[1], kids[2]; at
	// the last one kids[0] (retired 2m ago > 90s) was dropped from the file.
	retired, err := readRetiredKeys(filepath.Join(dir, RetiredKeysFileName))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range retired {
		got = append(got, r.kid)
	}
	if !slices.Equal(got, kids[1:3]) {
		t.Fatalf("jwt.keys holds %v; want %v", got, kids[1:3])
	}
	// Loading at t0+3m: kids[1] (retired at t0+1m, 2m ago) is left out too.
	ks, err = LoadKeySet("", dir, t0.Add(3*time.Minute), keep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ks.CurrentKID() != kids[3] || len(ks.keys) != 2 {
		t.Fatalf("loaded %v", ks)
	}
	for kid, want := range map[string]bool{kids[0]: false, kids[1]: false, kids[2]: true, kids[3]: true} {
		if _, ok := ks.lookup(kid); ok != want {
			t.Errorf("key %s verifies: %v, want %v", kid, ok, want)
		}
	}
}

// TestRotateKeyConcurrent: concurrent rotations are serialized, so every key
// that was ever current is still in the ring afterwards.
func TestRotateKeyConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ks0, err := LoadKeySet("", dir, now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	kids := make([]string, n)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Go(func() {
			kid, err := RotateKey("", dir, now.Add(time.Duration(i)*time.Second), time.Hour, nil)
			if err != nil {
				t.Error(err)
			}
			kids[i] = kid
		})
	}
	wg.Wait()
	ks, err := LoadKeySet("", dir, now.Add(time.Minute), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{ks0.CurrentKID()}, kids...)
	slices.Sort(all)
	if len(slices.Compact(slices.Clone(all))) != n+1 {
		t.Fatalf("rotations returned repeated key ids: %v", kids)
	}
	if len(ks.keys) != n+1 {
		t.Fatalf("ring holds %d keys after %d rotations; want %d", len(ks.keys), n, n+1)
	}
	for _, kid := range all {
		if _, ok := ks.lookup(kid); !ok {
			t.Errorf("key %s lost", kid)
		}
	}
	if !slices.Contains(kids, ks.CurrentKID()) {
		t.Errorf("current key %s is none of the rotations'", ks.CurrentKID())
	}
}

func TestRotateKeyRefusedWithSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	key := strings.Repeat("q", 40)
	if err := os.WriteFile(secret, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	_, err := RotateKey(secret, dataDir, now, time.Hour, nil)
	if !errors.Is(err, ErrKeyFileManaged) || !strings.Contains(err.Error(), "--jwt-secret-file") {
		t.Fatalf("err = %v; want ErrKeyFileManaged naming the setting", err)
	}
	if strings.Contains(err.Error(), "qqqq") {
		t.Fatal("error holds the key")
	}
	if b, _ := os.ReadFile(secret); string(b) != key+"\n" {
		t.Fatal("the secret file was changed")
	}
	ks, err := LoadKeySet(secret, dataDir, now, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ks.CurrentKID() != KeyID([]byte(key)) || len(ks.keys) != 1 {
		t.Fatalf("LoadKeySet with a secret file: %v", ks)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("with --jwt-secret-file the data dir must not be touched for keys")
	}
}

func TestRotateKeyFirstKeyAndArguments(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "fresh")
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	kid, err := RotateKey("", dir, now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKeySet("", dir, now, time.Hour, nil)
	if err != nil || ks.CurrentKID() != kid || len(ks.keys) != 1 {
		t.Fatalf("after rotating an empty dir: %v %v", ks, err)
	}
	if _, err := os.Stat(filepath.Join(dir, RetiredKeysFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("nothing to retire, yet jwt.keys was written")
	}
	for name, f := range map[string]func() error{
		"rotate keep 0":     func() error { _, err := RotateKey("", dir, now, 0, nil); return err },
		"rotate keep < 0":   func() error { _, err := RotateKey("", dir, now, -time.Second, nil); return err },
		"rotate no dir":     func() error { _, err := RotateKey("", "", now, time.Hour, nil); return err },
		"rotate zero now":   func() error { _, err := RotateKey("", dir, time.Time{}, time.Hour, nil); return err },
		"load keep 0":       func() error { _, err := LoadKeySet("", dir, now, 0, nil); return err },
		"load no dir":       func() error { _, err := LoadKeySet("", "", now, time.Hour, nil); return err },
		"load missing file": func() error { _, err := LoadKeySet(filepath.Join(dir, "nope"), dir, now, 0, nil); return err },
	} {
		if f() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestKeyRingCrashBetweenWrites: a rotation that stopped after writing
// jwt.keys but before replacing jwt.key leaves the current key also listed
// as retired; that loads, and the next rotation does not list it twice.
func TestKeyRingCrashBetweenWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ks0, err := LoadKeySet("", dir, now, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := readKeyFileNoCheck(t, filepath.Join(dir, KeyFileName))
	half := encodeRetiredKeys([]retiredKey{{kid: KeyID(cur), retired: now, key: cur}})
	if err := os.WriteFile(filepath.Join(dir, RetiredKeysFileName), half, 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := LoadKeySet("", dir, now, time.Hour, nil)
	if err != nil || ks.CurrentKID() != ks0.CurrentKID() || len(ks.keys) != 1 {
		t.Fatalf("after a half rotation: %v %v", ks, err)
	}
	if _, err := RotateKey("", dir, now.Add(time.Second), time.Hour, nil); err != nil {
		t.Fatal(err)
	}
	retired, err := readRetiredKeys(filepath.Join(dir, RetiredKeysFileName))
	if err != nil || len(retired) != 1 || retired[0].kid != ks0.CurrentKID() {
		t.Fatalf("jwt.keys after the next rotation: %+v %v", retired, err)
	}
}

// TestKeyRingNeverRevealsKeys: no log line and no error of the key ring holds
// key bytes, raw or encoded, even when jwt.keys is damaged.
func TestKeyRingNeverRevealsKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var errs []error
	var secrets []string
	collect := func() {
		k, _ := readKeyFileNoCheck(t, filepath.Join(dir, KeyFileName))
		secrets = append(secrets, string(k), base64.RawURLEncoding.EncodeToString(k), hex.EncodeToString(k))
	}
	if _, err := LoadKeySet("", dir, now, time.Hour, log); err != nil {
		t.Fatal(err)
	}
	collect()
	for i := range 3 {
		if _, err := RotateKey("", dir, now.Add(time.Duration(i)*time.Second), time.Hour, log); err != nil {
			t.Fatal(err)
		}
		collect()
	}
	ks, err := LoadKeySet("", dir, now, time.Hour, log)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	e.svc.SetKeys(ks)
	e.svc.SetKeys(nil)

	ring := filepath.Join(dir, RetiredKeysFileName)
	good, _ := os.ReadFile(ring)
	lines := strings.Split(strings.TrimSpace(string(good)), "\n")
	last := lines[len(lines)-1]
	fields := strings.Fields(last)
	flip := byte('A')
	if fields[2][10] == 'A' {
		flip = 'B'
	}
	flipped := fields[2][:10] + string(flip) + fields[2][11:]
	for _, damaged := range []string{
		strings.Replace(string(good), fields[2], flipped, 1),                           // kid mismatch
		strings.Replace(string(good), fields[2], fields[2]+"!!", 1),                    // not base64url
		strings.Replace(string(good), last, fields[0]+" "+fields[2], 1),                // missing field
		strings.Replace(string(good), fields[1], "yesterday", 1),                       // bad time
		strings.Replace(string(good), fields[2], fields[2][:20], 1),                    // short key
		strings.Replace(string(good), last, last+" "+fields[2], 1),                     // extra field
		strings.Replace(string(good), last, fields[0]+" "+fields[1]+" "+secrets[0], 1), // raw key
	} {
		if err := os.WriteFile(ring, []byte(damaged), 0o600); err != nil {
			t.Fatal(err)
		}
		_, lerr := LoadKeySet("", dir, now, time.Hour, log)
		_, rerr := RotateKey("", dir, now, time.Hour, log)
		if lerr == nil || rerr == nil {
			t.Fatalf("damaged jwt.keys accepted: load %v, rotate %v", lerr, rerr)
		}
		errs = append(errs, lerr, rerr)
	}
	os.Chmod(filepath.Join(dir, KeyFileName), 0o644)
	_, err = LoadKeySet("", dir, now, time.Hour, log)
	errs = append(errs, err)

	out := logs.String() + e.logs.String()
	for _, err := range errs {
		out += "\n" + err.Error()
	}
	if !strings.Contains(out, "rotated the JWT signing key") {
		t.Fatalf("rotation not logged: %s", out)
	}
	for _, s := range secrets {
		if len(s) < 16 {
			t.Fatal("test setup: empty key")
		}
		for i := 0; i+16 <= len(s); i += 8 {
			if strings.Contains(out, s[i:i+16]) {
				t.Fatalf("key material %q… found in logs or errors:\n%s", s[:4], out)
			}
		}
	}
}

// TestSetKeysConcurrent swaps the Service's keys while tokens are signed and
// verified (run with -race): every token verifies with either set.
func TestSetKeysConcurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	tok := e.login(t, "alice")
	u, err := e.users.UserByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	other := []byte("another-32-byte-key-for-testing!")
	ksA, err := NewKeySet(testKey, other)
	if err != nil {
		t.Fatal(err)
	}
	ksB, err := NewKeySet(other, testKey)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var swapper sync.WaitGroup
	swapper.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				e.svc.SetKeys(ksA)
			} else {
				e.svc.SetKeys(ksB)
			}
		}
	})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				if _, err := e.svc.VerifyAccess(ctx, tok.Access); err != nil {
					t.Errorf("verify during a swap: %v", err)
					return
				}
				fresh, _, err := e.svc.issueAccess(u, tok.SessionID, e.clock.Now(), time.Time{})
				if err != nil {
					t.Errorf("sign during a swap: %v", err)
					return
				}
				if kid := headerOf(t, fresh.Reveal())["kid"]; kid != KeyID(testKey) && kid != KeyID(other) {
					t.Errorf("signed with kid %v", kid)
				}
				if _, err := e.svc.VerifyAccess(ctx, fresh); err != nil {
					t.Errorf("fresh token refused during a swap: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	swapper.Wait()

	// The swap reaches verification: with a set that lacks testKey, tok is refused.
	third, err := NewKeySet([]byte("a-third-32-byte-key-for-testing!"))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.SetKeys(third)
	e.svc.SetKeys(nil) // ignored
	_, err = e.svc.VerifyAccess(ctx, tok.Access)
	wantCode(t, err, tollgate.CodeUnauthenticated)
	if !strings.Contains(e.logs.String(), "SetKeys called without keys") {
		t.Error("SetKeys(nil) not logged")
	}
}
