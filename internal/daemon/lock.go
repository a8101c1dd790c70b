package daemon

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ErrAlreadyRunning reports that another portmapper holds the lock file.
var ErrAlreadyRunning = errors.New("another rpcbind is already running. Aborting")

// acquireLock takes an exclusive flock on path, as rpcbind does on
// /run/rpcbind.lock, so that two portmappers never fight over port 111.
func acquireLock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("daemon: lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrAlreadyRunning
		}
		return nil, fmt.Errorf("daemon: lock %s: %w", path, err)
	}
	return func() {
		_ = os.Remove(path)
		_ = f.Close()
	}, nil
}
