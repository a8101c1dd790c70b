package lifetime

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

var internal = registry.Caller{Transport: registry.Internal}

// runKeeper runs k until the test ends or stop is called, and reports what
// Run returned.
func runKeeper(t *testing.T, k *Keeper) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// isRunning reports whether a Run of k is under way.
func isRunning(k *Keeper) bool {
	return k.life.Running()
}

// eventually polls cond for a generous while.
func eventually(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func svc(name string, port uint16) registry.Service {
	return registry.Service{Name: name, Network: netid.TCP, Port: port}
}

// TestKeeperStartStop starts and stops Keepers a hundred times each way,
// with a process watched through a pidfd and another polled: nothing
// New, Run or Close starts outlives Close, and Close releases every pidfd.
func TestKeeperStartStop(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cmds := [2]int32{int32(startSleep(t).Process.Pid), int32(startSleep(t).Process.Pid)}
	pidfds := openPidfds(t)
	cycles := []struct {
		name string
		run  func(t *testing.T, k *Keeper)
	}{
		{"Close without Run", func(t *testing.T, k *Keeper) {}},
		{"Run, cancel, Close", func(t *testing.T, k *Keeper) {
			if err := runKeeper(t, k)(); err != nil {
				t.Fatal(err)
			}
		}},
		{"Run twice in turn", func(t *testing.T, k *Keeper) {
			for range 2 {
				if err := runKeeper(t, k)(); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"Close ends Run", func(t *testing.T, k *Keeper) {
			done := make(chan error, 1)
			go func() { done <- k.Run(context.Background()) }()
			// Wait for Run to be under way, so that Close is what ends it.
			if !eventually(func() bool { return isRunning(k) }) {
				t.Fatal("Run never got under way")
			}
			if err := k.Run(context.Background()); !errors.Is(err, ErrRunning) {
				t.Fatalf("a second Run = %v, want ErrRunning", err)
			}
			if err := k.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}},
		{"Run after Close fails", func(t *testing.T, k *Keeper) {
			k.Close()
			if err := k.Run(context.Background()); !errors.Is(err, ErrClosed) {
				t.Fatalf("Run after Close = %v, want ErrClosed", err)
			}
		}},
		{"Run with a done context", func(t *testing.T, k *Keeper) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := k.Run(ctx); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cycles {
		t.Run(c.name, func(t *testing.T) {
			for range 100 {
				reg := registry.New(registry.Options{})
				idle := goleak.IgnoreCurrent()
				k, err := New(reg, Config{MaxPidfds: 1, PollInterval: time.Millisecond, PruneInterval: time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				if err := goleak.Find(idle); err != nil {
					t.Fatalf("New started a goroutine: %v", err)
				}
				for i, pid := range cmds {
					h, err := k.Open(pid)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := k.Register(internal, h, []registry.Service{svc("sleep.example.com", uint16(1000+i))}); err != nil {
						t.Fatal(err)
					}
				}
				if pidfds, polled := k.w.Counts(); pidfds != 1 || polled != 1 {
					t.Fatalf("Counts = %d, %d; want 1 pidfd, 1 polled", pidfds, polled)
				}
				c.run(t, k)
				if err := k.Close(); err != nil {
					t.Fatal(err)
				}
				if n := openPidfds(t); n != pidfds {
					t.Fatalf("%d pidfds open after Close, want %d", n, pidfds)
				}
				if n := len(reg.NamedServices()); n != 2 {
					t.Fatalf("%d services left after Close, want both", n)
				}
			}
		})
	}
}

// TestKeeperRegister: a registration ends with its process, and a process
// stays watched while it holds a service, whatever order deregistrations
// and registrations come in.
func TestKeeperRegister(t *testing.T) {
	reg := registry.New(registry.Options{})
	k, err := New(reg, Config{NoPrune: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	runKeeper(t, k)
	cmd := startSleep(t)
	pid := int32(cmd.Process.Pid)
	register := func(svcs ...registry.Service) {
		t.Helper()
		h, err := k.Open(pid)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Register(internal, h, svcs); err != nil {
			t.Fatal(err)
		}
	}
	deregister := func(s registry.Service) {
		t.Helper()
		removed, err := reg.DeregisterNamed(internal, []registry.Service{s})
		if err != nil {
			t.Fatal(err)
		}
		k.Deregistered(removed)
	}
	register(svc("a.example.com", 1), svc("b.example.com", 2))
	if k.Watched() != 1 {
		t.Fatalf("watching %d processes, want 1", k.Watched())
	}
	// A registration that adds nothing leaves the watch as it was.
	register(svc("a.example.com", 1))
	deregister(svc("a.example.com", 1))
	if k.Watched() != 1 {
		t.Fatal("unwatched with a service left")
	}
	deregister(svc("b.example.com", 2))
	if k.Watched() != 0 {
		t.Fatal("still watched with no service left")
	}
	register(svc("c.example.com", 3))
	if k.Watched() != 1 {
		t.Fatal("not watched again")
	}
	// A refused registration closes the handle it was given.
	before := openPidfds(t)
	h, err := k.Open(pid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Register(internal, h, []registry.Service{svc("bad name", 4)}); !errors.Is(err, registry.ErrBadName) {
		t.Fatalf("Register of a bad name = %v", err)
	}
	if n := openPidfds(t); n != before {
		t.Fatalf("%d pidfds open, want %d", n, before)
	}
	cmd.Process.Kill()
	if !eventually(func() bool { return len(reg.NamedServices()) == 0 && k.Watched() == 0 }) {
		t.Fatalf("after the process exited: %d services, %d watched", len(reg.NamedServices()), k.Watched())
	}
	if _, n := reg.RecentEvents(); n.Named != 1 {
		t.Errorf("removals %+v, want one named", n)
	}
}

// TestKeeperRestore: saved services come back only if their process still
// runs as saved, and end with it, even when it exits before Run.
func TestKeeperRestore(t *testing.T) {
	self, err := inspect("/proc", int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	sleeps := [2]*exec.Cmd{startSleep(t), startSleep(t)}
	var procs [2]registry.Process
	for i, cmd := range sleeps {
		pid := int32(cmd.Process.Pid)
		info, err := inspect("/proc", pid)
		if err != nil {
			t.Fatal(err)
		}
		procs[i] = registry.Process{PID: pid, UID: info.UID, GID: info.GID, Start: info.Start, Exe: info.Exe}
	}
	proc := func(p registry.Process, name string) registry.Service {
		s := svc(name, 1)
		s.Process = p
		return s
	}
	me := registry.Process{PID: self.PID, UID: self.UID, Start: self.Start, Exe: self.Exe}
	otherStart, otherExe, noExe := me, me, me
	otherStart.Start++
	otherExe.Exe = "/usr/sbin/another"
	noExe.Exe = ""
	tests := []struct {
		svc  registry.Service
		kept bool
	}{
		{proc(me, "self.example.com"), true},
		{proc(noExe, "self-exe-unknown.example.com"), true},
		{proc(otherStart, "reused.example.com"), false},
		{proc(otherExe, "replaced.example.com"), false},
		{proc(registry.Process{PID: deadPID(t), Start: 1}, "dead.example.com"), false},
		{proc(procs[0], "sleep0.example.com"), true},
		{proc(procs[1], "sleep1.example.com"), true},
	}
	var svcs []registry.Service
	wantKept := 0
	for _, tc := range tests {
		svcs = append(svcs, tc.svc)
		if tc.kept {
			wantKept++
		}
	}
	entries := []registry.Entry{{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1", Owner: "0"}}
	reg := registry.New(registry.Options{})
	k, err := New(reg, Config{NoPrune: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	nE, nS, dead := k.Restore(entries, svcs)
	if nE != 1 || nS != wantKept || dead != len(tests)-wantKept {
		t.Fatalf("Restore = %d, %d, %d; want 1, %d, %d", nE, nS, dead, wantKept, len(tests)-wantKept)
	}
	for _, tc := range tests {
		if got := len(reg.LookupNamed(tc.svc.Name)) == 1; got != tc.kept {
			t.Errorf("%s: restored %v, want %v", tc.svc.Name, got, tc.kept)
		}
	}
	// Self (both of its services) and the two sleeps.
	if k.Watched() != 3 {
		t.Fatalf("watching %d processes, want 3", k.Watched())
	}
	// One sleep exits before Run, the other after it.
	sleeps[0].Process.Kill()
	runKeeper(t, k)
	sleeps[1].Process.Kill()
	if !eventually(func() bool {
		return len(reg.LookupNamed("sleep0.example.com"))+len(reg.LookupNamed("sleep1.example.com")) == 0
	}) {
		t.Fatal("restored services outlived their process")
	}
	if k.Watched() != 1 || len(reg.NamedServices()) != 2 {
		t.Fatalf("watching %d, %d services; want self and its two", k.Watched(), len(reg.NamedServices()))
	}
}
