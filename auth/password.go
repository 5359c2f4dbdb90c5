package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/tollgate-ws/tollgate"
)

// Argon2 holds the argon2id parameters of new password hashes. The zero value
// of each field means its default, the OWASP minimum for argon2id (19 MiB,
// 2 passes, 1 lane). Stored hashes carry their own parameters in the PHC
// string, so changing these does not invalidate existing passwords.
type Argon2 struct {
	// Memory is the memory cost in KiB. Zero means 19456 (19 MiB).
	Memory uint32
	// Time is the number of passes. Zero means 2.
	Time uint32
	// Threads is the degree of parallelism (lanes). Zero means 1.
	Threads uint8
	// MaxConcurrent bounds how many hashes run at once, since each holds
	// Memory KiB for its whole run. Zero means runtime.GOMAXPROCS(0).
	MaxConcurrent int
}

// Limits on the parameters read from a stored PHC string, so that a corrupted
// or hostile hash cannot make one verify allocate gigabytes or spin for
// minutes.
const (
	maxArgonMemory  = 1 << 20 // KiB: 1 GiB
	maxArgonTime    = 32
	maxArgonThreads = 64
	saltLen         = 16
	hashLen         = 32
)

func (a Argon2) withDefaults() Argon2 {
	if a.Memory == 0 {
		a.Memory = 19456
	}
	if a.Time == 0 {
		a.Time = 2
	}
	if a.Threads == 0 {
		a.Threads = 1
	}
	if a.MaxConcurrent <= 0 {
		a.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	return a
}

// hasher computes and checks argon2id hashes. At most cap(sem) run at once;
// a caller waits for a slot only as long as its context allows. It is safe for
// concurrent use.
type hasher struct {
	p   Argon2
	sem chan struct{}
}

func newHasher(p Argon2) (*hasher, error) {
	p = p.withDefaults()
	if p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgonMemory || p.Time > maxArgonTime || p.Threads > maxArgonThreads {
		return nil, fmt.Errorf("auth: argon2id parameters out of range (m=%d t=%d p=%d)", p.Memory, p.Time, p.Threads)
	}
	return &hasher{p: p, sem: make(chan struct{}, p.MaxConcurrent)}, nil
}

// acquire waits for a hashing slot until ctx ends.
func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return tollgate.WrapError(tollgate.CodeUnavailable, fmt.Errorf("auth: waiting for a password hashing slot: %w", ctx.Err()))
	}
}

func (h *hasher) release() { <-h.sem }

// hash returns the PHC string of an argon2id hash of password with a fresh
// 16-byte salt: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>.
func (h *hasher) hash(ctx context.Context, password tollgate.Secret) (string, error) {
	salt := make([]byte, saltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go 1.24+).
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	sum := argon2.IDKey([]byte(password.Reveal()), salt, h.p.Time, h.p.Memory, h.p.Threads, hashLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.p.Memory, h.p.Time, h.p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum)), nil
}

// errBadHash says a stored hash is not a PHC argon2id string this package can
// check. It never contains the hash.
var errBadHash = errors.New("auth: stored password hash is not a valid argon2id PHC string")

type phc struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	sum     []byte
}

// parsePHC parses and bounds an argon2id PHC string.
func parsePHC(s string) (phc, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(s, "$")
	if len(s) > 512 || len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, errBadHash
	}
	var out phc
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return phc{}, errBadHash
	}
	for i, want := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(params[i], want)
		if !ok {
			return phc{}, errBadHash
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return phc{}, errBadHash
		}
		switch i {
		case 0:
			out.memory = uint32(n)
		case 1:
			out.time = uint32(n)
		case 2:
			if n > maxArgonThreads {
				return phc{}, errBadHash
			}
			out.threads = uint8(n)
		}
	}
	if out.time < 1 || out.time > maxArgonTime || out.threads < 1 || out.memory < 8*uint32(out.threads) || out.memory > maxArgonMemory {
		return phc{}, errBadHash
	}
	var err error
	if out.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(out.salt) < 8 || len(out.salt) > 64 {
		return phc{}, errBadHash
	}
	if out.sum, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(out.sum) < 16 || len(out.sum) > 64 {
		return phc{}, errBadHash
	}
	return out, nil
}

// verify reports whether password matches the PHC string encoded. The
// comparison is constant-time. A malformed stored hash is an error, not a
// mismatch, so that it is logged; callers still answer invalid_credentials.
func (h *hasher) verify(ctx context.Context, password tollgate.Secret, encoded string) (bool, error) {
	p, err := parsePHC(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	sum := argon2.IDKey([]byte(password.Reveal()), p.salt, p.time, p.memory, p.threads, uint32(len(p.sum)))
	return subtle.ConstantTimeCompare(sum, p.sum) == 1, nil
}
