package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// readyFDEnv names the descriptor a detached daemon reports on.
const readyFDEnv = "PORTMAPD_READY_FD"

// readyMessage is what a detached daemon writes once it serves.
const readyMessage = "ready\n"

// Detach starts this program again with args in a new session, detached
// from the terminal (rpcbind without -f), and returns once the new process
// serves, or with the reason it failed to start. The caller then exits,
// so that a service manager or init script sees a started daemon.
func Detach(args []string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("daemon: detach: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("daemon: detach: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("daemon: detach: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(r, 4096))
	if string(msg) == readyMessage {
		return cmd.Process.Release()
	}
	_ = cmd.Wait()
	if len(msg) == 0 {
		return errors.New("daemon: exited before it was ready")
	}
	return errors.New(strings.TrimSpace(string(msg)))
}

// A Reporter tells the process that detached this one whether it came
// up. Outside a detached start it does nothing.
type Reporter struct {
	f *os.File
}

// NewReporter returns the Reporter of this process, consuming the
// environment variable Detach set.
func NewReporter() *Reporter {
	v := os.Getenv(readyFDEnv)
	os.Unsetenv(readyFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return &Reporter{}
	}
	syscall.CloseOnExec(fd)
	return &Reporter{f: os.NewFile(uintptr(fd), "ready")}
}

// Detached reports whether this process was started by Detach.
func (r *Reporter) Detached() bool { return r.f != nil }

// Ready reports success.
func (r *Reporter) Ready() { r.finish(readyMessage) }

// Failed reports why the daemon could not start.
func (r *Reporter) Failed(err error) { r.finish(err.Error() + "\n") }

func (r *Reporter) finish(msg string) {
	if r.f == nil {
		return
	}
	_, _ = r.f.WriteString(msg)
	_ = r.f.Close()
	r.f = nil
}
