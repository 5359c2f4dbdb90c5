//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockKeyRing takes the lock by creating path exclusively (O_EXCL), waiting
// at most timeout, and unlock removes it. Without flock(2) a process that
// dies holding the lock leaves the file behind: the error then says to
// remove it.
func lockKeyRing(path string, timeout time.Duration) (unlock func(), err error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w; if no rotation is running, a crashed one left the lock file: remove it", errKeyRingBusy)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
