//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris

package storelock

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Supported: this build locks stores.
const Supported = true

// lock takes flock(LOCK_EX|LOCK_NB) on f; held reports that another open
// file description (another process, or another Acquire) has it.
func lock(f *os.File) (held bool, err error) {
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}
