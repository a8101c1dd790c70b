package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/internal/safefile"
)

// DefaultLockFile is rpcbind's lock file, so that portmapd and rpcbind
// keep each other from starting.
const DefaultLockFile = "/run/rpcbind.lock"

// ErrAlreadyRunning reports that another portmapper holds the lock file.
var ErrAlreadyRunning = errors.New("another rpcbind is already running. Aborting")

// An AlreadyRunningError is ErrAlreadyRunning with the lock file and, when
// it can be found, the process holding it.
type AlreadyRunningError struct {
	LockFile string
	// PID is the holder's pid, 0 when unknown; Command its name.
	PID     int
	Command string
}

func (e *AlreadyRunningError) Error() string {
	// rpcbind's words first, for whoever greps for them.
	msg := ErrAlreadyRunning.Error() + " (lock file " + e.LockFile
	switch {
	case e.PID > 0 && e.Command != "":
		return msg + fmt.Sprintf(" is held by pid %d, %s)", e.PID, e.Command)
	case e.PID > 0:
		return msg + fmt.Sprintf(" is held by pid %d)", e.PID)
	}
	return msg + " is held by a process not visible from here)"
}

// Is makes errors.Is(err, ErrAlreadyRunning) hold.
func (e *AlreadyRunningError) Is(target error) bool { return target == ErrAlreadyRunning }

// maxLockTries bounds the retries when the lock file is replaced between
// opening and locking it.
const maxLockTries = 5

// acquireLock takes an exclusive flock on path, as rpcbind does on
// /run/rpcbind.lock, so that two portmappers never fight over port 111,
// and writes this process's pid into it for whoever finds it locked. The
// file is opened through its directory without following a link (see
// package safefile). The returned function removes the file, if it is
// still the one locked, and releases the lock.
func acquireLock(path string) (func(), error) {
	d, err := safefile.OpenDir(filepath.Dir(path), safefile.Policy{})
	if err != nil {
		return nil, fmt.Errorf("daemon: lock file %s: %w", path, err)
	}
	name := filepath.Base(path)
	for range maxLockTries {
		f, err := d.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("daemon: lock file: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			defer d.Close()
			defer f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, holderOf(path, f)
			}
			return nil, fmt.Errorf("daemon: lock %s: %w", path, err)
		}
		// A holder that stopped meanwhile removed the file it had
		// locked, which may be the one opened here: then lock the
		// file now at the name.
		if !sameFile(d, name, f) {
			f.Close()
			continue
		}
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		}
		return func() {
			if sameFile(d, name, f) {
				_ = d.Remove(name)
			}
			_ = f.Close()
			_ = d.Close()
		}, nil
	}
	d.Close()
	return nil, fmt.Errorf("daemon: lock %s: replaced %d times while being locked", path, maxLockTries)
}

// sameFile reports whether name in d is the file f has open.
func sameFile(d *safefile.Dir, name string, f *os.File) bool {
	at, err := d.Lstat(name)
	if err != nil {
		return false
	}
	var open unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &open); err != nil {
		return false
	}
	return at.Dev == open.Dev && at.Ino == open.Ino
}

// holderOf names the process holding the lock on f: the kernel's lock
// table tells, or else the pid the holder wrote into the file (rpcbind
// writes none).
func holderOf(path string, f *os.File) *AlreadyRunningError {
	e := &AlreadyRunningError{LockFile: path}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err == nil {
		e.PID, _ = safefile.FlockHolder(&st)
	}
	if e.PID == 0 {
		b, _ := io.ReadAll(io.LimitReader(f, 32))
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			e.PID = pid
		}
	}
	if e.PID > 0 {
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(e.PID) + "/comm"); err == nil {
			e.Command = strings.TrimSpace(string(b))
		}
	}
	return e
}
