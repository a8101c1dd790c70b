package lifetime

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/portmapd/portmapd/internal/lifecycle"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/registry"
)

// ErrRunning reports a second Run of a Keeper while one is under way.
var ErrRunning = errors.New("lifetime: already running")

// Config configures a Keeper: the daemon's flags for watching processes
// and pruning, as plain values.
type Config struct {
	// Logger receives the log; nothing is logged when nil.
	Logger *slog.Logger
	// ProcRoot is where /proc is mounted, DefaultProcRoot when empty.
	ProcRoot string
	// MaxPidfds is how many processes are watched through a pidfd at
	// once; the others are polled. DefaultMaxPidfds() when zero.
	MaxPidfds int
	// PollInterval is how often polled processes are checked, and so
	// how late their end may be seen; DefaultPollInterval when zero.
	PollInterval time.Duration
	// NoPrune leaves RPC registrations alone: only named services end,
	// with their process.
	NoPrune bool
	// PruneGrace is how long after registering a service may take to
	// bind before its RPC registration can be removed.
	PruneGrace time.Duration
	// PruneInterval is the time between checks of the RPC registrations;
	// DefaultPruneInterval when zero.
	PruneInterval time.Duration
	// Interfaces lists this host's addresses, for telling which RPC
	// registrations a port check can judge; ifaddrs.ReadSource when nil.
	Interfaces ifaddrs.Source
	// Observer, when set, is told of every registration the keeper
	// removes and every process polled for want of a pidfd, for
	// metrics.
	Observer Observer
}

// Causes of a removal, as an Observer's Removed names them.
const (
	// CauseProcessExited: the registering process exited (and, for an
	// RPC registration, nothing is bound to its port).
	CauseProcessExited = "process_exited"
	// CauseUnbound: no registering process is known, and nothing has
	// been bound to the port for UnknownMisses checks.
	CauseUnbound = "unbound"
	// CauseUnwatchable: the process could not be watched.
	CauseUnwatchable = "unwatchable"
)

// An Observer is told what the Keeper does on its own, for counting (the
// daemon's metrics). It must only count and return.
type Observer interface {
	// Removed is told of each registration removed: kind "rpc" or
	// "named", cause a Cause constant.
	Removed(kind, cause string)
	// LimitHit is told of each process polled because the pidfd budget
	// (MaxPidfds) is spent: where "lifetime", limit "pidfds", action
	// "polled".
	LimitHit(where, limit, action string)
}

// removed tells o, when there is one, of n removals of kind for cause.
func removed(o Observer, kind, cause string, n int) {
	if o == nil {
		return
	}
	for range n {
		o.Removed(kind, cause)
	}
}

// A Keeper ends registrations when their service is gone. It watches the
// process of every named service and removes the process's services as
// soon as it exits; it prunes the RPC registrations whose service is gone
// (see the package comment); and at a restart it restores only the named
// services whose process still runs.
//
// New opens what it needs but starts nothing: Run does the work until its
// context ends, and Close releases everything. Its methods are safe for
// concurrent use.
type Keeper struct {
	reg      *registry.Registry
	log      *slog.Logger
	obs      Observer // nil when none
	procRoot string
	w        *watcher
	// prune is nil when pruning is off.
	prune *pruner

	// mu orders each change of whether a process is watched with the
	// registry's count of its services, which it reads: Register and
	// Deregistered change the registry first, then make the watch agree
	// with the count under mu, so whichever comes last sees the final
	// count, and a process's last deregistration and its next
	// registration cannot race on whether it is watched.
	mu sync.Mutex

	life lifecycle.Guard
}

// New returns a Keeper of reg's registrations. It opens the process
// watcher's epoll set, and starts no goroutine.
func New(reg *registry.Registry, cfg Config) (*Keeper, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	w, err := newWatcher(watcherConfig{Logger: cfg.Logger, ProcRoot: cfg.ProcRoot, MaxPidfds: cfg.MaxPidfds, PollInterval: cfg.PollInterval, Observer: cfg.Observer})
	if err != nil {
		return nil, err
	}
	k := &Keeper{reg: reg, log: cfg.Logger, procRoot: cfg.ProcRoot, w: w, obs: cfg.Observer}
	if !cfg.NoPrune {
		k.prune = newPruner(reg, pruneConfig{Grace: cfg.PruneGrace, Interval: cfg.PruneInterval, ProcRoot: cfg.ProcRoot,
			Interfaces: cfg.Interfaces, Logger: cfg.Logger, Observer: cfg.Observer})
	}
	return k, nil
}

// Run removes registrations whose service is gone until ctx is done or
// Close is called, and then returns nil: the services of watched processes
// as they exit, and RPC registrations as the pruner finds them gone. A
// process that exited before Run, once Register or Restore watched it, is
// seen as soon as Run starts (at its first poll, when watched without a
// pidfd). Run fails at once with ErrClosed after Close, and with
// ErrRunning while another Run is under way; it returns an error of its
// own only if the kernel fails it.
func (k *Keeper) Run(ctx context.Context) error {
	ctx, end, err := k.life.Start(ctx, ErrClosed, ErrRunning)
	if err != nil {
		return err
	}
	defer end()
	// The pruner stops when the watcher does, whichever ends first.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if k.prune != nil {
		wg.Go(func() { k.prune.run(ctx) })
	}
	err = k.w.run(ctx)
	cancel()
	wg.Wait()
	return err
}

// Close ends Run, waits for it to return and releases every pidfd. The
// registrations stay in the registry.
func (k *Keeper) Close() error {
	if !k.life.Close() {
		return nil
	}
	return k.w.Close()
}

// Watched returns how many processes it watches.
func (k *Keeper) Watched() int { return k.w.Len() }

// Open opens a pidfd for pid and reads the process's identity from /proc.
// It fails with ErrGone when the process has exited, including when it
// exited after the pidfd was taken, in which case /proc may have described
// another process that reused the pid.
func (k *Keeper) Open(pid int32) (*Handle, error) { return openProcess(k.procRoot, pid) }

// FromPidfd takes ownership of fd, a pidfd for pid (as SO_PEERPIDFD gives
// one), and reads the process's identity.
func (k *Keeper) FromPidfd(fd int, pid int32) (*Handle, error) {
	return fromPidfd(k.procRoot, fd, pid)
}

// Register registers svcs for h's process on behalf of c, as
// registry.RegisterNamed does, and watches the process so that its
// services are removed when it exits. It takes h over.
func (k *Keeper) Register(c registry.Caller, h *Handle, svcs []registry.Service) ([]registry.Service, error) {
	p := registry.Process{PID: h.PID, UID: h.UID, GID: h.GID, Start: h.Start, Exe: h.Exe}
	added, err := k.reg.RegisterNamed(c, p, svcs)
	if err != nil {
		h.Close()
		return nil, err
	}
	if err := k.watch(h); err != nil {
		return nil, err
	}
	return added, nil
}

// Deregistered stops watching the processes that removed, services just
// taken out of the registry, leave with none.
func (k *Keeper) Deregistered(removed []registry.Service) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, r := range removed {
		if k.reg.ProcessServices(r.PID, r.Start) == 0 {
			k.w.Unwatch(Key{r.PID, r.Start})
		}
	}
}

// watch watches h's process while the registry holds services of it, and
// takes h over. When it cannot, it removes the process's services, which
// would otherwise outlive it, and says why.
func (k *Keeper) watch(h *Handle) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.reg.ProcessServices(h.PID, h.Start) == 0 {
		// Nothing was added, or it was deregistered meanwhile.
		h.Close()
		return nil
	}
	if _, err := k.w.Watch(h, k.processGone); err != nil {
		dropped := k.reg.DropProcess(h.PID, h.Start)
		removed(k.obs, "named", CauseUnwatchable, len(dropped))
		for _, g := range dropped {
			k.log.Warn("deregistered: cannot watch the process", "service", g.Name, "endpoint", g.Endpoint(), "pid", g.PID, exeAttr(g.Exe), "err", err)
		}
		return err
	}
	return nil
}

// processGone is called by the watcher when a registering process exits.
func (k *Keeper) processGone(info Info) {
	dropped := k.reg.DropProcess(info.PID, info.Start)
	removed(k.obs, "named", CauseProcessExited, len(dropped))
	for _, g := range dropped {
		k.log.Info("deregistered: process exited", "service", g.Name, "endpoint", g.Endpoint(), "pid", g.PID, exeAttr(g.Exe))
	}
}

// Restore puts saved registrations back into the registry, as
// registry.Restore does, but for the named services whose process no
// longer runs: their pid is gone, or belongs to a process of another start
// time or executable. It watches the processes of the services it
// restores, as Register does, and returns how many entries and services it
// added and how many services it left out. The RPC entries come back as
// they were saved; the pruner judges them once Run runs.
func (k *Keeper) Restore(entries []registry.Entry, svcs []registry.Service) (nEntries, nServices, dead int) {
	handles := map[Key]*Handle{}
	gone := map[Key]bool{}
	live := make([]registry.Service, 0, len(svcs))
	for _, s := range svcs {
		key := Key{PID: s.PID, Start: s.Start}
		h := handles[key]
		if h == nil && !gone[key] {
			var err error
			if h, err = openProcess(k.procRoot, s.PID); err != nil {
				gone[key] = true
			} else {
				handles[key] = h
			}
		}
		if gone[key] || !sameProcess(h.Info, s.Process) {
			dead++
			continue
		}
		live = append(live, s)
	}
	nEntries, nServices = k.reg.Restore(entries, live)
	for _, h := range handles {
		// A process none of whose services came back is not watched;
		// a failure is logged, and the other processes are still
		// watched.
		_ = k.watch(h)
	}
	return nEntries, nServices, dead
}

// sameProcess reports whether info, read from /proc, is the process p
// was saved as: the same start time, and the same executable where both
// are known (the kernel does not say for another user's process to a
// daemon that has given up root).
func sameProcess(info Info, p registry.Process) bool {
	return info.Start == p.Start && (p.Exe == "" || info.Exe == "" || info.Exe == p.Exe)
}

// every calls fn every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// exeAttr is a log line's exe attribute, left out when the kernel would
// not say what the process runs (another user's, to a daemon that has
// given up root).
func exeAttr(exe string) slog.Attr {
	if exe == "" {
		return slog.Attr{}
	}
	return slog.String("exe", exe)
}
