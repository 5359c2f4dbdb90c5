package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// MinKeyBytes is the shortest HS256 key accepted: 256 bits, the size of the
// HMAC-SHA-256 output (docs/api.md, "Names": --jwt-secret-file, ≥ 32 bytes).
const MinKeyBytes = 32

// maxKeyFileBytes bounds how much of a key file is read.
const maxKeyFileBytes = 64 << 10

// KeyFileName is the name of the key generated in the data directory when no
// --jwt-secret-file is given.
const KeyFileName = "jwt.key"

// KeySet holds the HS256 keys that verify access tokens, by key id, and the
// one current key that signs new tokens. Keeping earlier keys lets tokens
// signed before a rotation verify until they expire.
//
// A KeySet is immutable after [NewKeySet] and safe for concurrent use. Key
// bytes never leave it: there is no accessor, and it prints only its key ids.
type KeySet struct {
	current string
	keys    map[string][]byte
}

// KeyID returns the key id ("kid") of an HS256 key: the first 8 hex characters
// of a SHA-256 over a fixed label and the key. It names the key without
// revealing anything usable about it, and it is the same on every node that
// shares the key.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("tollgate jwt kid\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// NewKeySet returns a KeySet that signs with current and verifies tokens
// signed by current or any of previous. Every key must be at least
// [MinKeyBytes] long and have a distinct key id. The keys are copied.
func NewKeySet(current []byte, previous ...[]byte) (*KeySet, error) {
	ks := &KeySet{keys: make(map[string][]byte, 1+len(previous))}
	for i, k := range append([][]byte{current}, previous...) {
		if len(k) < MinKeyBytes {
			return nil, fmt.Errorf("auth: signing key %d is %d bytes; at least %d are required", i, len(k), MinKeyBytes)
		}
		kid := KeyID(k)
		if _, dup := ks.keys[kid]; dup {
			return nil, fmt.Errorf("auth: signing key %d repeats key id %s", i, kid)
		}
		ks.keys[kid] = bytes.Clone(k)
		if i == 0 {
			ks.current = kid
		}
	}
	return ks, nil
}

// CurrentKID is the key id of the signing key.
func (ks *KeySet) CurrentKID() string { return ks.current }

// String lists the key ids, never a key.
func (ks *KeySet) String() string {
	return fmt.Sprintf("KeySet{current: %s, keys: %d}", ks.current, len(ks.keys))
}

// GoString is String, so that %#v does not print key bytes.
func (ks *KeySet) GoString() string { return ks.String() }

// LogValue implements slog.LogValuer with the key ids only.
func (ks *KeySet) LogValue() slog.Value { return slog.StringValue(ks.String()) }

// signer returns the current key id and key.
func (ks *KeySet) signer() (string, []byte) { return ks.current, ks.keys[ks.current] }

// lookup returns the key whose id is kid. kid is only ever a map key: it is
// never a path, a URL or anything else that could be resolved.
func (ks *KeySet) lookup(kid string) ([]byte, bool) {
	k, ok := ks.keys[kid]
	return k, ok
}

// LoadKey returns the HS256 signing key (docs/api.md, "Names").
//
// With secretFile (--jwt-secret-file) it is the file's bytes with surrounding
// whitespace trimmed, which must be at least [MinKeyBytes] long. Such a file
// is usually mounted by the operator (a Kubernetes or Docker secret, often
// mode 0644 or 0444), so a file readable by group or others is accepted with
// a warning on log.
//
// Without it, the key lives in dataDir/jwt.key: generated from crypto/rand
// (32 bytes, hex-encoded) with mode 0600 on first start and reused afterwards.
// dataDir is created with mode 0700 if missing. tollgate wrote that file
// itself, so finding it readable by group or others means someone changed it:
// LoadKey refuses it rather than sign with a key that may have leaked.
//
// log may be nil. Errors name the setting and the path, never key bytes.
func LoadKey(secretFile, dataDir string, log *slog.Logger) ([]byte, error) {
	if log == nil {
		log = discardLogger()
	}
	if secretFile != "" {
		key, mode, err := readKeyFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("--jwt-secret-file %s: %w", secretFile, err)
		}
		if mode&0o077 != 0 {
			log.Warn("the JWT key file is readable by group or others; restrict it to mode 0600 or 0400",
				"path", secretFile, "mode", mode.String())
		}
		return key, nil
	}
	if dataDir == "" {
		return nil, errors.New("auth: --data-dir is empty and no --jwt-secret-file is set; cannot keep a signing key")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", dataDir, err)
	}
	path := filepath.Join(dataDir, KeyFileName)
	key, err := readGeneratedKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := writeNewKey(path); err != nil {
			return nil, fmt.Errorf("--data-dir: generating %s: %w", path, err)
		}
		log.Info("generated a new JWT signing key", "path", path)
		key, err = readGeneratedKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %s: %w", path, err)
	}
	return key, nil
}

func readGeneratedKey(path string) ([]byte, error) {
	key, mode, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	if mode&0o077 != 0 {
		return nil, fmt.Errorf("mode %s lets group or others read the signing key; run chmod 600 on it (or delete it to generate a new one, which logs everyone out)", mode)
	}
	return key, nil
}

// readKeyFile reads a regular key file of bounded size, trims surrounding
// whitespace and checks its length.
func readKeyFile(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, 0, err
	}
	if len(b) > maxKeyFileBytes {
		return nil, 0, fmt.Errorf("larger than %d bytes; this is not a key file", maxKeyFileBytes)
	}
	key := bytes.TrimSpace(b)
	if len(key) < MinKeyBytes {
		return nil, 0, fmt.Errorf("the key is %d bytes after trimming whitespace; at least %d are required", len(key), MinKeyBytes)
	}
	return key, st.Mode().Perm(), nil
}

// writeNewKey creates path with a fresh random key, atomically and without
// replacing a file that appeared meanwhile (another process starting on the
// same data dir): the key is written and synced to a temporary file, which is
// then hard-linked to path. If path exists by then, that key wins.
func writeNewKey(path string) error {
	tmp, err := writeTemp(filepath.Dir(path), ".jwt.key.*", newKeyFileData())
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// newKeyFileData returns the contents of a new generated key file: 32 bytes
// from crypto/rand, hex-encoded, and a newline. The key is the 64 hex
// characters themselves, as [LoadKey] reads them.
func newKeyFileData() []byte {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+).
	return []byte(hex.EncodeToString(raw[:]) + "\n")
}
