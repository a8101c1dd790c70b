// Package lifecycle is the Run and Close of the daemon's long-running
// parts (the health Checker, the lifetime Keeper): their constructor starts
// nothing, one Run at a time works until its context ends or Close is
// called, and Close ends the Run under way and waits for it.
package lifecycle

import (
	"context"
	"sync"
)

// A Guard keeps that contract for the part that holds it. The zero Guard
// is ready for use; its methods are safe for concurrent use.
type Guard struct {
	mu     sync.Mutex
	closed bool
	// stop ends the Run under way; nil when there is none.
	stop context.CancelFunc
	// running counts the Run under way and the goroutines of Go.
	running sync.WaitGroup
}

// Start begins a Run under ctx. It returns the context the Run works
// under, which Close cancels, and end, which the Run must call when it
// returns. It fails with errClosed after Close and with errRunning while
// another Run is under way: the holder's errors, which name it.
func (g *Guard) Start(ctx context.Context, errClosed, errRunning error) (runCtx context.Context, end func(), err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return nil, nil, errClosed
	case g.stop != nil:
		return nil, nil, errRunning
	}
	runCtx, cancel := context.WithCancel(ctx)
	g.stop = cancel
	g.running.Add(1)
	return runCtx, func() {
		cancel()
		g.mu.Lock()
		g.stop = nil
		g.mu.Unlock()
		g.running.Done()
	}, nil
}

// Running reports whether a Run is under way.
func (g *Guard) Running() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stop != nil
}

// Go runs f in a goroutine that Close waits for as it waits for Run. Only
// a Run under way may call it.
func (g *Guard) Go(f func()) { g.running.Go(f) }

// Close ends the Run under way, and waits for it and for the goroutines of
// Go to return. It reports whether this was the first Close: the holder
// releases what it holds then, and only then.
func (g *Guard) Close() (first bool) {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return false
	}
	g.closed = true
	if g.stop != nil {
		g.stop()
	}
	g.mu.Unlock()
	g.running.Wait()
	return true
}
