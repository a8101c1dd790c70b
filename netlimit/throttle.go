package netlimit

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// DefaultLogInterval is how often a LogThrottle writes at most one line.
const DefaultLogInterval = 10 * time.Second

// A LogThrottle reports events that an attacker can cause at will (a
// refused connection, a withheld reply) in at most one line per interval,
// so that a flood cannot flood the log too. The first event after a quiet
// interval is logged at once; those that follow are counted by reason and
// reported together when the interval ends. Its methods are safe for
// concurrent use.
type LogThrottle struct {
	log      *slog.Logger
	level    slog.Level
	msg      string
	attrs    []any
	interval time.Duration

	mu      sync.Mutex
	last    time.Time
	counts  map[string]int
	pending *time.Timer
}

// NewLogThrottle returns a LogThrottle that writes msg with attrs and the
// counts of each reason at level to log (nothing when log is nil), at most
// once per interval (DefaultLogInterval when 0).
func NewLogThrottle(log *slog.Logger, level slog.Level, msg string, interval time.Duration, attrs ...any) *LogThrottle {
	if interval <= 0 {
		interval = DefaultLogInterval
	}
	return &LogThrottle{log: log, level: level, msg: msg, attrs: attrs, interval: interval, counts: map[string]int{}}
}

// Note counts one event for reason.
func (t *LogThrottle) Note(reason string) {
	if t == nil || t.log == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counts[reason]++
	if t.pending != nil {
		return
	}
	if wait := t.interval - time.Since(t.last); wait > 0 {
		t.pending = time.AfterFunc(wait, t.Flush)
		return
	}
	t.writeLocked()
}

// Flush writes what has been counted and not yet written, at once.
func (t *LogThrottle) Flush() {
	if t == nil || t.log == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending != nil {
		t.pending.Stop()
		t.pending = nil
	}
	if len(t.counts) > 0 {
		t.writeLocked()
	}
}

func (t *LogThrottle) writeLocked() {
	args := slices.Clone(t.attrs)
	reasons := make([]string, 0, len(t.counts))
	for r := range t.counts {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		args = append(args, r, t.counts[r])
	}
	args = append(args, "within", t.interval)
	clear(t.counts)
	t.last = time.Now()
	t.log.Log(context.Background(), t.level, t.msg, args...)
}
