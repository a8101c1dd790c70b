package lifetime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DefaultProcRoot is where /proc is mounted, unless a Config says
// otherwise (a test's fake /proc, or another mount namespace's).
const DefaultProcRoot = "/proc"

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

// An Error is a failure to inspect or open a process. Its text names the
// process, not the package: a request to register for it shows it as it
// is.
type Error struct {
	Op  string
	PID int32
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("%s pid %d: %v", e.Op, e.PID, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// inspect reads pid's identity from procRoot (normally "/proc"). It cannot
// by itself guard against pid reuse; openProcess can.
func inspect(procRoot string, pid int32) (Info, error) {
	if pid <= 0 {
		return Info{}, &Error{"inspect", pid, ErrGone}
	}
	dir := procDir(procRoot, pid)
	_, start, err := readStat(procRoot, pid)
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

// procDir is pid's directory under procRoot.
func procDir(procRoot string, pid int32) string {
	return procRoot + "/" + strconv.Itoa(int(pid))
}

// readStat reads the state and start time of pid from procRoot/PID/stat;
// ErrGone when there is no such file.
func readStat(procRoot string, pid int32) (state byte, start uint64, err error) {
	stat, err := os.ReadFile(procDir(procRoot, pid) + "/stat")
	if err != nil {
		return 0, 0, gone(err)
	}
	return parseStat(stat)
}

// exited reports whether a /proc/PID/stat state is a process that has
// ended: Z a zombie, X one being reaped (never seen in practice), x the
// same on kernels 2.6.33 to 3.13.
func exited(state byte) bool { return state == 'Z' || state == 'X' || state == 'x' }

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

// running reports whether the process k names still runs: /proc/PID/stat
// exists, shows k's start time (so the pid was not reused) and not a
// zombie. It holds no descriptor beyond the read, which is what a watcher
// polls with once its pidfds are spent. An error means /proc could not
// tell (too many open files, say), not that the process is gone.
func running(procRoot string, k Key) (bool, error) {
	state, start, err := readStat(procRoot, k.PID)
	if errors.Is(err, ErrGone) {
		return false, nil
	}
	if err != nil {
		return false, &Error{"poll", k.PID, err}
	}
	return start == k.Start && !exited(state), nil
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

// startedBy reports whether pid runs and started no later than t: when
// its start time cannot be placed on the wall clock (no boot time), just
// whether it runs. A pid that started later than t is another process
// that reused it.
func startedBy(procRoot string, pid int32, t time.Time, boot bootClock) bool {
	state, start, err := readStat(procRoot, pid)
	if err != nil || exited(state) {
		return false
	}
	if boot.btime == 0 || t.IsZero() {
		return true
	}
	startedMs := boot.btime*1000 + int64(start)*1000/boot.clkTick
	// btime is whole seconds: allow for its rounding.
	return startedMs <= t.UnixMilli()+2000
}

// A bootClock turns start times, in clock ticks since boot, into wall
// clock time.
type bootClock struct {
	// btime is the boot time in Unix seconds, 0 when unknown.
	btime int64
	// clkTick is the kernel's USER_HZ, 100 on every Linux
	// architecture Go supports.
	clkTick int64
}

// readBootClock reads the boot time from procRoot/stat.
func readBootClock(procRoot string) bootClock {
	c := bootClock{clkTick: 100}
	b, err := os.ReadFile(procRoot + "/stat")
	if err != nil {
		return c
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			c.btime, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return c
		}
	}
	return c
}

// netNS returns the network namespace of pid ("self" when 0) as the link
// procRoot/PID/ns/net reads, "net:[4026531840]"; empty when unknown.
func netNS(procRoot string, pid int32) string {
	dir := procRoot + "/self"
	if pid != 0 {
		dir = procDir(procRoot, pid)
	}
	ns, _ := os.Readlink(dir + "/ns/net")
	return ns
}

// A Handle is an open pidfd and the identity of its process. Close it when
// done, or hand it to Keeper.Register, which then owns it.
type Handle struct {
	Info
	fd int
}

// openProcess opens a pidfd for pid and reads its identity from procRoot.
// It fails with ErrGone when the process has exited, including when it
// exited after the pidfd was taken, in which case /proc may have described
// another process that reused the pid.
func openProcess(procRoot string, pid int32) (*Handle, error) {
	if pid <= 0 {
		return nil, &Error{"open", pid, ErrGone}
	}
	fd, err := unix.PidfdOpen(int(pid), unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, &Error{"open", pid, gone(err)}
	}
	return fromPidfd(procRoot, fd, pid)
}

func fromPidfd(procRoot string, fd int, pid int32) (*Handle, error) {
	info, err := inspect(procRoot, pid)
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
