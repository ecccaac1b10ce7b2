//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris

package storelock

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLockIsExclusive(t *testing.T) {
	t.Parallel()
	require.True(t, Supported)
	dir := filepath.Join(t.TempDir(), "new", "store")
	first, err := Acquire(dir)
	require.NoError(t, err, "creates the directory")
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(b), "the holder's PID")

	// flock is per open file: a second Acquire in this process is refused
	// as another process would be.
	second, err := Acquire(dir)
	require.Nil(t, second)
	var inUse *InUseError
	require.True(t, errors.As(err, &inUse), "%T: %v", err, err)
	require.Equal(t, InUseError{Dir: dir, Path: path, PID: os.Getpid()}, *inUse)
	require.EqualError(t, err, "store "+dir+" is in use by process "+strconv.Itoa(os.Getpid())+" (lock "+path+")")

	require.NoError(t, first.Release())
	require.NoError(t, first.Release(), "twice is fine")
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	require.Empty(t, b, "a released lock names no holder")

	third, err := Acquire(dir)
	require.NoError(t, err, "free again after Release")
	require.NoError(t, third.Release())
	require.NoError(t, (*Lock)(nil).Release())
}

func TestInUseWithoutPID(t *testing.T) {
	t.Parallel()
	require.Equal(t, "store s is in use by another process (lock s/natsched.lock)",
		(&InUseError{Dir: "s", Path: "s/natsched.lock"}).Error())
}

func TestAcquireFailsOnAFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "plain")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := Acquire(file)
	require.ErrorContains(t, err, "store "+file+": ")
	var inUse *InUseError
	require.False(t, errors.As(err, &inUse))
}
