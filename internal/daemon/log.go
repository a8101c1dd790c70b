package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultLogFile is where a detached daemon logs when there is no syslog.
const DefaultLogFile = "/var/log/portmapd.log"

// NewLogger returns the daemon's logger: text records of level and above.
//
// In the foreground they go to stderr. When stderr is systemd's journal
// (JOURNAL_STREAM names it), each line goes without a time, which the
// journal records itself, and starts with the priority of its level as
// the journal reads it (<3> error, <4> warning, <6> info, <7> debug), so
// that journalctl -p filters and colours them. A process started by
// Detach (r says so) has no terminal once it serves, so its records go
//
//   - until it serves or fails, to the standard error of the command that
//     started it (through r), so that a failed start says why there;
//   - to syslog (/dev/log, which is the journal on systemd hosts), with
//     the priority of each record's level;
//   - where there is no syslog, appended to logFile instead, which also
//     receives the Go runtime's own last words (its standard error).
//
// logFile is opened now, before the daemon gives up root. If it cannot
// be, the first record says so, and what is logged after the start is
// lost.
func NewLogger(stderr io.Writer, level slog.Level, r *Reporter, logFile string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	journal := !r.Detached() && isJournal(stderr)
	if r.Detached() || journal {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if journal {
		sink := &journalSink{w: stderr}
		return slog.New(&leveledHandler{mu: &sync.Mutex{}, text: slog.NewTextHandler(sink, opts), sink: sink})
	}
	if !r.Detached() {
		return slog.New(slog.NewTextHandler(stderr, opts))
	}
	sink := &detachedSink{reporter: r}
	var fileErr error
	if sw, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "portmapd"); err == nil {
		sink.syslog = sw
	} else {
		sink.file, fileErr = openLogFile(logFile)
	}
	log := slog.New(&leveledHandler{mu: &sync.Mutex{}, text: slog.NewTextHandler(sink, opts), sink: sink})
	if fileErr != nil {
		log.Error("no syslog here (/dev/log), and the log file cannot be opened: nothing will be logged once portmapd serves", "err", fileErr,
			"fix", "run in the foreground with -f, or choose a log file with --log-file PATH")
	}
	return log
}

// openLogFile opens path for appending, creating it (0640) if need be,
// and makes it the process's standard error, so that a crash's trace
// lands there too. It refuses a path that is a symbolic link, or a file
// that is not a regular one of this user with one link, since whoever
// can write the directory might have put it there.
func openLogFile(path string) (*os.File, error) {
	if path == "" {
		return nil, fmt.Errorf("daemon: no log file (--log-file is empty)")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NOCTTY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("daemon: log file: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("daemon: log file %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 || int(st.Uid) != os.Geteuid() {
		f.Close()
		return nil, fmt.Errorf("daemon: log file %s: not a regular file of uid %d with one link", path, os.Geteuid())
	}
	_ = unix.Dup3(int(f.Fd()), 2, 0)
	return f, nil
}

// isJournal reports whether w is the stream JOURNAL_STREAM names
// ("DEVICE:INODE" of the journal's socket), as systemd.exec(5) says to
// check: the variable is inherited by processes whose stderr is
// elsewhere.
func isJournal(w io.Writer) bool {
	v := os.Getenv("JOURNAL_STREAM")
	f, ok := w.(*os.File)
	if v == "" || !ok {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return v == strconv.FormatUint(st.Dev, 10)+":"+strconv.FormatUint(st.Ino, 10)
}

// A leveledSink takes formatted records one per Write, knowing the level
// of the record being written.
type leveledSink interface {
	io.Writer
	setLevel(slog.Level)
}

// A leveledHandler is a TextHandler writing into a sink that knows the
// level of the record being written: for its syslog priority, or the
// journal's prefix.
type leveledHandler struct {
	// mu, shared by the handlers derived from one another, holds the
	// sink's level steady while a record is written.
	mu   *sync.Mutex
	text slog.Handler
	sink leveledSink
}

func (h *leveledHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *leveledHandler) Handle(ctx context.Context, rec slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sink.setLevel(rec.Level)
	return h.text.Handle(ctx, rec)
}

func (h *leveledHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &leveledHandler{mu: h.mu, text: h.text.WithAttrs(as), sink: h.sink}
}

func (h *leveledHandler) WithGroup(name string) slog.Handler {
	return &leveledHandler{mu: h.mu, text: h.text.WithGroup(name), sink: h.sink}
}

// A detachedSink takes the formatted records of a detached daemon, one
// per Write, and passes them on as NewLogger says.
type detachedSink struct {
	reporter *Reporter
	syslog   *syslog.Writer // nil where there is none
	file     *os.File       // without syslog; nil if it could not be opened
	// level is the level of the record being written; set under the
	// leveledHandler's mu.
	level slog.Level
}

func (s *detachedSink) setLevel(l slog.Level) { s.level = l }

// A journalSink writes each record to the journal's stream with the
// priority prefix of its level (sd-daemon(3)).
type journalSink struct {
	w     io.Writer
	level slog.Level
	buf   []byte
}

func (s *journalSink) setLevel(l slog.Level) { s.level = l }

func (s *journalSink) Write(p []byte) (int, error) {
	s.buf = append(append(s.buf[:0], journalPriority(s.level)...), p...)
	if _, err := s.w.Write(s.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// journalPriority is the prefix of a record of level l: syslog's
// priorities, as sd-daemon.h spells them.
func journalPriority(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "<3>"
	case l >= slog.LevelWarn:
		return "<4>"
	case l >= slog.LevelInfo:
		return "<6>"
	}
	return "<7>"
}

func (s *detachedSink) Write(p []byte) (int, error) {
	s.reporter.logLine(p)
	switch {
	case s.syslog != nil:
		s.toSyslog(p)
	case s.file != nil:
		_, _ = s.file.Write(p)
	}
	return len(p), nil
}

func (s *detachedSink) toSyslog(p []byte) {
	msg := string(p)
	switch {
	case s.level >= slog.LevelError:
		_ = s.syslog.Err(msg)
	case s.level >= slog.LevelWarn:
		_ = s.syslog.Warning(msg)
	case s.level >= slog.LevelInfo:
		_ = s.syslog.Info(msg)
	default:
		_ = s.syslog.Debug(msg)
	}
}
