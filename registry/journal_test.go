package registry

import (
	"slices"
	"testing"
)

// fakeJournal keeps what it is handed. Its wait function checks that the
// registry is unlocked by then, since a request waiting for the disk with
// the lock held would stall every other request.
type fakeJournal struct {
	t       *testing.T
	r       *Registry
	records [][]Change
	waited  int
}

func (j *fakeJournal) Record(changes []Change) func() {
	if j.r.mu.TryLock() {
		j.r.mu.Unlock()
		j.t.Error("Record called without the registry's lock")
	}
	j.records = append(j.records, slices.Clone(changes))
	return func() {
		if !j.r.mu.TryLock() {
			j.t.Error("waiting for the journal with the registry locked")
			return
		}
		j.r.mu.Unlock()
		j.waited++
	}
}

// TestEveryChangeIsJournaled: each request that changes the registry hands
// all its changes to the journal as one record, under the lock, and waits
// for them after releasing it; a request that changes nothing records
// nothing.
func TestEveryChangeIsJournaled(t *testing.T) {
	p := proc(1000, 10)
	owner := localCaller(1000, 10)
	e := Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"}
	seed := func(t *testing.T, r *Registry) {
		mustSet(t, r, root, e)
		mustSet(t, r, root, Entry{Prog: 400000, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.1"})
		if _, err := r.RegisterNamed(owner, p, []Service{tcp("a.example.com", 1, 0), tcp("b.example.com", 2, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		act  func(t *testing.T, r *Registry)
		want [][]ChangeOp // the ops of each record
	}{
		{"set", func(t *testing.T, r *Registry) {
			r.Set(root, Entry{Prog: 400001, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})
		}, [][]ChangeOp{{OpSet}}},
		{"set of a registered key", func(t *testing.T, r *Registry) { r.Set(root, e) }, nil},
		{"set refused", func(t *testing.T, r *Registry) { r.Set(owner, Entry{Prog: 400001, Vers: 1, Netid: "x", Addr: "a"}) }, nil},
		{"unset on every netid", func(t *testing.T, r *Registry) { r.Unset(root, 400000, 1, "") }, [][]ChangeOp{{OpUnset, OpUnset}}},
		{"unset of nothing", func(t *testing.T, r *Registry) { r.Unset(root, 400009, 1, "") }, nil},
		{"unset mapping: tcp, then udp", func(t *testing.T, r *Registry) { r.UnsetMapping(root, 400000, 1) }, [][]ChangeOp{{OpUnset}, {OpUnset}}},
		{"prune", func(t *testing.T, r *Registry) {
			got, _ := r.LookupExact(400000, 1, "tcp")
			r.Prune(got, "gone")
		}, [][]ChangeOp{{OpUnset}}},
		{"register", func(t *testing.T, r *Registry) {
			r.RegisterNamed(owner, p, []Service{tcp("c.example.com", 3, 0), tcp("a.example.com", 1, 0)})
		}, [][]ChangeOp{{OpRegister}}},
		{"register refused", func(t *testing.T, r *Registry) {
			r.RegisterNamed(owner, proc(1000, 11), []Service{tcp("c.example.com", 3, Exclusive), tcp("a.example.com", 1, Exclusive)})
		}, nil},
		{"deregister services", func(t *testing.T, r *Registry) {
			r.DeregisterNamed(owner, []Service{tcp("a.example.com", 1, 0), tcp("b.example.com", 2, 0)})
		}, [][]ChangeOp{{OpDeregister, OpDeregister}}},
		{"deregister of an unknown service", func(t *testing.T, r *Registry) {
			r.DeregisterNamed(owner, []Service{tcp("a.example.com", 1, 0), tcp("z.example.com", 2, 0)})
		}, nil},
		{"deregister a name", func(t *testing.T, r *Registry) { r.DeregisterName(owner, "A.example.com") }, [][]ChangeOp{{OpDeregister}}},
		{"drop a process", func(t *testing.T, r *Registry) { r.DropProcess(p.PID, p.Start) }, [][]ChangeOp{{OpDeregister, OpDeregister}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{})
			seed(t, r)
			j := &fakeJournal{t: t, r: r}
			r.SetJournal(j)
			tc.act(t, r)
			var got [][]ChangeOp
			for _, rec := range j.records {
				var ops []ChangeOp
				for _, c := range rec {
					ops = append(ops, c.Op)
				}
				got = append(got, ops)
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("recorded %v, want %v", got, tc.want)
			}
			if j.waited != len(j.records) {
				t.Fatalf("waited for %d of %d records", j.waited, len(j.records))
			}
			checkIndexes(t, r)
		})
	}
}
