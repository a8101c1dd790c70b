package journal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
)

// TestLoadSpecialFiles puts in the place of state files what a careless
// or hostile hand might: a FIFO, which must not block the start, a link
// to another file, which must not be read, and a directory. Each is one
// damage line, moved aside, and the daemon's own files still load.
func TestLoadSpecialFiles(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		make       func(t *testing.T, path string)
		says       string
	}{
		{"fifo-journal", "journal.1", mkfifo, "not a regular file (a FIFO)"},
		{"fifo-snapshot", "snapshot", mkfifo, "not a regular file (a FIFO)"},
		{"link-snapshot", "snapshot", func(t *testing.T, path string) {
			secret := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(secret, appendHeader(nil, kindSnapshot, 7), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(secret, path); err != nil {
				t.Fatal(err)
			}
		}, "is a symbolic link"},
		{"directory-journal", "journal.1", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file (a directory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := damageFixture(t)
			path := filepath.Join(dir, tc.file)
			if err := os.Rename(path, filepath.Join(t.TempDir(), "moved")); err != nil {
				t.Fatal(err)
			}
			tc.make(t, path)
			var logBuf bytes.Buffer
			done := make(chan State, 1)
			go func() { done <- load(t, dir, slog.New(slog.NewTextHandler(&logBuf, nil))) }()
			var st State
			select {
			case st = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("Load blocked on a %s", tc.name)
			}
			if len(st.Damaged) != 1 || !strings.Contains(st.Damaged[0], tc.says) {
				t.Errorf("damage %q, want one line saying %q", st.Damaged, tc.says)
			}
			if n := strings.Count(logBuf.String(), "\n"); n != 1 {
				t.Errorf("logged %d lines:\n%s", n, logBuf.String())
			}
			if fi, err := os.Lstat(path); err == nil {
				t.Errorf("%s still in place: %v", tc.file, fi.Mode())
			}
			if aside, _ := filepath.Glob(path + damagedInfix + "*"); len(aside) != 1 {
				t.Errorf("kept aside as %v, want one", aside)
			}
			if st.Gen == 7 {
				t.Error("the generation of the linked file was believed")
			}
		})
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedFileCannotBeMovedAside fills every name a damaged file could
// be moved to: Load must give up after a bounded number of tries, say so
// in its one line, and go on (issue 10: it probed names for ever).
func TestDamagedFileCannotBeMovedAside(t *testing.T) {
	dir, path := damageFixture(t)
	editFile(t, path, func(b []byte) []byte { return append(b, 0, 0, 0) })
	stamp := time.Now().UTC().Format("20060102T150405Z")
	next := time.Now().Add(time.Second).UTC().Format("20060102T150405Z")
	for _, s := range []string{stamp, next} {
		for i := range maxAsideTries {
			name := path + damagedInfix + s
			if i > 0 {
				name += "." + strconv.Itoa(i)
			}
			if err := os.WriteFile(name, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := load(t, dir, nil)
	if len(st.Damaged) != 1 || !strings.Contains(st.Damaged[0], "left in place (100 names for it taken)") {
		t.Errorf("damage %q, want it left in place", st.Damaged)
	}
	if len(st.Entries) != 8 {
		t.Errorf("restored %d entries, want 8", len(st.Entries))
	}
}

// TestOpenRefuses checks the state directories Open will not use, and
// that the error says why.
func TestOpenRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		root bool
		make func(t *testing.T, dir string) string
		says string
	}{
		{"a link to a directory", false, func(t *testing.T, dir string) string {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			link := dir + "-link"
			if err := os.Symlink(dir, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "is a symbolic link (to "},
		{"a link to nowhere", false, func(t *testing.T, dir string) string {
			if err := os.Symlink(dir+"-nowhere", dir); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "is a symbolic link (to "},
		{"another user's", true, func(t *testing.T, dir string) string {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 12345, 12345); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "owned by uid 12345, not by this process's uid 0"},
		{"a file", false, func(t *testing.T, dir string) string {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "not a directory"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("needs root to give the directory away")
			}
			path := tc.make(t, filepath.Join(t.TempDir(), "state"))
			s, err := Open(path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q, want it to say %q", err, tc.says)
			}
			if fi, err := os.Stat(path); err == nil && fi.IsDir() && fi.Mode().Perm() != 0o700 {
				t.Errorf("the refused directory was changed to %v", fi.Mode())
			}
		})
	}
}

// TestSecondOpenRefused: a second portmapd on the same state directory
// reads and writes nothing there while the first holds it.
func TestSecondOpenRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	reg, j, _ := start(t, dir, Options{})
	defer j.Close()
	mustSet(t, reg, root, registry.Entry{Prog: 1, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.0.1"})
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "(pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("second Open: %v, want ErrInUse naming pid %d", err, os.Getpid())
	}
}

// TestLastWrite checks that the state's last write time is recorded in
// it: every batch of changes and the stop move it, and a copy that
// changes the files' times does not.
func TestLastWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	before := time.Now()
	reg, j, st := start(t, dir, Options{})
	if !st.LastWrite.IsZero() {
		t.Errorf("empty directory: last write %v", st.LastWrite)
	}
	mustSet(t, reg, root, registry.Entry{Prog: 1, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.0.1"})
	afterSet := time.Now()
	abandon(t, j)
	st = load(t, dir, nil)
	if st.LastWrite.Before(before) || st.LastWrite.After(afterSet) {
		t.Errorf("after a SET and a crash: last write %v, want within [%v, %v]", st.LastWrite, before, afterSet)
	}

	reg, j, _ = start(t, dir, Options{})
	beforeStop := time.Now()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	afterStop := time.Now()
	st = load(t, dir, nil)
	if st.LastWrite.Before(beforeStop) || st.LastWrite.After(afterStop) {
		t.Errorf("after a clean stop: last write %v, want within [%v, %v]", st.LastWrite, beforeStop, afterStop)
	}
	want := st.LastWrite

	// A copy (cp without -p) gives every file the time of the copy.
	future := time.Now().Add(48 * time.Hour)
	names, _ := os.ReadDir(dir)
	for _, de := range names {
		if err := os.Chtimes(filepath.Join(dir, de.Name()), future, future); err != nil {
			t.Fatal(err)
		}
	}
	if st = load(t, dir, nil); !st.LastWrite.Equal(want) {
		t.Errorf("after the files' times changed: last write %v, want %v", st.LastWrite, want)
	}
}

// TestLastWriteOfOldFormat: files written before time stamps existed
// give their modification time.
func TestLastWriteOfOldFormat(t *testing.T) {
	dir := copyState(t, "testdata/v1")
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, name := range []string{"snapshot", "journal.1"} {
		if err := os.Chtimes(filepath.Join(dir, name), at, at.Add(-time.Duration(len(name))*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if st := load(t, dir, nil); !st.LastWrite.Equal(at.Add(-time.Duration(len("snapshot")) * time.Minute)) {
		t.Errorf("last write %v, want the newer file's time", st.LastWrite)
	}
}

// writeChurn writes a journal of generation 1 in a new state directory:
// pairs of a SET with an address of addrLen bytes and its UNSET, size
// bytes in all, so that the state it holds stays small while the file
// grows.
func writeChurn(t *testing.T, size int64, addrLen int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "journal.1"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	w.Write(appendHeader(nil, kindJournal, 1))
	e := registry.Entry{Prog: 300000, Vers: 1, Netid: "tcp", Addr: strings.Repeat("a", addrLen), Owner: "superuser"}
	pair := appendStampedRecord(nil, time.Now(), []registry.Change{{Op: registry.OpSet, Entry: e}})
	pair = appendRecord(pair, []registry.Change{{Op: registry.OpUnset, Entry: e}})
	for n := int64(headerLen); n < size; n += int64(len(pair)) {
		w.Write(pair)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLargeJournalBoundedMemory loads a 96 MiB journal whose state is one
// entry at most: the heap must stay far below the file's size (issue 9:
// a 1.5 GB journal was read whole, 1.55 GB of RSS). The heap is sampled
// while Load runs; a file read whole stays in the heap for all of it.
func TestLargeJournalBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 96 MiB file")
	}
	const size = 96 << 20
	dir := writeChurn(t, size, 60000)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	st := load(t, dir, nil)
	close(stop)
	wg.Wait()
	if len(st.Damaged) != 0 || len(st.Entries) != 0 {
		t.Fatalf("loaded %d entries, damage %q", len(st.Entries), st.Damaged)
	}
	grew := int64(peak) - int64(base)
	t.Logf("heap grew by %d KiB at most while loading a %d MiB journal", grew>>10, size>>20)
	if grew > 32<<20 {
		t.Errorf("heap grew by %d MiB while loading a %d MiB journal", grew>>20, size>>20)
	}
}

// TestLoadStopsWhenCancelled: a stop asked for while a long journal is
// read ends Load promptly, with the context's error and nothing moved.
func TestLoadStopsWhenCancelled(t *testing.T) {
	dir := writeChurn(t, 4<<20, 100)
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Load(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load after cancel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "journal.1")); err != nil {
		t.Errorf("journal moved: %v", err)
	}
}
