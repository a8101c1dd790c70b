// Package audit writes the audit trail of the registry's changes: one line
// at INFO for every SET, UNSET, HTTP registration and deregistration,
// saying who asked (uid, pid and executable of a local caller, or the
// remote address), what, and the result, refusals included. The lines a
// source may cause are bounded (netlimit.LineLimiter), so that a caller
// changing registrations in a loop, or a flood of refused requests,
// cannot fill the disk: past the bound its lines are counted and
// summarized.
//
// Both faces log here: rpcbind's SET and UNSET handlers and httpmap's
// registration requests. The daemon makes one Logger for both.
package audit

import (
	"context"
	"log/slog"
	"os"
	"strconv"

	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/registry"
)

// Message is the message of every audit line, so that the trail can be
// picked out of the log (journalctl -u portmapd | grep 'msg=audit').
const Message = "audit"

// A Logger writes audit lines. A nil Logger writes nothing. Its methods
// are safe for concurrent use.
type Logger struct {
	log      *slog.Logger
	lines    *netlimit.LineLimiter
	procRoot string
}

// Options configure a Logger.
type Options struct {
	// Burst and PerMinute bound each source's lines; the
	// netlimit.LineLimiter defaults when 0.
	Burst, PerMinute int
	// ProcRoot is where /proc is mounted, for a caller's executable;
	// "/proc" when empty.
	ProcRoot string
}

// New returns a Logger writing to log.
func New(log *slog.Logger, opts Options) *Logger {
	l := &Logger{log: log, procRoot: opts.ProcRoot}
	if l.procRoot == "" {
		l.procRoot = "/proc"
	}
	l.lines = netlimit.NewLineLimiter(opts.Burst, opts.PerMinute, func(source string, n uint64) {
		log.Info(Message, "source", source, "not_logged", n, "why", "this source's audit lines are rate-limited")
	})
	return l
}

// Close writes what the rate limit held back.
func (l *Logger) Close() {
	if l != nil {
		l.lines.Flush()
	}
}

// A Result is how a change ended.
type Result string

// Results.
const (
	// Done: the registry changed as asked.
	Done Result = "done"
	// Unchanged: the registry was right already, or the request was
	// answered FALSE as rpcbind answers it (an entry another holds, an
	// UNSET of an entry another owns).
	Unchanged Result = "unchanged"
	// Refused: a rule or a cap refused the change (the reason is
	// logged as err).
	Refused Result = "refused"
	// Failed: the request was malformed or could not be carried out.
	Failed Result = "failed"
)

// Change logs that c asked for op (set, unset, register, deregister) on
// what (attributes naming the registration) and how it ended, with err
// saying why when it was refused or failed.
func (l *Logger) Change(c registry.Caller, op string, what []slog.Attr, result Result, err error) {
	if l == nil || c.Transport == registry.Internal {
		return
	}
	source := Source(c)
	ok, notLogged := l.lines.Allow(source)
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, len(what)+8)
	attrs = append(attrs, slog.String("op", op))
	attrs = append(attrs, what...)
	attrs = append(attrs, slog.String("result", string(result)))
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	attrs = append(attrs, l.who(c)...)
	if notLogged > 0 {
		attrs = append(attrs, slog.Uint64("not_logged_before", notLogged))
	}
	l.log.LogAttrs(context.Background(), slog.LevelInfo, Message, attrs...)
}

// Source is the key a caller's lines are bounded by: its uid over a local
// socket, its address (an IPv6 /64) over the network.
func Source(c registry.Caller) string {
	switch {
	case c.Transport == registry.Local && c.Cred != nil:
		return "uid " + strconv.FormatUint(uint64(c.Cred.UID), 10)
	case c.Transport == registry.Local:
		return "local"
	}
	if p, limited := netlimit.SourceKey(c.Addr.Addr()); limited {
		return p.String()
	}
	return c.Addr.Addr().String()
}

// who describes the caller: uid, gid, pid and executable of a local one,
// the address of a network one.
func (l *Logger) who(c registry.Caller) []slog.Attr {
	if c.Transport != registry.Local {
		return []slog.Attr{slog.String("from", c.Addr.String())}
	}
	if c.Cred == nil {
		return []slog.Attr{slog.String("from", "local socket, credentials unknown")}
	}
	attrs := []slog.Attr{slog.Uint64("uid", uint64(c.Cred.UID)), slog.Int64("pid", int64(c.Cred.PID))}
	if exe, err := os.Readlink(l.procRoot + "/" + strconv.Itoa(int(c.Cred.PID)) + "/exe"); err == nil {
		attrs = append(attrs, slog.String("exe", exe))
	}
	return attrs
}
