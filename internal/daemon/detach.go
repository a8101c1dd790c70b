package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// readyFDEnv names the descriptor a detached daemon reports on.
const readyFDEnv = "PORTMAPD_READY_FD"

// What a detached daemon writes on its report pipe, one per line: a log
// line to show, then that it serves, or why it failed (the rest of the
// stream).
const (
	reportLog    = "log "
	reportReady  = "ready"
	reportFailed = "failed "
)

// ErrStoppedStarting reports a daemon stopped before it served.
var ErrStoppedStarting = errors.New("daemon: stopped before it served")

// A ReportedError is a failure already told: to the process that started
// a detached daemon, which prints it, or in the daemon's log. Nobody need
// say it again.
type ReportedError struct{ Err error }

func (e *ReportedError) Error() string { return e.Err.Error() }

func (e *ReportedError) Unwrap() error { return e.Err }

// Detach starts this program again with args in a new session, detached
// from the terminal (rpcbind without -f), copies what the new process
// logs to stderr until it serves, and returns once it serves, or with the
// reason it failed to start. The caller then exits, so that a service
// manager or init script sees a started daemon, and whoever started it
// sees why it did not start.
//
// The new process holds nothing of the terminal: its standard streams
// are /dev/null, so that a caller reading this one's output to its end
// (as $(portmapd) does) is not kept waiting. If ctx ends first, the new
// process is stopped with SIGTERM, and Detach returns ErrStoppedStarting
// once it has exited.
func Detach(ctx context.Context, args []string, stderr io.Writer) error {
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
	result := make(chan error, 1)
	go func() { result <- relayReport(r, stderr) }()
	select {
	case err = <-result:
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-result
		_ = cmd.Wait()
		return ErrStoppedStarting
	}
	if err == nil {
		return cmd.Process.Release()
	}
	_ = cmd.Wait()
	return err
}

// relayReport copies the log lines of a detached daemon's report to
// stderr until it says that it serves (nil) or why it failed.
func relayReport(r io.Reader, stderr io.Writer) error {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		switch {
		case strings.HasPrefix(line, reportLog):
			_, _ = io.WriteString(stderr, line[len(reportLog):])
		case line == reportReady+"\n":
			return nil
		case strings.HasPrefix(line, reportFailed):
			rest, _ := io.ReadAll(io.LimitReader(br, 64<<10))
			return errors.New(strings.TrimSpace(line[len(reportFailed):] + string(rest)))
		}
		if err != nil {
			return errors.New("daemon: exited before it was ready")
		}
	}
}

// A Reporter tells the process that detached this one whether it came
// up, and carries this one's log lines to it until then. Outside a
// detached start it does nothing. Its methods are safe for concurrent
// use.
type Reporter struct {
	mu sync.Mutex
	f  *os.File
	// detached stays true after the report is finished.
	detached bool
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
	return &Reporter{f: os.NewFile(uintptr(fd), "ready"), detached: true}
}

// Detached reports whether this process was started by Detach.
func (r *Reporter) Detached() bool { return r.detached }

// Ready reports success.
func (r *Reporter) Ready() { r.finish(reportReady + "\n") }

// Failed reports why the daemon could not start, and returns err as a
// ReportedError when there was someone to report it to.
func (r *Reporter) Failed(err error) error {
	if !r.finish(reportFailed + err.Error() + "\n") {
		return err
	}
	return &ReportedError{err}
}

// logLine passes one log line (ending in a newline) to the starting
// process while the report is open.
func (r *Reporter) logLine(line []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		_, _ = r.f.Write(append([]byte(reportLog), line...))
	}
}

func (r *Reporter) finish(msg string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return false
	}
	_, _ = r.f.WriteString(msg)
	_ = r.f.Close()
	r.f = nil
	return true
}
