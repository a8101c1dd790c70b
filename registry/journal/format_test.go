package journal

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
)

// copyState copies a recorded state directory to a fresh one with the
// owner-only modes Load insists on, which git does not keep.
func copyState(t *testing.T, from string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(from, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestLoadVersion1 reads a state directory written by the first format,
// whose set changes carry no network namespace (testdata/v1, written by
// portmapd before the namespace was recorded), and checks that the next
// generation is written in the current format and keeps namespaces.
func TestLoadVersion1(t *testing.T) {
	dir := copyState(t, "testdata/v1")
	st := load(t, dir, nil)
	if len(st.Damaged) > 0 {
		t.Fatalf("version 1 files reported damaged: %q", st.Damaged)
	}
	at := time.Unix(1700000000, 0)
	want := []registry.Entry{
		{Prog: 300000, Vers: 1, Netid: "udp", Addr: "0.0.0.0.39.16", Owner: "1000", PID: 77, Registered: at},
		{Prog: 100021, Vers: 4, Netid: "tcp6", Addr: "::.128.2", Owner: registry.OwnerSuperuser, Registered: at},
	}
	if len(st.Entries) != len(want) {
		t.Fatalf("entries %+v, want %+v", st.Entries, want)
	}
	for i, e := range st.Entries {
		if e != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, e, want[i])
		}
	}
	if len(st.Services) != 1 || st.Services[0].Name != "backup.example.com" || st.Services[0].Process != proc1 {
		t.Errorf("services %+v, want backup.example.com of %+v", st.Services, proc1)
	}

	reg := registry.New(registry.Options{})
	reg.Restore(st.Entries, st.Services)
	j := startAt(t, dir, st.Gen, reg, Options{})
	foreign := registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 0, PID: 99, NetNS: 4580}}
	mustSet(t, reg, foreign, registry.Entry{Prog: 100024, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.3.2"})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"snapshot", journalPrefix + strconv.FormatUint(st.Gen+1, 10)} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if v := binary.BigEndian.Uint16(b[4:6]); v != formatVersion {
			t.Errorf("%s written in format %d, want %d", name, v, formatVersion)
		}
	}
	st2 := load(t, dir, nil)
	if len(st2.Entries) != 3 || st2.Entries[2].NetNS != 4580 {
		t.Fatalf("after restart: %+v, want the third entry with namespace 4580", st2.Entries)
	}
}
