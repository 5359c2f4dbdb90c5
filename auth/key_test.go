package auth

import (
	"bytes"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadKeyFromSecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	key := strings.Repeat("k", 40)
	if err := os.WriteFile(path, []byte("\n  "+key+" \r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKey(path, filepath.Join(dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != key {
		t.Fatalf("key not trimmed: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Error("with --jwt-secret-file the data dir must not be touched for a key")
	}

	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("  "+strings.Repeat("s", 31)+"\n"), 0o600)
	_, err = LoadKey(short, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "--jwt-secret-file") || strings.Contains(err.Error(), "sssss") {
		t.Fatalf("short key: err = %v; want an error naming the setting and not the key", err)
	}
	if _, err := LoadKey(filepath.Join(dir, "missing"), dir, nil); err == nil || !strings.Contains(err.Error(), "--jwt-secret-file") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := LoadKey(dir, dir, nil); err == nil {
		t.Fatal("a directory was accepted as key file")
	}
}

func TestLoadKeySecretFileReadableByOthersWarns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	os.WriteFile(path, []byte(strings.Repeat("k", 32)), 0o644)
	os.Chmod(path, 0o644)
	var buf syncBuffer
	if _, err := LoadKey(path, dir, slog.New(slog.NewTextHandler(&buf, nil))); err != nil {
		t.Fatalf("a mounted 0644 secret must be accepted (with a warning): %v", err)
	}
	if !strings.Contains(buf.String(), "readable by group or others") {
		t.Fatalf("no warning logged: %q", buf.String())
	}
	if strings.Contains(buf.String(), "kkkk") {
		t.Fatal("key logged")
	}
}

func TestLoadKeyGeneratesIntoDataDir(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "nested", "data")
	k1, err := LoadKey("", dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) < MinKeyBytes {
		t.Fatalf("generated key has %d bytes", len(k1))
	}
	st, err := os.Stat(dataDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v %v; want mode 0700", st.Mode(), err)
	}
	kst, err := os.Stat(filepath.Join(dataDir, KeyFileName))
	if err != nil || kst.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v; want mode 0600", kst.Mode(), err)
	}
	k2, err := LoadKey("", dataDir, nil)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second start did not reuse the key: %v", err)
	}
	entries, _ := os.ReadDir(dataDir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// A generated key that became readable by others is refused.
	os.Chmod(filepath.Join(dataDir, KeyFileName), 0o640)
	if _, err := LoadKey("", dataDir, nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable generated key: err = %v", err)
	}
}

// TestLoadKeyConcurrentFirstStart: processes starting together on one data
// dir end up with one key.
func TestLoadKeyConcurrentFirstStart(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadKey("", dataDir, nil)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent first starts produced different keys")
		}
	}
}

func TestKeySet(t *testing.T) {
	t.Parallel()
	old := bytes.Repeat([]byte{1}, 32)
	ks, err := NewKeySet(testKey, old)
	if err != nil {
		t.Fatal(err)
	}
	if ks.CurrentKID() != KeyID(testKey) || len(ks.CurrentKID()) != 8 {
		t.Fatalf("kid = %q", ks.CurrentKID())
	}
	if strings.Contains(hex.EncodeToString(testKey), ks.CurrentKID()) || strings.Contains(string(testKey), ks.CurrentKID()) {
		t.Fatal("kid is a piece of the key")
	}
	if _, ok := ks.lookup(KeyID(old)); !ok {
		t.Fatal("previous key not kept for verification")
	}
	for _, s := range []string{ks.String(), ks.GoString(), ks.LogValue().String()} {
		if strings.Contains(s, string(testKey)) {
			t.Fatal("KeySet prints its key")
		}
	}
	if _, err := NewKeySet(testKey[:31]); err == nil {
		t.Fatal("31-byte key accepted")
	}
	if _, err := NewKeySet(testKey, testKey); err == nil {
		t.Fatal("duplicate key accepted")
	}
}
