package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/syncio"
)

// listening runs a command for each TCPMUX connection handed over for a
// name, as inetd runs a "+" service.
type listening struct {
	cmd         *cobra.Command
	g           *globals
	client      *httpmap.Client
	spec        httpmap.ServiceSpec
	argv        []string
	maxChildren int
}

func (l listening) run() error {
	stderr := l.cmd.ErrOrStderr()
	if _, ok := stderr.(*os.File); !ok {
		// Children write to it at once, each through a goroutine of
		// exec's: a file takes that, a buffer needs a lock.
		stderr = syncio.NewWriter(stderr)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	ctx, cancel := l.g.callContext(context.WithoutCancel(l.cmd.Context()))
	ml, err := l.client.ListenService(ctx, l.spec)
	cancel()
	if err != nil {
		return reportHTTP(l.cmd, err)
	}
	ml.Rejected = func(err error) { fmt.Fprintf(stderr, "portmapctl: %s: %v\n", l.spec.Service, err) }

	var (
		mu       sync.Mutex
		children = map[*os.Process]struct{}{}
		running  sync.WaitGroup
		stop     = make(chan struct{})
		stopped  sync.Once
	)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				first := false
				mu.Lock()
				stopped.Do(func() { close(stop); first = true })
				for p := range children {
					p.Signal(s)
				}
				mu.Unlock()
				if first {
					// Ends the registration, and the accept below.
					ml.Close()
				}
			case <-done:
				return
			}
		}
	}()
	// A slot is taken before a connection is accepted, so that past
	// maxChildren the next connection waits where portmapd left it.
	slots := make(chan struct{}, l.maxChildren)
	defer running.Wait()
	for {
		select {
		case slots <- struct{}{}:
		case <-stop:
			return nil
		}
		h, err := ml.AcceptHandoff()
		if err != nil {
			select {
			case <-stop:
				return nil
			default:
			}
			fmt.Fprintf(stderr, "portmapctl: %s: %v\n", l.spec.Service, err)
			ml.Close()
			return failed
		}
		// Started under the lock, so that a signal reaches every child
		// started before it and none starts after it.
		mu.Lock()
		select {
		case <-stop:
			mu.Unlock()
			h.File.Close()
			return nil
		default:
		}
		child := exec.Command(l.argv[0], l.argv[1:]...)
		child.Stdin, child.Stdout, child.Stderr = h.File, h.File, stderr
		err = child.Start()
		if err == nil {
			children[child.Process] = struct{}{}
		}
		mu.Unlock()
		// The child has its own descriptors of the connection now.
		h.File.Close()
		if err != nil {
			fmt.Fprintf(stderr, "portmapctl: %s: %v\n", strings.Join(l.argv, " "), err)
			<-slots
			continue
		}
		running.Add(1)
		go func() {
			defer running.Done()
			child.Wait()
			mu.Lock()
			delete(children, child.Process)
			mu.Unlock()
			<-slots
		}()
	}
}
