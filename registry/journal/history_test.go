package journal

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
)

// brief is what a watcher tells a change by: its index, kind, reason and
// what it names.
type brief struct {
	index  uint64
	op     registry.ChangeOp
	reason string
	name   string
	prog   uint32
	status registry.Status
}

func briefs(cs []registry.Change) []brief {
	out := make([]brief, len(cs))
	for i, c := range cs {
		out[i] = brief{c.Index, c.Op, c.Reason, c.Service.Name, c.Entry.Prog, c.Service.Health.Status}
	}
	return out
}

// TestHistorySurvives checks that the index and the latest changes come
// back whole after a clean stop, a crash and compactions: a watcher that
// resumes from any index the daemon published gets exactly the changes
// after it, and the next change goes on from the last index.
func TestHistorySurvives(t *testing.T) {
	for _, tc := range []struct {
		name    string
		compact int64
		close   bool
	}{
		{"closed", 0, true},
		{"abandoned", 0, false},
		{"compacting often", 300, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			reg, j, _ := start(t, dir, Options{CompactBytes: tc.compact})
			first := reg.Index()
			mustSet(t, reg, root, registry.Entry{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1"})
			svc := registry.Service{Name: "a.example", Network: "tcp", Port: 8080, Checks: registry.Checks{TTL: time.Minute}}
			added, err := reg.RegisterNamed(user, proc1, []registry.Service{svc, {Name: "b.example", Network: "udp", Port: 53}})
			if err != nil {
				t.Fatal(err)
			}
			if !reg.SetHealth(added[0], registry.Health{Status: registry.Critical, Output: "TTL expired"}) {
				t.Fatal("SetHealth changed nothing")
			}
			if _, err := reg.DeregisterNamed(user, []registry.Service{{Name: "b.example", Network: "udp", Port: 53}}); err != nil {
				t.Fatal(err)
			}
			reg.Unset(root, 100003, 3, "")
			want, ok := reg.ChangesSince(first)
			if !ok || len(want) != 6 {
				t.Fatalf("ChangesSince(%d) = %d changes, %v; want 6", first, len(want), ok)
			}
			last := reg.Index()
			if tc.close {
				if err := j.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				abandon(t, j)
			}
			reg2, j2, st := start(t, dir, Options{CompactBytes: tc.compact})
			defer j2.Close()
			if st.Index != last || reg2.Index() != last {
				t.Fatalf("index after restart: saved %d, registry %d; want %d", st.Index, reg2.Index(), last)
			}
			got, ok := reg2.ChangesSince(first)
			if !ok {
				t.Fatalf("ChangesSince(%d) not at hand after restart", first)
			}
			if g, w := briefs(got), briefs(want); !slices.Equal(g, w) {
				t.Errorf("history after restart:\n got %+v\nwant %+v", g, w)
			}
			if s := reg2.LookupNamed("a.example"); len(s) != 1 || s[0].Health.Status != registry.Critical || s[0].Checks.TTL != time.Minute {
				t.Errorf("a.example after restart: %+v, want critical with its TTL", s)
			}
			mustSet(t, reg2, root, registry.Entry{Prog: 100005, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.8.2"})
			if reg2.Index() != last+1 {
				t.Errorf("next change has index %d, want %d", reg2.Index(), last+1)
			}
		})
	}
}

// TestLoadVersion3 reads a state directory of the format before indices
// (testdata/v3, written by portmapd before it kept its history): the
// registrations come back, the history starts afresh later than any
// index, and the next generation is written in the current format with
// that index.
func TestLoadVersion3(t *testing.T) {
	dir := copyState(t, "testdata/v3")
	st := load(t, dir, nil)
	if len(st.Damaged) > 0 {
		t.Fatalf("version 3 files reported damaged: %q", st.Damaged)
	}
	if st.Index != 0 || len(st.Feed) != 0 {
		t.Errorf("index %d and %d changes from a format without them", st.Index, len(st.Feed))
	}
	if len(st.Entries) != 2 || st.Entries[0].Prog != 300000 || st.Entries[1].Prog != 100021 {
		t.Errorf("entries %+v, want 300000 and 100021", st.Entries)
	}
	if len(st.Services) != 1 || st.Services[0].Name != "backup.example.com" || st.Services[0].Process != proc1 {
		t.Errorf("services %+v, want backup.example.com of %+v", st.Services, proc1)
	}
	before := uint64(time.Now().UnixMicro())
	reg, j, _ := start(t, dir, Options{})
	if reg.Index() < before {
		t.Errorf("a new history starts at %d, before the time %d", reg.Index(), before)
	}
	mustSet(t, reg, root, registry.Entry{Prog: 100024, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.3.2"})
	want := reg.Index()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if st := load(t, dir, nil); st.Index != want || len(st.Entries) != 3 {
		t.Errorf("after restart: index %d with %d entries, want %d with 3", st.Index, len(st.Entries), want)
	}
}

// TestHistoryGap checks that a record lost to damage in the middle of the
// journal is not crossed: a watcher from before it must start again from
// a listing, and one from after it resumes.
func TestHistoryGap(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	reg, j, st := start(t, dir, Options{})
	first := reg.Index()
	for i := range 4 {
		mustSet(t, reg, root, registry.Entry{Prog: 300000 + uint32(i), Vers: 1, Netid: "tcp", Addr: "0.0.0.0.1.1"})
	}
	last := reg.Index()
	abandon(t, j)
	// Spoil the second record's checksum: the first change after first+1.
	name := filepath.Join(dir, journalPrefix+"1")
	if st.Gen != 0 {
		t.Fatalf("fresh state of generation %d", st.Gen)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	off := headerLen
	for range 1 {
		off += recordHeadLen + int(uint32(b[off])<<24|uint32(b[off+1])<<16|uint32(b[off+2])<<8|uint32(b[off+3]))
	}
	b[off+recordHeadLen+1] ^= 0xff
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
	reg2, j2, st2 := start(t, dir, Options{})
	defer j2.Close()
	if len(st2.Damaged) != 1 {
		t.Fatalf("damage %q, want the journal", st2.Damaged)
	}
	if reg2.Index() != last {
		t.Errorf("index %d, want %d", reg2.Index(), last)
	}
	if _, ok := reg2.ChangesSince(first); ok {
		t.Error("history from before the lost record is at hand")
	}
	if cs, ok := reg2.ChangesSince(first + 2); !ok || len(cs) != 2 {
		t.Errorf("history after the lost record: %d changes, %v; want 2", len(cs), ok)
	}
}
