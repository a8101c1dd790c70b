package lifetime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrGone reports a process that has exited, or never existed.
var ErrGone = errors.New("no such process (it has exited)")

// Info is what /proc says about a process.
type Info struct {
	PID int32
	// UID and GID are the effective ids.
	UID, GID uint32
	// Start is the start time in clock ticks since boot, field 22 of
	// /proc/PID/stat: with the pid, it names one process for the life of
	// the system.
	Start uint64
	// Exe is the executable's path, /proc/PID/exe; empty when the kernel
	// will not say (a kernel thread, or no permission).
	Exe string
}

// An Error is a failure to inspect or open a process.
type Error struct {
	Op  string
	PID int32
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("proc: %s pid %d: %v", e.Op, e.PID, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Inspect reads pid's identity from procRoot (normally "/proc"). It cannot
// by itself guard against pid reuse; Open can.
func Inspect(procRoot string, pid int32) (Info, error) {
	if pid <= 0 {
		return Info{}, &Error{"inspect", pid, ErrGone}
	}
	dir := procRoot + "/" + strconv.Itoa(int(pid))
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return Info{}, &Error{"inspect", pid, gone(err)}
	}
	_, start, err := parseStat(stat)
	if err != nil {
		return Info{}, &Error{"inspect", pid, err}
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return Info{}, &Error{"inspect", pid, gone(err)}
	}
	uid, gid, err := parseStatusIDs(status)
	if err != nil {
		return Info{}, &Error{"inspect", pid, err}
	}
	exe, _ := os.Readlink(dir + "/exe")
	// A deleted executable (replaced by an upgrade) keeps its path with
	// this suffix; the path is still the best description.
	exe = strings.TrimSuffix(exe, " (deleted)")
	return Info{PID: pid, UID: uid, GID: gid, Start: start, Exe: exe}, nil
}

func gone(err error) error {
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return ErrGone
	}
	return err
}

// parseStat returns the state (field 3) and the start time (field 22) of
// /proc/PID/stat. The command name, field 2, is in parentheses and may
// itself hold spaces and parentheses, so the fields are counted from the
// last ')'.
func parseStat(stat []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed stat: no command name")
	}
	// After ')' come fields 3 onwards; start time is field 22.
	fields := strings.Fields(string(stat[i+1:]))
	const startField = 22 - 3
	if len(fields) <= startField || len(fields[0]) != 1 {
		return 0, 0, errors.New("malformed stat: too few fields")
	}
	start, err = strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed stat start time: %w", err)
	}
	return fields[0][0], start, nil
}

// Running reports whether the process k names still runs: /proc/PID/stat
// exists, shows k's start time (so the pid was not reused) and not a
// zombie. It holds no descriptor beyond the read, which is what a Watcher
// polls with once its pidfds are spent. An error means /proc could not
// tell (too many open files, say), not that the process is gone.
func Running(procRoot string, k Key) (bool, error) {
	stat, err := os.ReadFile(procRoot + "/" + strconv.Itoa(int(k.PID)) + "/stat")
	if err != nil {
		if errors.Is(gone(err), ErrGone) {
			return false, nil
		}
		return false, &Error{"poll", k.PID, err}
	}
	state, start, err := parseStat(stat)
	if err != nil {
		return false, &Error{"poll", k.PID, err}
	}
	// Z is a zombie, X (never seen in practice) a process being reaped.
	return start == k.Start && state != 'Z' && state != 'X', nil
}

// parseStatusIDs returns the effective uid and gid from /proc/PID/status,
// whose Uid: and Gid: lines list real, effective, saved and filesystem ids.
func parseStatusIDs(status []byte) (uid, gid uint32, err error) {
	var haveUID, haveGID bool
	for line := range strings.SplitSeq(string(status), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok || key != "Uid" && key != "Gid" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return 0, 0, errors.New("malformed status " + key + " line")
		}
		v, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("malformed status %s line: %w", key, err)
		}
		if key == "Uid" {
			uid, haveUID = uint32(v), true
		} else {
			gid, haveGID = uint32(v), true
		}
	}
	if !haveUID || !haveGID {
		return 0, 0, errors.New("malformed status: no Uid or Gid line")
	}
	return uid, gid, nil
}

// A Handle is an open pidfd and the identity of its process. Close it when
// done, or hand it to a Watcher, which then owns it.
type Handle struct {
	Info
	fd int
}

// Open opens a pidfd for pid and reads its identity from procRoot. It fails
// with ErrGone when the process has exited, including when it exited after
// the pidfd was taken, in which case /proc may have described another
// process that reused the pid.
func Open(procRoot string, pid int32) (*Handle, error) {
	if pid <= 0 {
		return nil, &Error{"open", pid, ErrGone}
	}
	fd, err := unix.PidfdOpen(int(pid), unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, &Error{"open", pid, gone(err)}
	}
	return fromPidfd(procRoot, fd, pid)
}

// FromPidfd takes ownership of fd, a pidfd for pid (as SO_PEERPIDFD gives
// one), and reads the process's identity.
func FromPidfd(procRoot string, fd int, pid int32) (*Handle, error) {
	return fromPidfd(procRoot, fd, pid)
}

func fromPidfd(procRoot string, fd int, pid int32) (*Handle, error) {
	info, err := Inspect(procRoot, pid)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	h := &Handle{Info: info, fd: fd}
	if !h.Alive() {
		h.Close()
		return nil, &Error{"open", pid, ErrGone}
	}
	return h, nil
}

// Alive reports whether the process is still running (a zombie is not).
func (h *Handle) Alive() bool {
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

// Close releases the pidfd.
func (h *Handle) Close() error {
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}
