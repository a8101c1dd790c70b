package proc

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrClosed reports a Watcher that has been closed.
var ErrClosed = errors.New("proc: watcher closed")

// A Key names one process for the life of the system.
type Key struct {
	PID   int32
	Start uint64
}

// Key returns the handle's process key.
func (h *Handle) Key() Key { return Key{h.PID, h.Start} }

type watch struct {
	h     *Handle
	token uint32
	gone  func(Info)
}

// A Watcher calls a function when a watched process exits. One goroutine
// waits on an epoll set holding every watched pidfd, so watching costs one
// descriptor per process and no polling. Its methods are safe for
// concurrent use.
type Watcher struct {
	log  *slog.Logger
	epfd int
	// wake is an eventfd that Close writes to end the wait.
	wake int
	done chan struct{}

	mu      sync.Mutex
	closed  bool
	next    uint32
	byKey   map[Key]*watch
	byToken map[uint32]*watch
}

// wakeToken marks the eventfd in the epoll set; watch tokens start above it.
const wakeToken = 0

// NewWatcher starts a Watcher. Close stops it.
func NewWatcher(log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("proc: epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("proc: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeToken}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(wake)
		unix.Close(epfd)
		return nil, fmt.Errorf("proc: epoll_ctl: %w", err)
	}
	w := &Watcher{
		log:     log,
		epfd:    epfd,
		wake:    wake,
		done:    make(chan struct{}),
		next:    wakeToken + 1,
		byKey:   make(map[Key]*watch),
		byToken: make(map[uint32]*watch),
	}
	go w.loop()
	return w, nil
}

// Watch arranges for gone to be called, once and from the Watcher's
// goroutine, when h's process exits; at once if it already has. The Watcher
// owns h from then on. When the process is already watched, h is closed
// and Watch reports false: the first gone function stays.
func (w *Watcher) Watch(h *Handle, gone func(Info)) (bool, error) {
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
		h.Close()
		return false, fmt.Errorf("proc: watch pid %d: epoll_ctl: %w", h.PID, err)
	}
	wt := &watch{h: h, token: tok, gone: gone}
	w.byKey[h.Key()] = wt
	w.byToken[tok] = wt
	return true, nil
}

// Watching reports whether k's process is being watched.
func (w *Watcher) Watching(k Key) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.byKey[k]
	return ok
}

// Unwatch stops watching k's process without calling its function, and
// reports whether it was watched.
func (w *Watcher) Unwatch(k Key) bool {
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
func (w *Watcher) drop(wt *watch) {
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, wt.h.fd, nil)
	wt.h.Close()
	delete(w.byKey, Key{wt.h.PID, wt.h.Start})
	delete(w.byToken, wt.token)
}

// Len returns the number of watched processes.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byKey)
}

// Close stops the Watcher and releases every pidfd without calling any
// function.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	var one = [8]byte{7: 1}
	if _, err := unix.Write(w.wake, one[:]); err != nil {
		return fmt.Errorf("proc: wake watcher: %w", err)
	}
	<-w.done
	w.mu.Lock()
	for _, wt := range w.byKey {
		w.drop(wt)
	}
	w.mu.Unlock()
	unix.Close(w.wake)
	return unix.Close(w.epfd)
}

func (w *Watcher) loop() {
	defer close(w.done)
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(w.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			w.log.Error("process watcher stopped", "err", err)
			return
		}
		var exited []*watch
		w.mu.Lock()
		for _, ev := range events[:n] {
			tok := uint32(ev.Fd)
			if tok == wakeToken {
				w.mu.Unlock()
				return
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
	}
}
