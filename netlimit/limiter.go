package netlimit

import (
	"container/list"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Reasons a connection is refused or evicted, as the log counts them.
const (
	ReasonTotal       = "total"       // the listener's MaxConns
	ReasonPerSource   = "per_source"  // the source's MaxPerSource
	ReasonDescriptors = "descriptors" // the shared Budget
)

// A RefusedError reports a connection that Admit turned away because a
// limit was reached and no idle connection could make room.
type RefusedError struct {
	Limit  string // one of the Reason constants
	Source netip.Addr
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("netlimit: connection from %v refused: %s limit reached and no idle connection to evict", e.Source, e.Limit)
}

// A Budget is how many network connections the listeners that share it
// may hold together: the process's file descriptors less a reserve kept
// for the local sockets and the daemon's own files. Local listeners'
// connections are not charged to it. One lock guards the budget and the
// state of every Limiter made with it, so that when the budget is spent
// the oldest idle connection of any of them can make room.
type Budget struct {
	mu       sync.Mutex
	max      int // 0: unlimited
	used     int
	seq      uint64 // orders connections by when they last became idle
	limiters map[*Limiter]struct{}
}

// NewBudget returns a Budget of max connections; 0 means no limit.
func NewBudget(max int) *Budget {
	return &Budget{max: max, limiters: map[*Limiter]struct{}{}}
}

// Max returns the number of network connections the budget allows, 0 for
// no limit.
func (b *Budget) Max() int { return b.max }

// Used returns the number of network connections charged to the budget.
func (b *Budget) Used() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Idle returns the number of network connections waiting for their next
// request, which a new connection may evict.
func (b *Budget) Idle() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for l := range b.limiters {
		if !l.cfg.Local {
			n += l.idle.Len()
		}
	}
	return n
}

// EvictIdle evicts the connection of a network (not local) listener that
// has been idle longest, to free its descriptor when accept failed for
// want of one. It reports whether there was one.
func (b *Budget) EvictIdle() bool {
	b.mu.Lock()
	v := b.oldestIdleLocked()
	if v != nil {
		v.l.dropLocked(v)
	}
	b.mu.Unlock()
	if v == nil {
		return false
	}
	v.l.noteLimit(ReasonDescriptors, ActionEvicted)
	v.evict()
	return true
}

func (b *Budget) oldestIdleLocked() *Slot {
	var oldest *Slot
	for l := range b.limiters {
		if l.cfg.Local {
			continue
		}
		if f := l.idle.Front(); f != nil {
			if s := f.Value.(*Slot); oldest == nil || s.idleSeq < oldest.idleSeq {
				oldest = s
			}
		}
	}
	return oldest
}

// Config sets a Limiter's limits.
type Config struct {
	// Name identifies the listener in the log (tcp, tcp6, http, ...).
	Name string
	// MaxConns caps the listener's open connections; 0 for no cap.
	MaxConns int
	// MaxPerSource caps the open connections from one source (see
	// SourceKey); 0 for no cap. Loopback sources are never capped.
	MaxPerSource int
	// Uncapped are sources with no per-source cap: reverse proxies that
	// speak for many clients.
	Uncapped []netip.Prefix
	// Local marks a listener whose peers are local processes (an AF_UNIX
	// socket): no per-source cap, and its connections are not charged to
	// the Budget, so that the reserve keeps them possible when network
	// peers have taken all they may.
	Local bool
	// Budget is shared with the other listeners; nil for a private
	// budget without limit.
	Budget *Budget
	// Logger receives the throttled account of refusals and evictions;
	// nothing is logged when nil.
	Logger *slog.Logger
	// LogInterval is the least time between two such lines;
	// DefaultLogInterval when 0.
	LogInterval time.Duration
	// Observer, when set, is told of each refusal and eviction.
	Observer Observer
}

// A Limiter admits a listener's connections within its limits. When a
// limit is reached, the connection that has been idle longest (waiting for
// its next request, not in the middle of one) makes room for the new one;
// only when none is idle is the new connection refused. Idle means a
// request can be lost only if it arrives in the instant of the eviction,
// and a client holding a connection it does not use is the one to
// reconnect.
type Limiter struct {
	cfg     Config
	b       *Budget
	n       int
	idle    list.List // of *Slot, idle longest first
	sources map[netip.Prefix]*source
	log     *LogThrottle
}

type source struct {
	n    int
	idle list.List // of *Slot, idle longest first
}

// New returns a Limiter with the limits of cfg. Close it when the
// listener is done.
func New(cfg Config) *Limiter {
	b := cfg.Budget
	if b == nil {
		b = NewBudget(0)
	}
	l := &Limiter{
		cfg:     cfg,
		b:       b,
		sources: map[netip.Prefix]*source{},
		log:     NewLogThrottle(cfg.Logger, slog.LevelWarn, "connection limits enforced", cfg.LogInterval, "listener", cfg.Name),
	}
	b.mu.Lock()
	b.limiters[l] = struct{}{}
	b.mu.Unlock()
	return l
}

// Close detaches the limiter from its budget and writes what its log has
// counted. Connections it admitted keep their places until released.
func (l *Limiter) Close() {
	l.b.mu.Lock()
	delete(l.b.limiters, l)
	l.b.mu.Unlock()
	l.log.Flush()
}

// Open returns the number of connections the limiter holds.
func (l *Limiter) Open() int {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	return l.n
}

// state is where a connection is in its life.
type state uint8

const (
	stateIdle state = iota // waiting for a request; may be evicted
	stateBusy              // reading or answering a request
	stateGone              // released or evicted
)

// A Slot is one admitted connection's place in its Limiter.
type Slot struct {
	l         *Limiter
	key       netip.Prefix
	keyed     bool
	state     state
	idleSeq   uint64
	idleElem  *list.Element
	srcElem   *list.Element
	evict     func()
	evictedBy string
}

// Admit gives a connection from src (the zero Addr for a local peer) a
// place, evicting the longest-idle connection of the source, the listener
// or the budget when one of their limits is reached. evict is called,
// without locks held, if this connection is later evicted in turn; it
// must make the connection's owner stop serving it (closing it will do).
// The new connection starts idle.
func (l *Limiter) Admit(src netip.Addr, evict func()) (*Slot, error) {
	key, keyed := SourceKey(src)
	keyed = keyed && !l.cfg.Local && !slices.ContainsFunc(l.cfg.Uncapped, func(p netip.Prefix) bool { return p.Contains(src.Unmap()) })
	var victims []*Slot
	l.b.mu.Lock()
	err := func() error {
		if ps := l.sources[key]; keyed && l.cfg.MaxPerSource > 0 && ps != nil && ps.n >= l.cfg.MaxPerSource {
			v := frontSlot(&ps.idle)
			if v == nil {
				return &RefusedError{Limit: ReasonPerSource}
			}
			l.evictLocked(v, ReasonPerSource)
			victims = append(victims, v)
		}
		if l.cfg.MaxConns > 0 && l.n >= l.cfg.MaxConns {
			v := frontSlot(&l.idle)
			if v == nil {
				return &RefusedError{Limit: ReasonTotal}
			}
			l.evictLocked(v, ReasonTotal)
			victims = append(victims, v)
		}
		if !l.cfg.Local && l.b.max > 0 && l.b.used >= l.b.max {
			v := l.b.oldestIdleLocked()
			if v == nil {
				return &RefusedError{Limit: ReasonDescriptors}
			}
			v.l.evictLocked(v, ReasonDescriptors)
			victims = append(victims, v)
		}
		return nil
	}()
	var s *Slot
	if err == nil {
		s = &Slot{l: l, key: key, keyed: keyed, evict: evict}
		l.n++
		if !l.cfg.Local {
			l.b.used++
		}
		if keyed {
			ps := l.sources[key]
			if ps == nil {
				ps = &source{}
				l.sources[key] = ps
			}
			ps.n++
		}
		s.idleLocked()
	}
	l.b.mu.Unlock()
	for _, v := range victims {
		v.l.noteLimit(v.evictedBy, ActionEvicted)
		v.evict()
	}
	if err != nil {
		if re, ok := err.(*RefusedError); ok {
			re.Source = src
			l.noteLimit(re.Limit, ActionRefused)
		}
		return nil, err
	}
	return s, nil
}

// noteLimit logs (throttled) and observes that limit made the limiter
// take action.
func (l *Limiter) noteLimit(limit, action string) {
	l.log.Note(action + "_" + limit)
	observe(l.cfg.Observer, l.cfg.Name, limit, action)
}

func frontSlot(l *list.List) *Slot {
	if f := l.Front(); f != nil {
		return f.Value.(*Slot)
	}
	return nil
}

// evictLocked takes v out of every count; its owner learns through
// v.evict, which the caller calls once the lock is released.
func (l *Limiter) evictLocked(v *Slot, reason string) {
	v.evictedBy = reason
	l.dropLocked(v)
}

// dropLocked removes s from its limiter's counts and lists.
func (l *Limiter) dropLocked(s *Slot) {
	if s.state == stateGone {
		return
	}
	s.unlistLocked()
	s.state = stateGone
	l.n--
	if !l.cfg.Local {
		l.b.used--
	}
	if s.keyed {
		ps := l.sources[s.key]
		ps.n--
		if ps.n == 0 {
			delete(l.sources, s.key)
		}
	}
}

func (s *Slot) unlistLocked() {
	if s.idleElem != nil {
		s.l.idle.Remove(s.idleElem)
		s.idleElem = nil
	}
	if s.srcElem != nil {
		s.l.sources[s.key].idle.Remove(s.srcElem)
		s.srcElem = nil
	}
}

func (s *Slot) idleLocked() {
	s.unlistLocked()
	s.state = stateIdle
	s.l.b.seq++
	s.idleSeq = s.l.b.seq
	s.idleElem = s.l.idle.PushBack(s)
	if s.keyed {
		s.srcElem = s.l.sources[s.key].idle.PushBack(s)
	}
}

// Busy marks the connection as serving a request, which keeps it from
// being evicted. It reports false when the connection has already been
// evicted (or released): its owner must then stop serving it.
func (s *Slot) Busy() bool {
	s.l.b.mu.Lock()
	defer s.l.b.mu.Unlock()
	if s.state == stateGone {
		return false
	}
	s.unlistLocked()
	s.state = stateBusy
	return true
}

// Idle marks the connection as waiting for its next request: from now it
// may be evicted to make room.
func (s *Slot) Idle() {
	s.l.b.mu.Lock()
	defer s.l.b.mu.Unlock()
	if s.state != stateGone {
		s.idleLocked()
	}
}

// Release gives the connection's place back. It may be called more than
// once, and after an eviction.
func (s *Slot) Release() {
	s.l.b.mu.Lock()
	defer s.l.b.mu.Unlock()
	s.l.dropLocked(s)
}
