//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package auth

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// lockKeyRing takes an exclusive flock(2) on path (created with mode 0600),
// waiting at most timeout. The lock is released by unlock or when the process
// dies, so a crash never leaves a stale lock; the file itself stays. Two
// opens of the file in one process exclude each other too.
func lockKeyRing(path string, timeout time.Duration) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	fd := int(f.Fd())
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(fd, syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errKeyRingBusy
		}
		time.Sleep(5 * time.Millisecond)
	}
}
