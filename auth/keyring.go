package auth

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// The key ring in the data directory (used only without --jwt-secret-file):
//
//	<data-dir>/jwt.key        the current signing key, as written by LoadKey
//	                          (64 hex characters and a newline, mode 0600)
//	<data-dir>/jwt.keys       retired, verify-only keys (mode 0600); absent
//	                          until the first rotation
//	<data-dir>/jwt.keys.lock  empty; serializes rotations (mode 0600; an
//	                          flock(2) lock, so it stays after a rotation;
//	                          where flock is missing, O_EXCL, and it exists
//	                          only during one)
//
// jwt.keys is text: lines starting with '#' and blank lines are comments;
// every other line is one retired key as three fields separated by a space:
//
//	<kid> <retired-at, RFC 3339 UTC> <key, unpadded base64url>
//
// The kid is [KeyID] of the key and is checked on load, so a line whose key
// was damaged is refused rather than silently verifying nothing. The key is
// base64url-encoded because a key of jwt.key may be any bytes (an operator
// may have put their own there).
const (
	// RetiredKeysFileName holds the retired, verify-only signing keys in the
	// data directory, next to [KeyFileName].
	RetiredKeysFileName = "jwt.keys"
	// KeyLockFileName is the lock file that serializes [RotateKey] calls on
	// one data directory, across processes.
	KeyLockFileName = "jwt.keys.lock"
)

// maxRetiredKeysFileBytes bounds how much of jwt.keys is read: about ten
// thousand retired keys, far more than rotations within one token lifetime.
const maxRetiredKeysFileBytes = 1 << 20

// keyLockTimeout bounds the wait for another rotation to finish.
const keyLockTimeout = 10 * time.Second

const retiredKeysHeader = `# tollgate retired JWT signing keys: they verify tokens signed before a rotation
# until those expire; they never sign. Written by "tollgate keys rotate"; keep mode 0600.
# One key a line: <kid> <retired-at RFC 3339> <key base64url>
`

// ErrKeyFileManaged is returned by [RotateKey] when --jwt-secret-file is set:
// the operator owns that file (often a mounted secret shared by every node),
// so tollgate does not rotate it.
var ErrKeyFileManaged = errors.New("auth: --jwt-secret-file is set: that key is managed by the operator, and tollgate rotates only the key it generated in --data-dir")

// errKeyRingBusy is returned when another rotation holds the lock too long.
var errKeyRingBusy = errors.New("another key rotation is running on this data directory (the lock is held)")

// retiredKey is one line of jwt.keys.
type retiredKey struct {
	kid     string
	retired time.Time
	key     []byte
}

// LoadKeySet returns the keys a node signs and verifies tollgate's tokens
// with, at now.
//
// With secretFile (--jwt-secret-file) it is that one key, read as [LoadKey]
// does; the data directory is not touched and keep is not used.
//
// Without it, the current key is dataDir/jwt.key (generated on first start,
// as by [LoadKey]) and it signs; the retired keys of dataDir/jwt.keys that
// were retired at most keep before now verify too. Older ones are left out
// (and stay in the file until the next [RotateKey] drops them). keep must be
// positive: it is the longest lifetime of a token signed with a key that was
// current, plus the leeway (see [RotateKey]). jwt.keys, like jwt.key, must
// not be readable by group or others.
//
// A node reads its keys when it calls LoadKeySet (at start; on SIGHUP if the
// program reloads them with [Service.SetKeys]); a rotation made meanwhile
// takes effect for that node at its next load.
//
// log may be nil; it gets the key ids, never key bytes. Errors name the
// setting and the path, never key bytes.
func LoadKeySet(secretFile, dataDir string, now time.Time, keep time.Duration, log *slog.Logger) (*KeySet, error) {
	if log == nil {
		log = discardLogger()
	}
	if secretFile != "" {
		key, err := LoadKey(secretFile, dataDir, log)
		if err != nil {
			return nil, err
		}
		return NewKeySet(key)
	}
	if keep <= 0 {
		return nil, fmt.Errorf("auth: the retired-key lifetime must be positive, not %s", keep)
	}
	// jwt.key before jwt.keys: a rotation writes jwt.keys (with the old key)
	// before it replaces jwt.key, so in this order a concurrent rotation can
	// never make the old key vanish from both reads.
	current, err := LoadKey("", dataDir, log)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dataDir, RetiredKeysFileName)
	retired, err := readRetiredKeys(path)
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %s: %w", path, err)
	}
	kept, dropped := pruneRetired(retired, KeyID(current), now, keep)
	previous := make([][]byte, len(kept))
	kids := make([]string, len(kept))
	for i, r := range kept {
		previous[i], kids[i] = r.key, r.kid
	}
	ks, err := NewKeySet(current, previous...)
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %s: %w", path, err)
	}
	log.Info("loaded the JWT signing keys", "kid", ks.CurrentKID(), "verify_only", kids, "expired", dropped)
	return ks, nil
}

// RotateKey makes a new signing key current in dataDir and returns its key
// id (docs/api.md: tollgate keys rotate). Holding dataDir/jwt.keys.lock, it
//
//  1. adds the current key of jwt.key to jwt.keys as retired at now, and
//     drops from jwt.keys the keys retired more than keep before now;
//  2. writes a new random key to jwt.key (crypto/rand, mode 0600).
//
// Each file is replaced atomically (written to a temporary file in dataDir,
// synced, renamed over the old one), jwt.keys first: a crash between the two
// steps leaves the old key both current and retired, which loads and rotates
// as if the rotation had not happened. Concurrent rotations, in this process
// or others, are serialized by the lock, so none loses a key; a rotation
// waits at most 10 s for another one.
//
// keep is how long a retired key still verifies: the longest lifetime of a
// token it may have signed, plus the leeway — the access-token TTL, or the
// anonymous-session TTL when anonymous sessions are on and that is longer,
// plus the verification leeway. Tokens signed before the rotation verify
// until they expire; then their key is dropped. A running node keeps signing
// with the old key until it reloads its keys ([LoadKeySet]), so reload soon
// after rotating: a token signed by a node that reloads later than keep after
// the rotation may be refused before its exp (its client then refreshes).
//
// With secretFile (--jwt-secret-file) set, RotateKey changes nothing and
// returns an error wrapping [ErrKeyFileManaged]. When dataDir has no key
// yet, RotateKey generates the first one (as [LoadKey] would) and retires
// nothing.
//
// log may be nil; it gets the key ids, never key bytes. Errors name the
// setting and the path, never key bytes.
func RotateKey(secretFile, dataDir string, now time.Time, keep time.Duration, log *slog.Logger) (newKID string, err error) {
	if log == nil {
		log = discardLogger()
	}
	if secretFile != "" {
		return "", fmt.Errorf("--jwt-secret-file %s: %w", secretFile, ErrKeyFileManaged)
	}
	if dataDir == "" {
		return "", errors.New("auth: --data-dir is empty; there is no key ring to rotate")
	}
	if keep <= 0 {
		return "", fmt.Errorf("auth: the retired-key lifetime must be positive, not %s", keep)
	}
	if now.IsZero() {
		return "", errors.New("auth: rotating a key needs the current time")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("--data-dir %s: %w", dataDir, err)
	}
	lockPath := filepath.Join(dataDir, KeyLockFileName)
	unlock, err := lockKeyRing(lockPath, keyLockTimeout)
	if err != nil {
		return "", fmt.Errorf("--data-dir: %s: %w", lockPath, err)
	}
	defer unlock()

	keyPath := filepath.Join(dataDir, KeyFileName)
	current, err := readGeneratedKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		if err := writeNewKey(keyPath); err != nil {
			return "", fmt.Errorf("--data-dir: generating %s: %w", keyPath, err)
		}
		key, err := readGeneratedKey(keyPath)
		if err != nil {
			return "", fmt.Errorf("--data-dir: %s: %w", keyPath, err)
		}
		kid := KeyID(key)
		log.Info("there was no JWT signing key to rotate; generated the first one", "path", keyPath, "kid", kid)
		return kid, nil
	}
	if err != nil {
		return "", fmt.Errorf("--data-dir: %s: %w", keyPath, err)
	}
	retiredPath := filepath.Join(dataDir, RetiredKeysFileName)
	retired, err := readRetiredKeys(retiredPath)
	if err != nil {
		return "", fmt.Errorf("--data-dir: %s: %w", retiredPath, err)
	}
	oldKID := KeyID(current)
	kept, dropped := pruneRetired(retired, oldKID, now, keep)
	kept = append(kept, retiredKey{kid: oldKID, retired: now.UTC(), key: current})
	if err := replaceFile(retiredPath, encodeRetiredKeys(kept)); err != nil {
		return "", fmt.Errorf("--data-dir: writing %s: %w", retiredPath, err)
	}

	var data []byte
	for {
		data = newKeyFileData()
		newKID = KeyID(bytes.TrimSpace(data))
		if !slices.ContainsFunc(kept, func(r retiredKey) bool { return r.kid == newKID }) {
			break // a key id collision is a 2^-32 event; draw again
		}
	}
	if err := replaceFile(keyPath, data); err != nil {
		return "", fmt.Errorf("--data-dir: writing %s: %w", keyPath, err)
	}
	log.Info("rotated the JWT signing key; nodes sign with it once they reload their keys",
		"kid", newKID, "retired_kid", oldKID, "verify_only", len(kept), "expired", dropped,
		"retired_until", now.Add(keep).UTC().Format(time.RFC3339))
	return newKID, nil
}

// pruneRetired returns, in file order, the retired keys that still verify at
// now (retired at most keep ago) and are not the current key, without
// repeated key ids; and how many were left out for being too old.
func pruneRetired(retired []retiredKey, currentKID string, now time.Time, keep time.Duration) (kept []retiredKey, dropped int) {
	seen := map[string]bool{currentKID: true}
	for _, r := range retired {
		if now.Sub(r.retired) > keep {
			dropped++
			continue
		}
		if seen[r.kid] {
			continue
		}
		seen[r.kid] = true
		kept = append(kept, r)
	}
	return kept, dropped
}

// readRetiredKeys reads jwt.keys; a missing file is an empty ring. The file
// must be a regular file not readable by group or others. Errors give line
// numbers, never a line's content.
func readRetiredKeys(path string) ([]retiredKey, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("mode %s lets group or others read the retired signing keys; run chmod 600 on it", st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxRetiredKeysFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRetiredKeysFileBytes {
		return nil, fmt.Errorf("larger than %d bytes; this is not a key ring", maxRetiredKeysFileBytes)
	}
	var out []retiredKey
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxRetiredKeysFileBytes)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return nil, fmt.Errorf("line %d: want 3 fields (kid, retired-at, key), have %d", n, len(fields))
		}
		retired, err := time.Parse(time.RFC3339Nano, fields[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: the retirement time is not RFC 3339", n)
		}
		key, err := base64.RawURLEncoding.DecodeString(fields[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: the key is not unpadded base64url", n)
		}
		if len(key) < MinKeyBytes {
			return nil, fmt.Errorf("line %d: the key is %d bytes; at least %d are required", n, len(key), MinKeyBytes)
		}
		if KeyID(key) != fields[0] {
			return nil, fmt.Errorf("line %d: the key id does not match the key (the line is damaged)", n)
		}
		out = append(out, retiredKey{kid: fields[0], retired: retired, key: key})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// encodeRetiredKeys renders jwt.keys.
func encodeRetiredKeys(keys []retiredKey) []byte {
	var b bytes.Buffer
	b.WriteString(retiredKeysHeader)
	for _, r := range keys {
		fmt.Fprintf(&b, "%s %s %s\n", r.kid, r.retired.UTC().Format(time.RFC3339Nano), base64.RawURLEncoding.EncodeToString(r.key))
	}
	return b.Bytes()
}

// replaceFile atomically replaces path with data, mode 0600: a temporary file
// in the same directory is written, synced and renamed over path, and the
// directory is synced so that the rename survives a crash.
func replaceFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := writeTemp(dir, "."+filepath.Base(path)+".*", data)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // fails harmlessly once renamed
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeTemp writes data to a new temporary file in dir (mode 0600), syncs
// and closes it, and returns its name; the caller links or renames it into
// place and removes it.
func writeTemp(dir, pattern string, data []byte) (string, error) {
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	return tmp.Name(), nil
}

// syncDir makes a rename in dir durable, so that jwt.keys is on disk before
// jwt.key is replaced. Windows cannot sync a directory; there the rename is
// as durable as the file system makes it.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SetKeys replaces the keys that sign and verify tollgate's own tokens
// (access tokens, anonymous sessions), for example after [LoadKeySet] on
// SIGHUP following a rotation. It is atomic and safe to call while tokens are
// being signed and verified: each signature or verification uses either the
// old set or the new one, whole. A nil ks is ignored (and logged): the
// Service keeps its keys.
func (s *Service) SetKeys(ks *KeySet) {
	if ks == nil {
		s.log.Error("SetKeys called without keys; keeping the current ones")
		return
	}
	old := s.keys.Swap(ks)
	s.log.Info("JWT signing keys replaced", "kid", ks.CurrentKID(), "previous_kid", old.CurrentKID(), "keys", ks)
}

// signingKeys returns the Service's current KeySet.
func (s *Service) signingKeys() *KeySet { return s.keys.Load() }
