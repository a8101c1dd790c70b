package proc

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStartTime(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want uint64
		ok   bool
	}{
		{"plain", "42 (sleep) S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 123456 5000 100", 123456, true},
		{"name with spaces and parens", "42 (a) b (c) S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 987 5000 100", 987, true},
		{"no paren", "42 sleep S 1", 0, false},
		{"short", "42 (sleep) S 1 42", 0, false},
		{"not a number", "42 (sleep) S 1 42 42 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 x 5000 100", 0, false},
		{"empty", "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStartTime([]byte(tt.stat))
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parseStartTime = %d, %v; want %d, ok=%v", got, err, tt.want, tt.ok)
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
	h, err := Open("/proc", int32(os.Getpid()))
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
		if _, err := Open("/proc", pid); !errors.Is(err, ErrGone) {
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
		_, err := Open("/proc", int32(cmd.Process.Pid))
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

func TestWatcherKill(t *testing.T) {
	w, err := NewWatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := startSleep(t)
	h, err := Open("/proc", int32(cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	key := h.Key()
	got := make(chan Info, 2)
	if ok, err := w.Watch(h, func(i Info) { got <- i }); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// A second handle on the same process is not a second watch.
	h2, err := Open("/proc", int32(cmd.Process.Pid))
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
	w, err := NewWatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := startSleep(t)
	h, err := Open("/proc", int32(cmd.Process.Pid))
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
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h3, err := Open("/proc", int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Watch(h3, func(Info) {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Watch after Close = %v", err)
	}
}
