package lifetime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrClosed reports a Keeper, or its watcher, that has been closed.
var ErrClosed = errors.New("lifetime: closed")

// A Key names one process for the life of the system.
type Key struct {
	PID   int32
	Start uint64
}

// Key returns the handle's process key.
func (h *Handle) Key() Key { return Key{h.PID, h.Start} }

// A watch is one watched process: through its pidfd (h holds it and token
// names it in epoll events), or, when polled, by its pid and start time
// (h's pidfd is closed and token is 0).
type watch struct {
	h     *Handle
	token uint32
	gone  func(Info)
}

func (wt *watch) isPolled() bool { return wt.token == wakeToken }

// Defaults of the watcher's settings in Config.
const (
	DefaultPollInterval = 2 * time.Second
	// minPidfds is the smallest default pidfd budget, whatever
	// RLIMIT_NOFILE says.
	minPidfds = 16
)

// watcherConfig configures a watcher.
type watcherConfig struct {
	// Logger receives the watcher's log; nothing is logged when nil.
	Logger *slog.Logger
	// ProcRoot is where /proc is mounted, DefaultProcRoot when empty.
	ProcRoot string
	// MaxPidfds is how many processes are watched through a pidfd at
	// once; the others are polled. DefaultMaxPidfds when zero.
	MaxPidfds int
	// PollInterval is how often polled processes are checked, and so
	// how late their end may be seen; DefaultPollInterval when zero.
	PollInterval time.Duration
	// Observer, when set, is told of each process polled for want of a
	// pidfd.
	Observer Observer
}

// DefaultMaxPidfds returns a quarter of the soft RLIMIT_NOFILE as it is
// now (so call it after raising the limit), and at least 16: the rest is
// left for connections, the journal and /proc reads.
func DefaultMaxPidfds() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return minPidfds
	}
	const most = 1 << 20 // RLIM_INFINITY, or a limit that might as well be
	return int(max(min(rl.Cur/4, most), minPidfds))
}

// A watcher calls a function when a watched process exits. While it runs,
// one goroutine waits on an epoll set holding the pidfds of up to
// MaxPidfds processes, which costs a descriptor each and no polling. Past
// that budget, processes are polled instead: every PollInterval their pid
// and start time are looked up in /proc, which costs no descriptor to
// hold, and they move to a pidfd when the budget frees up. Its methods are
// safe for concurrent use; processes may be watched before it runs, and
// their exits are seen once it does.
type watcher struct {
	log       *slog.Logger
	obs       Observer // nil when none
	procRoot  string
	maxPidfds int
	interval  time.Duration
	epfd      int
	// wake is an eventfd that the end of run writes to end the wait.
	wake int

	mu      sync.Mutex
	closed  bool
	next    uint32
	byKey   map[Key]*watch
	byToken map[uint32]*watch
	polled  map[Key]*watch
}

// wakeToken marks the eventfd in the epoll set; watch tokens start above it.
const wakeToken = 0

// newWatcher returns a watcher, with its epoll set and eventfd open: run
// runs it, and Close releases them.
func newWatcher(cfg watcherConfig) (*watcher, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.MaxPidfds <= 0 {
		cfg.MaxPidfds = DefaultMaxPidfds()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("lifetime: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("lifetime: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeToken}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, fmt.Errorf("lifetime: epoll_ctl: %w", err)
	}
	w := &watcher{
		log:       log,
		obs:       cfg.Observer,
		procRoot:  cfg.ProcRoot,
		maxPidfds: cfg.MaxPidfds,
		interval:  cfg.PollInterval,
		epfd:      epfd,
		wake:      wake,
		next:      wakeToken + 1,
		byKey:     make(map[Key]*watch),
		byToken:   make(map[uint32]*watch),
		polled:    make(map[Key]*watch),
	}
	return w, nil
}

// run waits for watched processes to exit, and polls those without a
// pidfd, until ctx is done. It returns nil then, or the error that ended
// the wait. Call it from one goroutine at a time, and close the watcher
// only once it has returned.
func (w *watcher) run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() {
		<-ctx.Done()
		w.wakeUp()
	})
	wg.Go(func() { w.poll(ctx) })
	return w.wait(ctx)
}

// wakeUp makes the epoll wait return.
func (w *watcher) wakeUp() {
	one := [8]byte{7: 1}
	if _, err := unix.Write(w.wake, one[:]); err != nil {
		// Only a counter at its maximum refuses, and that is awake.
		w.log.Debug("cannot wake the process watcher", "err", err)
	}
}

// Watch arranges for gone to be called, once and from one of run's
// goroutines, when h's process exits: at once if it already has, or with
// the pidfd budget spent, at the next poll. The watcher owns h from then
// on. When the process is already watched, h is closed and Watch reports
// false: the first gone function stays.
func (w *watcher) Watch(h *Handle, gone func(Info)) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		h.Close()
		return false, ErrClosed
	}
	if _, ok := w.byKey[h.Key()]; ok {
		h.Close()
		return false, nil
	}
	wt := &watch{h: h, gone: gone}
	if len(w.byToken) >= w.maxPidfds {
		if w.obs != nil {
			w.obs.LimitHit("lifetime", "pidfds", "polled")
		}
		h.Close()
		w.byKey[h.Key()] = wt
		w.polled[h.Key()] = wt
		return true, nil
	}
	if err := w.addPidfd(wt); err != nil {
		h.Close()
		return false, err
	}
	w.byKey[h.Key()] = wt
	return true, nil
}

// addPidfd adds wt's pidfd to the epoll set; w.mu must be held.
func (w *watcher) addPidfd(wt *watch) error {
	h := wt.h
	// Tokens, not descriptors, identify watches in events: a descriptor
	// number closed by Unwatch may be reused before a stale event for it
	// is handled.
	tok := w.next
	w.next++
	if w.next == wakeToken {
		w.next++
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(tok)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, h.fd, &ev); err != nil {
		return fmt.Errorf("lifetime: watch pid %d: epoll_ctl: %w", h.PID, err)
	}
	wt.token = tok
	w.byToken[tok] = wt
	return nil
}

// Watching reports whether k's process is being watched.
func (w *watcher) Watching(k Key) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.byKey[k]
	return ok
}

// Unwatch stops watching k's process without calling its function, and
// reports whether it was watched.
func (w *watcher) Unwatch(k Key) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, ok := w.byKey[k]
	if !ok {
		return false
	}
	w.drop(wt)
	return true
}

// drop forgets wt and closes its pidfd; w.mu must be held.
func (w *watcher) drop(wt *watch) {
	delete(w.byKey, wt.h.Key())
	if wt.isPolled() {
		delete(w.polled, wt.h.Key())
		return
	}
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, wt.h.fd, nil)
	wt.h.Close()
	delete(w.byToken, wt.token)
}

// Len returns the number of watched processes.
func (w *watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byKey)
}

// Counts returns how many watched processes hold a pidfd and how many are
// polled.
func (w *watcher) Counts() (pidfds, polled int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byToken), len(w.polled)
}

// Close releases every pidfd without calling any function, and the epoll
// set; call it once run has returned. Watch fails from then on.
func (w *watcher) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	for _, wt := range w.byKey {
		w.drop(wt)
	}
	unix.Close(w.wake)
	return unix.Close(w.epfd)
}

// wait calls the functions of watched processes as their pidfds report
// an exit, until a wake-up finds ctx done.
func (w *watcher) wait(ctx context.Context) error {
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("lifetime: process watcher: epoll_wait: %w", err)
		}
		var exited []*watch
		woken := false
		w.mu.Lock()
		for _, ev := range events[:n] {
			tok := uint32(ev.Fd)
			if tok == wakeToken {
				woken = true
				continue
			}
			if wt, ok := w.byToken[tok]; ok {
				w.drop(wt)
				exited = append(exited, wt)
			}
		}
		w.mu.Unlock()
		for _, wt := range exited {
			w.log.Debug("watched process exited", "pid", wt.h.PID, "exe", wt.h.Exe)
			wt.gone(wt.h.Info)
		}
		if woken {
			// Reset the eventfd, which a run that ended before this
			// one may have left set.
			var buf [8]byte
			unix.Read(w.wake, buf[:])
			if ctx.Err() != nil {
				return nil
			}
		}
	}
}

// poll checks the polled processes every interval until ctx is done.
func (w *watcher) poll(ctx context.Context) { every(ctx, w.interval, w.pollOnce) }

// pollOnce ends the polled watches whose process is gone, and moves
// others to a pidfd while the budget allows.
func (w *watcher) pollOnce() {
	w.mu.Lock()
	check := make([]*watch, 0, len(w.polled))
	for _, wt := range w.polled {
		check = append(check, wt)
	}
	room := w.maxPidfds - len(w.byToken)
	w.mu.Unlock()
	var exited []*watch
	promote := map[*watch]*Handle{}
	for _, wt := range check {
		k := wt.h.Key()
		running, err := running(w.procRoot, k)
		if err != nil {
			// /proc could not tell; keep the registration.
			w.log.Debug("cannot poll watched process", "pid", k.PID, "err", err)
			continue
		}
		if !running {
			exited = append(exited, wt)
			continue
		}
		if len(promote) < room {
			h, err := openProcess(w.procRoot, k.PID)
			switch {
			case errors.Is(err, ErrGone) || err == nil && h.Start != k.Start:
				if h != nil {
					h.Close()
				}
				exited = append(exited, wt)
			case err == nil:
				promote[wt] = h
			}
		}
	}
	w.mu.Lock()
	ended := exited[:0]
	for _, wt := range exited {
		// Unwatch, or Close, may have ended it meanwhile.
		if w.polled[wt.h.Key()] == wt && !w.closed {
			w.drop(wt)
			ended = append(ended, wt)
		}
	}
	for wt, h := range promote {
		if w.polled[wt.h.Key()] != wt || w.closed || len(w.byToken) >= w.maxPidfds {
			h.Close()
			continue
		}
		moved := &watch{h: h, gone: wt.gone}
		if err := w.addPidfd(moved); err != nil {
			h.Close()
			continue
		}
		delete(w.polled, h.Key())
		w.byKey[h.Key()] = moved
	}
	w.mu.Unlock()
	for _, wt := range ended {
		w.log.Debug("polled process exited", "pid", wt.h.PID, "exe", wt.h.Exe)
		wt.gone(wt.h.Info)
	}
}
