package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"
)

var (
	errClosed  = errors.New("test: closed")
	errRunning = errors.New("test: already running")
)

// run is a Run that works until its context ends, with one goroutine of
// Go that does the same; started is closed once both are under way.
func run(g *Guard, started chan<- struct{}, finished *bool) error {
	ctx, end, err := g.Start(context.Background(), errClosed, errRunning)
	if err != nil {
		return err
	}
	defer end()
	worker := make(chan struct{})
	g.Go(func() {
		close(worker)
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond) // Close must wait for this
		*finished = true
	})
	<-worker
	close(started)
	<-ctx.Done()
	return nil
}

func TestGuard(t *testing.T) {
	tests := []struct {
		name string
		// act runs against a Guard whose Run is under way, and returns
		// the error a second Run gets then.
		act  func(t *testing.T, g *Guard) error
		want error
	}{
		{"second Run while one is under way", func(t *testing.T, g *Guard) error {
			_, _, err := g.Start(context.Background(), errClosed, errRunning)
			return err
		}, errRunning},
		{"Run after Close", func(t *testing.T, g *Guard) error {
			if !g.Close() {
				t.Error("first Close did not say so")
			}
			if g.Close() {
				t.Error("second Close said it was the first")
			}
			_, _, err := g.Start(context.Background(), errClosed, errRunning)
			return err
		}, errClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var g Guard
			started := make(chan struct{})
			var finished bool
			runErr := make(chan error, 1)
			go func() { runErr <- run(&g, started, &finished) }()
			<-started
			if !g.Running() {
				t.Error("Running is false while Run is under way")
			}
			if err := tc.act(t, &g); !errors.Is(err, tc.want) {
				t.Errorf("Start: %v, want %v", err, tc.want)
			}
			g.Close()
			if !finished {
				t.Error("Close returned before the goroutine of Go")
			}
			if err := <-runErr; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

func TestGuardRunAgainAfterRunEnds(t *testing.T) {
	var g Guard
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		runCtx, end, err := g.Start(ctx, errClosed, errRunning)
		if err != nil {
			t.Fatalf("Run %d: %v", i, err)
		}
		cancel()
		<-runCtx.Done()
		end()
		if g.Running() {
			t.Errorf("Running is true after Run %d ended", i)
		}
	}
	if !g.Close() {
		t.Error("first Close did not say so")
	}
}
