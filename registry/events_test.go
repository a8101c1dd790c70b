package registry

import (
	"fmt"
	"testing"
	"time"
)

// TestRecentEvents checks which removals count as the daemon's own, how
// they are counted by kind, and that the ring keeps the latest in order.
func TestRecentEvents(t *testing.T) {
	root := localCaller(0, 1)
	tests := []struct {
		name   string
		act    func(t *testing.T, r *Registry)
		want   Removals
		events int
	}{
		{"prune counts as rpc", func(t *testing.T, r *Registry) {
			e := Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"}
			r.Set(root, e)
			e, _ = r.LookupExact(400000, 1, "tcp")
			if !r.Prune(e, "gone") {
				t.Fatal("not pruned")
			}
		}, Removals{RPC: 1}, 1},
		{"prune of a re-registered entry does nothing", func(t *testing.T, r *Registry) {
			e := Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"}
			r.Set(root, e)
			old, _ := r.LookupExact(400000, 1, "tcp")
			r.Unset(root, 400000, 1, "tcp")
			r.Set(root, Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.2"})
			if r.Prune(old, "gone") {
				t.Fatal("pruned the new registration")
			}
		}, Removals{}, 0},
		{"process exit counts as named", func(t *testing.T, r *Registry) {
			p := proc(1000, 10)
			r.RegisterNamed(localCaller(1000, 10), p, []Service{tcp("a.example.com", 1, 0), tcp("b.example.com", 2, 0)})
			r.DropProcess(p.PID, p.Start)
		}, Removals{Named: 2}, 2},
		{"a caller's removals are not the daemon's", func(t *testing.T, r *Registry) {
			p := proc(1000, 10)
			r.RegisterNamed(localCaller(1000, 10), p, []Service{tcp("a.example.com", 1, 0)})
			r.DeregisterName(localCaller(1000, 10), "a.example.com")
			r.Set(root, Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})
			r.Unset(root, 400000, 1, "")
		}, Removals{}, 0},
		{"ring keeps the latest", func(t *testing.T, r *Registry) {
			for i := range maxEvents + 5 {
				p := proc(1000, int32(100+i))
				r.RegisterNamed(localCaller(1000, p.PID), p, []Service{tcp(fmt.Sprintf("s%d.example.com", i), 1, 0)})
				r.DropProcess(p.PID, p.Start)
			}
		}, Removals{Named: maxEvents + 5}, maxEvents},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New(Options{Now: func() time.Time { return time.Unix(1_800_000_000, 0) }})
			tc.act(t, r)
			events, n := r.RecentEvents()
			if n != tc.want || len(events) != tc.events {
				t.Fatalf("counts %+v with %d events, want %+v with %d: %+v", n, len(events), tc.want, tc.events, events)
			}
			if tc.events == maxEvents {
				if first, last := events[0].What, events[len(events)-1].What; first[:3] != "s5." || last[:4] != "s68." {
					t.Errorf("ring holds %q .. %q, want s5 .. s68", first, last)
				}
			}
		})
	}
}
