package registry

import (
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
)

// woken reports whether ch is closed within d.
func woken(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// TestWatchWakes checks that every change wakes a watcher, with the next
// index, and that nothing that changes nothing does.
func TestWatchWakes(t *testing.T) {
	root := localCaller(0, 1)
	owner := localCaller(1000, 10)
	p := proc(1000, 10)
	e := Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"}
	setUp := func(r *Registry) []Service {
		r.Set(root, e)
		svcs, _ := r.RegisterNamed(owner, p, []Service{{Name: "a.example.com", Network: netid.TCP, Port: 1, Checks: Checks{TTL: time.Minute}}})
		return svcs
	}
	tests := []struct {
		name string
		act  func(r *Registry, svcs []Service)
		wake bool
	}{
		{"set", func(r *Registry, _ []Service) {
			r.Set(root, Entry{Prog: 400001, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.2"})
		}, true},
		{"set of what is there", func(r *Registry, _ []Service) { r.Set(root, e) }, false},
		{"unset", func(r *Registry, _ []Service) { r.Unset(root, 400000, 1, "") }, true},
		{"unset of nothing", func(r *Registry, _ []Service) { r.Unset(root, 499999, 1, "") }, false},
		{"register", func(r *Registry, _ []Service) { r.RegisterNamed(owner, p, []Service{tcp("b.example.com", 2, 0)}) }, true},
		{"register of what is there", func(r *Registry, _ []Service) { r.RegisterNamed(owner, p, []Service{tcp("a.example.com", 1, 0)}) }, false},
		{"register refused", func(r *Registry, _ []Service) {
			r.RegisterNamed(localCaller(1001, 11), p, []Service{tcp("c.example.com", 2, 0)})
		}, false},
		{"health changes", func(r *Registry, s []Service) { r.SetHealth(s[0], Health{Status: Critical}) }, true},
		{"health stays", func(r *Registry, s []Service) { r.SetHealth(s[0], Health{Status: Passing, Output: "fine"}) }, false},
		{"process exits", func(r *Registry, _ []Service) { r.DropProcess(p.PID, p.Start) }, true},
		{"exit of a process without services", func(r *Registry, _ []Service) { r.DropProcess(99, 990) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Options{})
			svcs := setUp(r)
			before, ch := r.Watch()
			go tc.act(r, svcs)
			// A wake is waited for generously; its absence for a
			// moment, after the change is surely done.
			wait := 10 * time.Second
			if !tc.wake {
				wait = 200 * time.Millisecond
			}
			if got := woken(ch, wait); got != tc.wake {
				t.Fatalf("woken %v, want %v", got, tc.wake)
			}
			after, _ := r.Watch()
			if tc.wake && after <= before || !tc.wake && after != before {
				t.Errorf("index %d -> %d", before, after)
			}
		})
	}
}

// TestChangesSince checks what a watcher resuming from an index gets.
func TestChangesSince(t *testing.T) {
	r := New(Options{FeedSize: 4})
	root := localCaller(0, 1)
	for i := range 6 {
		r.Set(root, Entry{Prog: 400000 + uint32(i), Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})
	}
	r.Unset(root, 400000, 1, "tcp")
	last := r.Index()
	if last != 7 {
		t.Fatalf("index %d after 7 changes", last)
	}
	tests := []struct {
		after uint64
		n     int
		ok    bool
	}{
		{7, 0, true},
		{6, 1, true},
		{3, 4, true},  // the oldest kept is 4
		{2, 0, false}, // 3 is gone
		{8, 0, false}, // not yet, or another history's
	}
	for _, tc := range tests {
		cs, ok := r.ChangesSince(tc.after)
		if ok != tc.ok || len(cs) != tc.n {
			t.Errorf("ChangesSince(%d) = %d changes, %v; want %d, %v", tc.after, len(cs), ok, tc.n, tc.ok)
			continue
		}
		for i, c := range cs {
			if c.Index != tc.after+uint64(i)+1 {
				t.Errorf("ChangesSince(%d)[%d] has index %d", tc.after, i, c.Index)
			}
		}
	}
	if cs, _ := r.ChangesSince(6); cs[0].Op != OpUnset || cs[0].Reason != ReasonUnset || cs[0].Entry.Addr != "0.0.0.0.4.1" {
		t.Errorf("last change %+v, want the whole unset entry with its reason", cs[0])
	}
}

// TestResume checks that a restart's differences become changes after
// the saved index: what did not come back is removed with its reason,
// what is new is added, and what came back as it was is not mentioned.
func TestResume(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	pm := Entry{Prog: 100000, Vers: 2, Netid: "udp", Addr: "0.0.0.0.0.111", Owner: OwnerSuperuser}
	kept := Entry{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1", Owner: OwnerSuperuser, Registered: at}
	lost := Entry{Prog: 100005, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.3.1", Owner: OwnerSuperuser, Registered: at}
	live := Service{Name: "live.example.com", Network: netid.TCP, Port: 1, Process: proc(1000, 10), Registered: at}
	dead := Service{Name: "dead.example.com", Network: netid.TCP, Port: 2, Process: proc(1000, 20), Registered: at}
	saved := Saved{
		Index:    41,
		Feed:     []Change{{Op: OpSet, Entry: lost, Index: 40}, {Op: OpRegister, Service: dead, Index: 41}},
		Entries:  []Entry{pm, kept, lost},
		Services: []Service{live, dead},
	}
	r := New(Options{Now: func() time.Time { return at }})
	r.Set(Caller{Transport: Internal}, Entry{Prog: 100000, Vers: 2, Netid: "udp", Addr: "0.0.0.0.0.111"})
	r.Set(Caller{Transport: Internal}, Entry{Prog: 100000, Vers: 4, Netid: "local", Addr: "/run/rpcbind.sock"})
	r.Restore([]Entry{kept}, []Service{live})
	r.Resume(saved, func(c Change) string { return "gone while stopped" })
	if r.Index() != 44 {
		t.Fatalf("index %d, want 41 and three differences", r.Index())
	}
	cs, ok := r.ChangesSince(39)
	if !ok || len(cs) != 5 {
		t.Fatalf("ChangesSince(39) = %+v, %v", cs, ok)
	}
	want := []struct {
		op   ChangeOp
		what string
	}{
		{OpSet, "100005"}, {OpRegister, "dead.example.com"},
		{OpUnset, "100005"}, {OpDeregister, "dead.example.com"},
		{OpSet, "100000 local"}, // the portmapper's new entry
	}
	for i, w := range want {
		c := cs[i]
		what := c.Service.Name
		if c.Op == OpSet || c.Op == OpUnset {
			what = itoa(uint64(c.Entry.Prog))
			if c.Entry.Netid == "local" {
				what += " local"
			}
		}
		if c.Op != w.op || what != w.what {
			t.Errorf("change %d: %v %s, want %v %s", c.Index, c.Op, what, w.op, w.what)
		}
		if (c.Op == OpUnset || c.Op == OpDeregister) && c.Reason != "gone while stopped" {
			t.Errorf("change %d has reason %q", c.Index, c.Reason)
		}
	}
	if cs[4].Index != 44 {
		t.Errorf("last change has index %d", cs[4].Index)
	}
}
