package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAcquireLock(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rpcbind.lock")
	unlock, err := acquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("lock file holds %q, want this pid", b)
	}
	_, err = acquireLock(path)
	var are *AlreadyRunningError
	if !errors.As(err, &are) || !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second lock: %v", err)
	}
	want := "another rpcbind is already running. Aborting (lock file " + path + " is held by pid " + strconv.Itoa(os.Getpid()) + ", "
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want it to start %q", err, want)
	}
	unlock()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file left after unlock: %v", err)
	}
}

// TestAcquireLockReplaced: a file put at the lock's name by someone else
// while the lock was held is not removed by the holder's unlock.
func TestAcquireLockReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rpcbind.lock")
	unlock, err := acquireLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unlock()
	if b, _ := os.ReadFile(path); string(b) != "other\n" {
		t.Errorf("someone else's lock file was removed or changed: %q", b)
	}
}

// TestAcquireLockRefuses: a link at the lock's name is not followed (so
// root never creates or truncates the file it points to), and a FIFO
// does not block the start.
func TestAcquireLockRefuses(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(path string) error
		says string
	}{
		{"link", func(p string) error { return os.Symlink(victim, p) }, "is a symbolic link"},
		{"dangling-link", func(p string) error { return os.Symlink(filepath.Join(dir, "new"), p) }, "is a symbolic link"},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "not a regular file (a FIFO)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".lock")
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				unlock, err := acquireLock(path)
				if err == nil {
					unlock()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.says) {
					t.Errorf("acquireLock: %v, want it refused saying %q", err, tc.says)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("acquireLock blocked")
			}
		})
	}
	if b, _ := os.ReadFile(victim); string(b) != "secret" {
		t.Errorf("the linked file was written: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "new")); err == nil {
		t.Error("the dangling link's target was created")
	}
}
