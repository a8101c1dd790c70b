package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/warmstart"
	"github.com/portmapd/portmapd/xdr"
)

// indexOf returns the index of the registry's history that the daemon
// at d has published, from a listing's header.
func (d *daemon) index() uint64 {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, index, err := httpmap.NewLocalClient(d.http).LookupIndex(ctx, "index.invalid", 0, 0)
	if index == 0 {
		d.t.Fatalf("no index from portmapd: %v", err)
	}
	return index
}

// sleeperProc starts a process for named services to live with, killed
// at the end of the test.
func sleeperProc(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// eventLog collects what a Watch sees.
type eventLog struct {
	mu     sync.Mutex
	events []httpmap.Event
}

func (l *eventLog) add(ev httpmap.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, ev)
	return nil
}

func (l *eventLog) snapshot() []httpmap.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]httpmap.Event(nil), l.events...)
}

// describe is an event as the test expects it: its type and the first
// instance's service, and the reason of a removal by the daemon.
func describe(ev httpmap.Event) string {
	s := ev.Type
	if len(ev.Instances) > 0 {
		s += " " + ev.Instances[0].Service
	}
	switch {
	case strings.Contains(ev.Reason, "while portmapd was stopped"):
		s += " (while stopped)"
	case strings.Contains(ev.Reason, "warm-start files"):
		s += " (replaced by rpcbind's)"
	}
	if len(ev.Instances) > 0 && ev.Instances[0].RPC != nil {
		s += " " + ev.Instances[0].Port
	}
	return s
}

// TestEventsResumeAcrossRestart follows the event stream with the Go
// client while the daemon stops and starts again, cleanly and by
// SIGKILL: every change is seen once, in order, with indices that run on
// without a gap, including the removal of a service whose process exited
// while the daemon was down.
func TestEventsResumeAcrossRestart(t *testing.T) {
	for _, how := range []string{"stopped", "killed"} {
		t.Run(how, func(t *testing.T) {
			d := newDaemon(t)
			d.start()
			first := d.index()
			var log eventLog
			ctx, cancel := context.WithCancel(context.Background())
			watched := make(chan error, 1)
			go func() { watched <- httpmap.NewLocalClient(d.http).Watch(ctx, first, httpmap.Filter{}, log.add) }()
			register := func(name string, p *exec.Cmd) {
				t.Helper()
				rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer rcancel()
				reg := httpmap.Registration{PID: int32(p.Process.Pid), Services: []httpmap.ServiceSpec{{Service: name, Port: "9000"}}}
				if _, err := httpmap.NewLocalClient(d.http).Register(rctx, reg); err != nil {
					t.Fatalf("register %s: %v", name, err)
				}
			}
			stays, goes := sleeperProc(t), sleeperProc(t)
			register("stays.example.com", stays)
			register("goes.example.com", goes)
			d.set(0x31000010, 4000)
			want := []string{"added stays.example.com", "added goes.example.com", "added 822083600.oncrpc.alt 4000"}
			if how == "killed" {
				d.kill()
			} else {
				d.stop()
			}
			goes.Process.Kill()
			goes.Wait()
			d.start()
			want = append(want, "removed goes.example.com (while stopped)")
			d.set(0x31000011, 4001)
			register("after.example.com", stays)
			want = append(want, "added 822083601.oncrpc.alt 4001", "added after.example.com")
			last := d.index()
			deadline := time.Now().Add(60 * time.Second)
			for {
				evs := log.snapshot()
				if len(evs) > 0 && evs[len(evs)-1].Index >= last {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the stream reached index %v of %d:\n%s", evs, last, d.log.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			cancel()
			if err := <-watched; err != nil {
				t.Errorf("Watch: %v", err)
			}
			checkEvents(t, log.snapshot(), first, want)
		})
	}
}

// checkEvents checks that evs follow first with no index missing or
// repeated, and are, but for the portmapper's own, the events want
// describes.
func checkEvents(t *testing.T, evs []httpmap.Event, first uint64, want []string) {
	t.Helper()
	var got []string
	for i, ev := range evs {
		if ev.Index != first+uint64(i)+1 {
			t.Errorf("event %d has index %d, want %d: lost or repeated", i, ev.Index, first+uint64(i)+1)
		}
		// The portmapper registers itself afresh at each start,
		// on the new port --port 0 gave it: a change, which the
		// stream reports, but not this test's.
		if len(ev.Instances) > 0 && ev.Instances[0].RPC != nil && ev.Instances[0].RPC.Program == xdr.PmapProg {
			continue
		}
		got = append(got, describe(ev))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events:\n got %q\nwant %q", got, want)
	}
}

// TestEventsAcrossWarmStart: when rpcbind ran between two runs of
// portmapd -w and its warm-start files replace the saved RPC
// registrations, the index goes on, and a watcher resuming across it is
// told of the registration rpcbind's files did not have and of the one
// they had instead.
func TestEventsAcrossWarmStart(t *testing.T) {
	warm := filepath.Join(t.TempDir(), "rpcbind")
	if err := os.Mkdir(warm, 0o770); err != nil {
		t.Fatal(err)
	}
	d := newDaemon(t, "-w", "--warm-start-dir", warm, "--no-prune")
	d.start()
	d.set(0x31000020, 4000)
	first := d.index()
	var log eventLog
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- httpmap.NewLocalClient(d.http).Watch(ctx, first-1, httpmap.Filter{}, log.add) }()
	d.stop()
	// rpcbind ran meanwhile, and its service registered anew on another
	// port: its files, written after portmapd's state, win.
	time.Sleep(10 * time.Millisecond)
	if err := warmstart.Write(warm, []registry.Entry{{Prog: 0x31000020, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.15.161", Owner: registry.OwnerSuperuser}}); err != nil {
		t.Fatal(err)
	}
	d.start()
	last := d.index()
	if last <= first {
		t.Fatalf("index %d after the warm start, %d before", last, first)
	}
	if !eventually(60*time.Second, func() bool {
		evs := log.snapshot()
		return len(evs) > 0 && evs[len(evs)-1].Index >= last
	}) {
		t.Fatalf("the stream did not reach index %d: %+v", last, log.snapshot())
	}
	cancel()
	if err := <-watched; err != nil {
		t.Errorf("Watch: %v", err)
	}
	checkEvents(t, log.snapshot(), first-1, []string{
		"added 822083616.oncrpc.alt 4000",
		"removed 822083616.oncrpc.alt (replaced by rpcbind's) 4000",
		"added 822083616.oncrpc.alt 4001",
	})
}
