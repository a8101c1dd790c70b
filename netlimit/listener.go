package netlimit

import (
	"net"
	"sync"
	"time"
)

// Bounds of the pause between failed accepts.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// A Listener admits the connections of a net.Listener through a Limiter,
// closing at once those it refuses, and waits out a failing accept (no
// descriptor left: EMFILE, ENFILE) with growing pauses instead of
// spinning on it, the failure of CVE-2021-46828. Out of descriptors, it
// first evicts the longest-idle network connection of the budget, so that
// a local socket's connection can still be accepted.
type Listener struct {
	net.Listener
	lim *Limiter

	once   sync.Once
	closed chan struct{}
}

// NewListener returns ln admitting through lim, which several listeners
// may share; closing the listener leaves lim to its owner.
func NewListener(ln net.Listener, lim *Limiter) *Listener {
	return &Listener{Listener: ln, lim: lim, closed: make(chan struct{})}
}

// Limiter returns the listener's limiter.
func (l *Listener) Limiter() *Limiter { return l.lim }

// AcceptSlot waits for the next connection within the limits and returns
// it with its place, which the caller marks Busy and Idle as it serves
// and releases when it closes the connection.
func (l *Listener) AcceptSlot() (net.Conn, *Slot, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !IsTemporary(err) {
				return nil, nil, err
			}
			if outOfDescriptors(err) {
				if l.lim.b.EvictIdle() {
					// A descriptor is being freed: try again soon.
					backoff = 0
				}
				l.lim.log.Note("accept_failed_no_descriptor")
				observe(l.lim.cfg.Observer, l.lim.cfg.Name, ReasonDescriptors, ActionAcceptFailed)
			} else {
				l.lim.log.Note("accept_failed")
			}
			backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
			select {
			case <-time.After(backoff):
			case <-l.closed:
				return nil, nil, net.ErrClosed
			}
			continue
		}
		backoff = 0
		slot, err := l.lim.Admit(remoteAddr(c), func() { _ = c.Close() })
		if err != nil {
			_ = c.Close()
			continue
		}
		return c, slot, nil
	}
}

// Close closes the listener; a pending AcceptSlot returns.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}
