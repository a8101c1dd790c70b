package journal

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
)

var (
	root  = registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 0, PID: 4242}}
	user  = registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1000, PID: 77}}
	loop  = registry.Caller{Transport: registry.Network, Addr: netip.MustParseAddrPort("127.0.0.1:600")}
	proc1 = registry.Process{PID: 77, UID: 1000, GID: 1000, Start: 123456, Exe: "/usr/bin/svc"}
)

// start loads dir into a fresh registry and starts a journal on it.
func start(t testing.TB, dir string, opts Options) (*registry.Registry, *Journal, State) {
	t.Helper()
	st, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(registry.Options{})
	reg.Restore(st.Entries, st.Services)
	j, err := Start(dir, st.Gen, reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return reg, j, st
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
			if ok, _ := reg.SetMapping(loop, registry.Mapping{Prog: 200000, Vers: 1, Prot: registry.ProtoUDP, Port: 999}); !ok {
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
			j, err := Start(dir, 0, reg, Options{})
			if err != nil {
				b.Fatal(err)
			}
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
