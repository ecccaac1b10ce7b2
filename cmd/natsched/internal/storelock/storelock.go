// Package storelock keeps two natsched daemons off one store directory.
//
// Two embedded nats-servers writing one JetStream store corrupt it (the
// second one's filestore and the first's disagree about the same files),
// so `natsched server` takes an exclusive lock on <store>/natsched.lock
// before the embedded server opens anything, and writes its process ID
// into the file for the message a second daemon prints.
//
// On Unix the lock is flock(2) on that file: the kernel drops it when the
// process ends, however it ends, so a killed daemon never leaves a stale
// lock behind; the file itself stays (removing it would let two
// processes lock two different files of the same name). Elsewhere
// (Windows, Plan 9, wasm) Acquire writes the PID but locks nothing:
// Supported is false there and the daemon says so in its log.
package storelock

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// FileName is the lock file inside a store directory.
const FileName = "natsched.lock"

// Lock is held from Acquire until Release or the end of the process.
type Lock struct {
	f *os.File
}

// InUseError says another process holds the lock on Dir.
type InUseError struct {
	Dir  string // the store directory, as given to Acquire
	Path string // the lock file
	PID  int    // the holder's process ID, 0 if the file does not say
}

func (e *InUseError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = "process " + strconv.Itoa(e.PID)
	}
	return fmt.Sprintf("store %s is in use by %s (lock %s)", e.Dir, holder, e.Path)
}

// Acquire creates dir if needed and locks it for this process. When
// another process holds the lock it returns an *InUseError at once,
// without waiting.
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	held, err := lock(f)
	if err != nil || held {
		_ = f.Close()
		if held {
			return nil, &InUseError{Dir: dir, Path: path, PID: readPID(path)}
		}
		return nil, fmt.Errorf("lock store %s: %w", dir, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock store %s: write %s: %w", dir, path, err)
	}
	return &Lock{f: f}, nil
}

// Release empties the lock file (it no longer names a holder) and drops
// the lock. It is safe on a nil Lock and to call twice.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // closing the only descriptor drops the lock
	l.f = nil
	return err
}

// readPID reads the holder's PID from the lock file; 0 if it says none.
func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
