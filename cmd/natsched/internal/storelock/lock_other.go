//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris)

package storelock

import "os"

// Supported: this build does not lock stores. Acquire only writes the
// PID file; keep two daemons off one store by hand.
const Supported = false

func lock(*os.File) (held bool, err error) { return false, nil }
