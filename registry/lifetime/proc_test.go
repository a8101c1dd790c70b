package lifetime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name  string
		stat  string
		state byte
		want  uint64
		ok    bool
	}{
		{"plain", "42 (sleep) S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 123456 5000 100", 'S', 123456, true},
		{"zombie", "42 (sleep) Z 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 123456 5000 100", 'Z', 123456, true},
		{"name with spaces and parens", "42 (a) b (c) S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 987 5000 100", 'S', 987, true},
		{"no paren", "42 sleep S 1", 0, 0, false},
		{"short", "42 (sleep) S 1 42", 0, 0, false},
		{"state not one letter", "42 (sleep) SS 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 123456 5000 100", 0, 0, false},
		{"not a number", "42 (sleep) S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 x 5000 100", 0, 0, false},
		{"empty", "", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, got, err := parseStat([]byte(tt.stat))
			if (err == nil) != tt.ok || got != tt.want || state != tt.state {
				t.Fatalf("parseStat = %q, %d, %v; want %q, %d, ok=%v", state, got, err, tt.state, tt.want, tt.ok)
			}
		})
	}
}

func TestParseStatusIDs(t *testing.T) {
	tests := []struct {
		name     string
		status   string
		uid, gid uint32
		ok       bool
	}{
		{"effective ids", "Name:\tx\nUid:\t1000\t1001\t1000\t1001\nGid:\t50\t51\t50\t51\n", 1001, 51, true},
		{"no gid", "Uid:\t1\t1\t1\t1\n", 0, 0, false},
		{"short line", "Uid:\t1\nGid:\t1\t1\n", 0, 0, false},
		{"garbage", "Uid:\tx\ty\nGid:\t1\t1\n", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, gid, err := parseStatusIDs([]byte(tt.status))
			if (err == nil) != tt.ok || uid != tt.uid || gid != tt.gid {
				t.Fatalf("parseStatusIDs = %d, %d, %v", uid, gid, err)
			}
		})
	}
}

func TestOpenSelf(t *testing.T) {
	h, err := openProcess("/proc", int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	exe, _ := os.Executable()
	if h.UID != uint32(os.Geteuid()) || h.Start == 0 || h.Exe != exe {
		t.Fatalf("Open(self) = %+v, want uid %d and exe %s", h.Info, os.Geteuid(), exe)
	}
	if !h.Alive() {
		t.Fatal("self not alive")
	}
}

func TestOpenGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	for _, pid := range []int32{0, -1, int32(cmd.Process.Pid)} {
		if _, err := openProcess("/proc", pid); !errors.Is(err, ErrGone) {
			t.Errorf("Open(%d) = %v, want ErrGone", pid, err)
		}
	}
}

// TestOpenZombie: a child that exited but is not yet reaped still has its
// /proc entry; it must count as gone.
func TestOpenZombie(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Skip("no true(1):", err)
	}
	defer cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := openProcess("/proc", int32(cmd.Process.Pid))
		if errors.Is(err, ErrGone) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("zombie still opens: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skip("cannot run sleep(1):", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// startWatcher runs a watcher until the test ends, or until stop, which
// also closes it.
func startWatcher(t *testing.T, cfg watcherConfig) (w *watcher, stop func()) {
	t.Helper()
	w, err := newWatcher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Cleanup(stop)
	return w, stop
}

func TestWatcherKill(t *testing.T) {
	w, _ := startWatcher(t, watcherConfig{})
	cmd := startSleep(t)
	h, err := openProcess("/proc", int32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	key := h.Key()
	got := make(chan Info, 2)
	if ok, err := w.Watch(h, func(i Info) { got <- i }); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// A second handle on the same process is not a second watch.
	h2, err := openProcess("/proc", int32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Watch(h2, func(Info) { t.Error("second function called") }); ok || err != nil {
		t.Fatal(ok, err)
	}
	if !w.Watching(key) {
		t.Fatal("not watching")
	}
	killed := time.Now()
	cmd.Process.Kill()
	select {
	case info := <-got:
		if info.PID != int32(cmd.Process.Pid) {
			t.Fatalf("gone(%+v), want pid %d", info, cmd.Process.Pid)
		}
		t.Logf("exit seen %v after SIGKILL", time.Since(killed))
	case <-time.After(time.Second):
		t.Fatal("no exit seen within a second of SIGKILL")
	}
	if w.Watching(key) || w.Len() != 0 {
		t.Fatal("still watching after exit")
	}
}

func TestWatcherUnwatch(t *testing.T) {
	w, stop := startWatcher(t, watcherConfig{})
	cmd := startSleep(t)
	h, err := openProcess("/proc", int32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	called := make(chan struct{}, 1)
	if _, err := w.Watch(h, func(Info) { called <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if !w.Unwatch(h.Key()) || w.Unwatch(h.Key()) {
		t.Fatal("Unwatch did not report once")
	}
	cmd.Process.Kill()
	select {
	case <-called:
		t.Fatal("function called after Unwatch")
	case <-time.After(200 * time.Millisecond):
	}
	stop()
	h3, err := openProcess("/proc", int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Watch(h3, func(Info) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close = %v", err)
	}
}

// fakeProc writes a /proc/PID/stat under root for pid with state and
// start time.
func fakeProc(t *testing.T, root string, pid int32, state byte, start uint64) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(int(pid)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (svc) %c 1 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 %d 0 0\n", pid, state, start)
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRunning(t *testing.T) {
	root := t.TempDir()
	fakeProc(t, root, 10, 'S', 500)
	fakeProc(t, root, 11, 'Z', 500)
	fakeProc(t, root, 12, 'R', 500)
	fakeProc(t, root, 14, 'x', 500)
	// A stat that cannot be read says nothing about the process.
	if err := os.MkdirAll(filepath.Join(root, "13", "stat"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		k       Key
		running bool
		err     bool
	}{
		{"sleeping", Key{10, 500}, true, false},
		{"running", Key{12, 500}, true, false},
		{"zombie", Key{11, 500}, false, false},
		{"dead on an old kernel", Key{14, 500}, false, false},
		{"pid reused: another start time", Key{10, 499}, false, false},
		{"no such pid", Key{99, 500}, false, false},
		{"unreadable", Key{13, 500}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			running, err := running(root, tc.k)
			if running != tc.running || (err != nil) != tc.err {
				t.Fatalf("running = %v, %v; want %v, error %v", running, err, tc.running, tc.err)
			}
		})
	}
	self, err := inspect("/proc", int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if running, err := running("/proc", Key{self.PID, self.Start}); !running || err != nil {
		t.Fatalf("running(self) = %v, %v", running, err)
	}
}

// TestStartedBy: the pruner's question, whether a registration's process
// still runs, answered from /proc/PID/stat and /proc/stat's boot time.
func TestStartedBy(t *testing.T) {
	root := t.TempDir()
	// Booted at 1,800,000,000; start times are in ticks of 1/100 s.
	if err := os.WriteFile(filepath.Join(root, "stat"), []byte("cpu  1 2 3\nbtime 1800000000\nprocesses 9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	boot := readBootClock(root)
	if boot.btime != 1_800_000_000 {
		t.Fatalf("readBootClock = %+v", boot)
	}
	fakeProc(t, root, 10, 'S', 100*60)  // started a minute after boot
	fakeProc(t, root, 11, 'Z', 100*60)  // the same, exited
	fakeProc(t, root, 12, 'x', 100*60)  // the same on an old kernel
	fakeProc(t, root, 13, 'S', 100*600) // ten minutes after boot
	registered := time.Unix(1_800_000_000+120, 0)
	tests := []struct {
		name       string
		pid        int32
		registered time.Time
		boot       bootClock
		want       bool
	}{
		{"started before the registration", 10, registered, boot, true},
		{"zombie", 11, registered, boot, false},
		{"dead on an old kernel", 12, registered, boot, false},
		{"started after the registration: pid reused", 13, registered, boot, false},
		{"no such pid", 99, registered, boot, false},
		{"no registration time", 13, time.Time{}, boot, true},
		{"no boot time", 13, registered, bootClock{clkTick: 100}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := startedBy(root, tc.pid, tc.registered, tc.boot); got != tc.want {
				t.Fatalf("startedBy = %v, want %v", got, tc.want)
			}
		})
	}
	if !startedBy("/proc", int32(os.Getpid()), time.Now(), readBootClock("/proc")) {
		t.Error("this process has not started by now")
	}
	if readBootClock(t.TempDir()).btime != 0 {
		t.Error("boot time read from nothing")
	}
}

// TestWatcherPolls: past the pidfd budget, processes are polled through
// /proc; a polled process that exits, is replaced by another with its pid,
// or turns zombie ends its watch, and one /proc cannot describe is kept.
func TestWatcherPolls(t *testing.T) {
	root := t.TempDir()
	w, _ := startWatcher(t, watcherConfig{ProcRoot: root, MaxPidfds: 1, PollInterval: 10 * time.Millisecond})
	// The one pidfd goes to this process, which stays.
	self, err := openProcess("/proc", int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := w.Watch(self, func(Info) { t.Error("self gone") }); !ok || err != nil {
		t.Fatal(ok, err)
	}
	gone := make(chan int32, 10)
	tests := []struct {
		name   string
		pid    int32
		change func()
		ends   bool
	}{
		{"exits", 20, func() { os.RemoveAll(filepath.Join(root, "20")) }, true},
		{"pid reused", 21, func() { fakeProc(t, root, 21, 'S', 999) }, true},
		{"zombie", 22, func() { fakeProc(t, root, 22, 'Z', 500) }, true},
		{"unreadable", 23, func() {
			os.Remove(filepath.Join(root, "23", "stat"))
			os.Mkdir(filepath.Join(root, "23", "stat"), 0o755)
		}, false},
		{"still running", 24, func() {}, false},
	}
	for _, tc := range tests {
		fakeProc(t, root, tc.pid, 'S', 500)
		h := &Handle{Info: Info{PID: tc.pid, Start: 500}, fd: -1}
		if ok, err := w.Watch(h, func(i Info) { gone <- i.PID }); !ok || err != nil {
			t.Fatalf("%s: Watch = %v, %v", tc.name, ok, err)
		}
	}
	if pidfds, polled := w.Counts(); pidfds != 1 || polled != len(tests) {
		t.Fatalf("Counts = %d pidfds, %d polled; want 1, %d", pidfds, polled, len(tests))
	}
	want := map[int32]bool{}
	for _, tc := range tests {
		tc.change()
		if tc.ends {
			want[tc.pid] = true
		}
	}
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case pid := <-gone:
			if !want[pid] {
				t.Fatalf("pid %d ended", pid)
			}
			delete(want, pid)
		case <-deadline:
			t.Fatalf("not ended: %v", want)
		}
	}
	// Some more polls: the others stay.
	time.Sleep(100 * time.Millisecond)
	for _, tc := range tests {
		if w.Watching(Key{tc.pid, 500}) == tc.ends {
			t.Errorf("%s: watching = %v", tc.name, !tc.ends)
		}
	}
	if !w.Unwatch(Key{24, 500}) || w.Watching(Key{24, 500}) {
		t.Error("Unwatch of a polled process")
	}
	os.RemoveAll(filepath.Join(root, "24"))
	time.Sleep(100 * time.Millisecond)
	select {
	case pid := <-gone:
		t.Errorf("pid %d ended after Unwatch", pid)
	default:
	}
}

// openPidfds counts this process's open pidfds.
func openPidfds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l == "anon_inode:[pidfd]" {
			n++
		}
	}
	return n
}

// TestWatcherPidfdBudget watches real processes past a budget of two
// pidfds: no more than two are held, every exit is seen, and a polled
// process takes a pidfd that frees up.
func TestWatcherPidfdBudget(t *testing.T) {
	w, _ := startWatcher(t, watcherConfig{MaxPidfds: 2, PollInterval: 20 * time.Millisecond})
	gone := make(chan int32, 4)
	var cmds []*exec.Cmd
	for range 4 {
		cmds = append(cmds, startSleep(t))
	}
	// os/exec holds a pidfd of its own for each child.
	before := openPidfds(t)
	for _, cmd := range cmds {
		h, err := openProcess("/proc", int32(cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := w.Watch(h, func(i Info) { gone <- i.PID }); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if pidfds, polled := w.Counts(); pidfds != 2 || polled != 2 {
		t.Fatalf("Counts = %d, %d; want 2 pidfds, 2 polled", pidfds, polled)
	}
	if n := openPidfds(t) - before; n != 2 {
		t.Fatalf("%d pidfds open, want 2", n)
	}
	waitGone := func(cmd *exec.Cmd) {
		t.Helper()
		cmd.Process.Kill()
		select {
		case pid := <-gone:
			if pid != int32(cmd.Process.Pid) {
				t.Fatalf("pid %d ended, want %d", pid, cmd.Process.Pid)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("exit of pid %d not seen", cmd.Process.Pid)
		}
	}
	waitGone(cmds[3]) // polled
	waitGone(cmds[0]) // pidfd: its place goes to the last polled one
	deadline := time.Now().Add(10 * time.Second)
	for {
		pidfds, polled := w.Counts()
		if pidfds == 2 && polled == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Counts = %d, %d; the polled process did not take the free pidfd", pidfds, polled)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := openPidfds(t) - before; n != 2 {
		t.Fatalf("%d pidfds open, want 2", n)
	}
	waitGone(cmds[2])
	waitGone(cmds[1])
	if pidfds, polled := w.Counts(); pidfds != 0 || polled != 0 {
		t.Fatalf("Counts = %d, %d after every exit", pidfds, polled)
	}
}
