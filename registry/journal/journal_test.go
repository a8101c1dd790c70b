package journal

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

var (
	root  = registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 0, PID: 4242}}
	user  = registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1000, PID: 77}}
	loop  = registry.Caller{Transport: registry.Network, Addr: netip.MustParseAddrPort("127.0.0.1:600")}
	proc1 = registry.Process{PID: 77, UID: 1000, GID: 1000, Start: 123456, Exe: "/usr/bin/svc"}
)

// load opens the state directory dir, loads it and closes it.
func load(t testing.TB, dir string, log *slog.Logger) State {
	t.Helper()
	s, err := Open(dir, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// startAt starts a journal of generation gen+1 on reg in dir.
func startAt(t testing.TB, dir string, gen uint64, reg *registry.Registry, opts Options) *Journal {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.NewJournal(gen, reg)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	j.Start()
	return j
}

// start loads dir into a fresh registry and starts a journal on it.
func start(t testing.TB, dir string, opts Options) (*registry.Registry, *Journal, State) {
	t.Helper()
	st := load(t, dir, nil)
	reg := registry.New(registry.Options{})
	reg.Restore(st.Entries, st.Services)
	reg.Resume(registry.Saved{Index: st.Index, Feed: st.Feed, Entries: st.Entries, Services: st.Services}, nil)
	return reg, startAt(t, dir, st.Gen, reg, opts), st
}

// abandon leaves j as a crash would once what it has under way (a
// compaction) is done: files as they are, without the stamp of a clean
// stop, its goroutines ended, so that none writes beside the next start,
// and the directory's lock released for that start.
func abandon(t testing.TB, j *Journal) {
	t.Helper()
	j.mu.Lock()
	j.closed = true
	j.cond.Broadcast()
	j.mu.Unlock()
	close(j.quit)
	j.done.Wait()
	if err := j.dir.Flock(unix.LOCK_UN); err != nil {
		t.Fatal(err)
	}
}

func mustSet(t testing.TB, reg *registry.Registry, c registry.Caller, e registry.Entry) {
	t.Helper()
	if ok, err := reg.Set(c, e); !ok || err != nil {
		t.Fatalf("Set %+v = %v, %v", e, ok, err)
	}
}

// TestRoundTrip drives every kind of change, closes (or abandons) the
// journal and checks that a new start sees exactly the registry's state.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		compact int64
		close   bool
	}{
		{"closed", 0, true},
		{"abandoned", 0, false},
		{"compacting often", 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			reg, j, _ := start(t, dir, Options{CompactBytes: tc.compact})
			mustSet(t, reg, root, registry.Entry{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1"})
			mustSet(t, reg, user, registry.Entry{Prog: 100005, Vers: 1, Netid: "udp6", Addr: "::.3.4"})
			if ok, _ := reg.SetMapping(loop, xdr.Mapping{Prog: 200000, Vers: 1, Prot: netid.ProtoUDP, Port: 999}); !ok {
				t.Fatal("SetMapping")
			}
			for i := range 50 {
				mustSet(t, reg, root, registry.Entry{Prog: 300000 + uint32(i), Vers: 1, Netid: "tcp", Addr: "0.0.0.0.1.1"})
			}
			for i := range 40 {
				if ok, _ := reg.Unset(root, 300000+uint32(i), 1, ""); !ok {
					t.Fatal("Unset")
				}
			}
			if _, err := reg.RegisterNamed(user, proc1, []registry.Service{
				{Name: "a.example", Network: "tcp", Port: 8080, Flags: registry.Exclusive},
				{Name: "a.example", Network: "unix", Path: "/run/a.sock"},
				{Name: "b.example", Network: "udp", Port: 53},
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.DeregisterNamed(user, []registry.Service{{Name: "b.example", Network: "udp", Port: 53}}); err != nil {
				t.Fatal(err)
			}
			wantE, wantS := reg.Snapshot()
			if tc.close {
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				abandon(t, j)
			}
			reg2, j2, st := start(t, dir, Options{})
			defer j2.Close()
			if len(st.Damaged) != 0 {
				t.Errorf("damage reported: %q", st.Damaged)
			}
			gotE, gotS := reg2.Snapshot()
			if !reflect.DeepEqual(strip(gotE), strip(wantE)) {
				t.Errorf("entries:\n got %+v\nwant %+v", gotE, wantE)
			}
			if !sameServices(gotS, wantS) {
				t.Errorf("services:\n got %+v\nwant %+v", gotS, wantS)
			}
		})
	}
}

// strip drops the monotonic clock reading, which no file keeps.
func strip(es []registry.Entry) []registry.Entry {
	out := make([]registry.Entry, len(es))
	for i, e := range es {
		e.Registered = e.Registered.Round(0)
		out[i] = e
	}
	return out
}

func sameServices(a, b []registry.Service) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.Registered, y.Registered = x.Registered.Round(0), y.Registered.Round(0)
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

func TestFilesOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	reg, j, _ := start(t, dir, Options{})
	mustSet(t, reg, root, registry.Entry{Prog: 1, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.0.1"})
	j.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %v, %v", fi.Mode(), err)
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		fi, _ := de.Info()
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", de.Name(), fi.Mode())
		}
	}
}

// BenchmarkSet measures SET followed by UNSET on a registry of 100,000
// entries with the journal on, from several goroutines as a busy daemon
// would see them; each op is one durable change.
func BenchmarkSet(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", par), func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "state")
			reg := registry.New(registry.Options{})
			var es []registry.Entry
			for i := range 100000 {
				es = append(es, registry.Entry{Prog: 1000000 + uint32(i), Vers: 1, Netid: "tcp", Addr: "0.0.0.0.1.1", Owner: "superuser"})
			}
			reg.Restore(es, nil)
			j := startAt(b, dir, 0, reg, Options{})
			defer j.Close()
			var next atomic.Uint32
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/par + 1
			t0 := time.Now()
			for range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						p := 2000000 + next.Add(1)
						reg.Set(root, registry.Entry{Prog: p, Vers: 1, Netid: "udp", Addr: "0.0.0.0.2.2"})
						reg.Unset(root, p, 1, "udp")
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(2*per*par)/time.Since(t0).Seconds(), "changes/s")
		})
	}
}

// TestCompactionInterrupted stops a compaction after each of its steps,
// and before its first step ends, takes the state directory as a crash
// there would leave it, and checks that loading it gives back every
// change: those in the old journal and those recorded in the new one
// while the snapshot was being written.
func TestCompactionInterrupted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	reg, j, _ := start(t, dir, Options{})
	for i := range 20 {
		mustSet(t, reg, root, registry.Entry{Prog: 400000 + uint32(i), Vers: 1, Netid: "tcp", Addr: "0.0.0.0.1.1"})
	}
	// Generation 2: a snapshot of the above, then a journal of changes.
	if err := j.compact(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if ok, _ := reg.Unset(root, 400000+uint32(i), 1, ""); !ok {
			t.Fatal("Unset")
		}
	}
	mustSet(t, reg, user, registry.Entry{Prog: 500000, Vers: 2, Netid: "udp", Addr: "0.0.0.0.2.2"})
	if _, err := reg.RegisterNamed(user, proc1, []registry.Service{
		{Name: "a.example", Network: "tcp", Port: 8080},
		{Name: "b.example", Network: "unix", Path: "/run/b.sock"},
	}); err != nil {
		t.Fatal(err)
	}
	beforeE, beforeS := reg.Snapshot()

	// Compaction to generation 3, with changes recorded in journal 3
	// while its snapshot is written.
	const nothingRecorded = "journal started, nothing recorded in it"
	var afterE []registry.Entry
	var afterS []registry.Service
	saved := map[string]string{}
	j.afterStep = func(step string, gen uint64) {
		if gen != 3 {
			return
		}
		if step == stepRotated {
			saved[nothingRecorded] = copyDir(t, dir)
			for i := 10; i < 15; i++ {
				if ok, _ := reg.Unset(root, 400000+uint32(i), 1, ""); !ok {
					t.Fatal("Unset")
				}
			}
			// One prog unset in journal 2 comes back in journal 3.
			mustSet(t, reg, root, registry.Entry{Prog: 400000, Vers: 1, Netid: "udp", Addr: "0.0.0.0.3.3"})
			if _, err := reg.DeregisterNamed(user, []registry.Service{{Name: "a.example", Network: "tcp", Port: 8080}}); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.RegisterNamed(user, proc1, []registry.Service{{Name: "c.example", Network: "udp", Port: 53}}); err != nil {
				t.Fatal(err)
			}
			afterE, afterS = reg.Snapshot()
		}
		saved[step] = copyDir(t, dir)
	}
	err := j.compact()
	j.afterStep = nil
	if err != nil {
		t.Fatal(err)
	}
	saved["compaction done"] = copyDir(t, dir)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if len(afterE) == 0 {
		t.Fatal("the compaction never reached its first step")
	}

	// unrenamed puts the new journal back under its temporary name,
	// cut to size bytes, as a crash in rotate leaves it.
	unrenamed := func(name string, size int64) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			path := filepath.Join(dir, name)
			if err := os.Rename(path, path+tmpName); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path+tmpName, size); err != nil {
				t.Fatal(err)
			}
		}
	}
	type files map[string]uint64 // name → generation in its header
	for _, tc := range []struct {
		name  string
		from  string
		edit  func(t *testing.T, dir string)
		files files // as the crash leaves them
		after bool  // whether journal 3's changes are there
	}{
		{"journal created, header not written", nothingRecorded, unrenamed("journal.3", 0),
			files{"snapshot": 2, "journal.2": 2, "journal.3.tmp": 0}, false},
		{"journal header cut short", nothingRecorded, unrenamed("journal.3", headerLen/2),
			files{"snapshot": 2, "journal.2": 2, "journal.3.tmp": 0}, false},
		{"journal header synced, not renamed", nothingRecorded, unrenamed("journal.3", headerLen),
			files{"snapshot": 2, "journal.2": 2, "journal.3.tmp": 3}, false},
		{nothingRecorded, nothingRecorded, nil,
			files{"snapshot": 2, "journal.2": 2, "journal.3": 3}, false},
		{"journal started, no snapshot", stepRotated, nil,
			files{"snapshot": 2, "journal.2": 2, "journal.3": 3}, true},
		{"snapshot being written", stepRotated, func(t *testing.T, dir string) {
			tmps, _ := filepath.Glob(filepath.Join(saved[stepTmpSynced], snapshotName+".tmp-*"))
			if len(tmps) != 1 {
				t.Fatalf("temporary snapshots %v, want one", tmps)
			}
			b, err := os.ReadFile(tmps[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, snapshotName+tmpName), b[:len(b)/2], 0o600); err != nil {
				t.Fatal(err)
			}
		}, files{"snapshot": 2, "snapshot.tmp": 3, "journal.2": 2, "journal.3": 3}, true},
		{"snapshot written, not renamed", stepTmpSynced, nil,
			files{"snapshot": 2, "snapshot.tmp": 3, "journal.2": 2, "journal.3": 3}, true},
		{"snapshot renamed, old journal not removed", stepRenamed, nil,
			files{"snapshot": 3, "journal.2": 2, "journal.3": 3}, true},
		{"compaction done", "compaction done", nil,
			files{"snapshot": 3, "journal.3": 3}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if saved[tc.from] == "" {
				t.Fatalf("the compaction never reached step %q", tc.from)
			}
			dir := copyDir(t, saved[tc.from])
			if tc.edit != nil {
				tc.edit(t, dir)
			}
			if got := filesIn(t, dir); !reflect.DeepEqual(got, map[string]uint64(tc.files)) {
				t.Fatalf("files (name: generation) %v, want %v", got, tc.files)
			}
			wantE, wantS := beforeE, beforeS
			if tc.after {
				wantE, wantS = afterE, afterS
			}
			// Twice: as the crash left it, then as the next start
			// rewrote it.
			for _, when := range []string{"after the crash", "after a restart"} {
				reg, j, st := start(t, dir, Options{})
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
				for _, d := range st.Damaged {
					t.Errorf("%s: damage reported: %s", when, d)
				}
				gotE, gotS := reg.Snapshot()
				if !reflect.DeepEqual(strip(gotE), strip(wantE)) {
					t.Errorf("%s: entries:\n got %+v\nwant %+v", when, gotE, wantE)
				}
				if !sameServices(gotS, wantS) {
					t.Errorf("%s: services:\n got %+v\nwant %+v", when, gotS, wantS)
				}
				gen := st.Gen + 1
				if got, want := filesIn(t, dir), (map[string]uint64{"snapshot": gen, "journal." + strconv.FormatUint(gen, 10): gen}); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: the start left files %v, want %v", when, got, want)
				}
			}
		})
	}
}

// copyDir copies the state directory src into a new directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// tmpName is a random temporary name's ending, as safefile.Create makes
// them.
const tmpName = ".tmp-0123456789abcdef"

// filesIn lists a state directory's files with the generation in each
// one's header (see the package doc), 0 when it has no whole header. Files
// kept aside as damaged are left out; a temporary file is listed as
// NAME.tmp, whatever its random part.
func filesIn(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, de := range des {
		if strings.Contains(de.Name(), damagedInfix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var gen uint64
		if len(b) >= headerLen && string(b[:len(magic)]) == magic {
			gen = binary.BigEndian.Uint64(b[8:16])
		}
		name := de.Name()
		if i := strings.Index(name, ".tmp-"); i >= 0 {
			name = name[:i] + ".tmp"
		}
		out[name] = gen
	}
	return out
}

// TestStartAndCloseLeakNothing starts and closes journals many times:
// NewJournal starts no goroutine, Close ends those Start started, and a
// journal closed without Start still stamps the state and keeps it.
func TestStartAndCloseLeakNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := filepath.Join(t.TempDir(), "state")
	want := 0
	for i := range 100 {
		st := load(t, dir, nil)
		if len(st.Entries) != want {
			t.Fatalf("cycle %d: %d entries saved, want %d", i, len(st.Entries), want)
		}
		if i > 0 && st.LastWrite.IsZero() {
			t.Fatalf("cycle %d: no time of last write", i)
		}
		reg := registry.New(registry.Options{})
		reg.Restore(st.Entries, st.Services)
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		idle := goleak.IgnoreCurrent()
		j, err := s.NewJournal(st.Gen, reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := goleak.Find(idle); err != nil {
			t.Fatalf("NewJournal started a goroutine: %v", err)
		}
		if i%2 == 0 {
			j.Start()
			mustSet(t, reg, root, registry.Entry{Prog: 400000 + uint32(i), Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})
			want++
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
