package journal

import (
	"fmt"
	"slices"
	"testing"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// TestReplay: the replay treats RPC entries and named services alike: an
// addition of what is held changes nothing, a removal forgets, a change
// of health changes the health held and keeps its place, and a change of
// health of what is not held adds nothing.
func TestReplay(t *testing.T) {
	entry := func(prog uint32, addr string, status registry.Status) registry.Change {
		return registry.Change{Entry: registry.Entry{Prog: prog, Vers: 1, Netid: netid.TCP, Addr: addr, Health: registry.Health{Status: status}}}
	}
	service := func(name string, port uint16, status registry.Status) registry.Change {
		return registry.Change{Service: registry.Service{Name: name, Network: netid.TCP, Port: port, Health: registry.Health{Status: status}}}
	}
	op := func(o registry.ChangeOp, c registry.Change) registry.Change { c.Op = o; return c }
	set, unset, entryHealth := registry.OpSet, registry.OpUnset, registry.OpEntryHealth
	reg, dereg, serviceHealth := registry.OpRegister, registry.OpDeregister, registry.OpServiceHealth
	w, c := registry.Warning, registry.Critical
	tests := []struct {
		name         string
		changes      []registry.Change
		wantEntries  []string
		wantServices []string
	}{
		{
			name: "additions in order",
			changes: []registry.Change{
				op(set, entry(2, "a", 0)), op(reg, service("b", 1, 0)), op(set, entry(1, "b", 0)), op(reg, service("a", 1, 0)),
			},
			wantEntries:  []string{"2 a passing", "1 b passing"},
			wantServices: []string{"b 1 passing", "a 1 passing"},
		},
		{
			name: "an addition of what is held changes nothing",
			changes: []registry.Change{
				op(set, entry(1, "a", 0)), op(set, entry(2, "a", 0)), op(set, entry(1, "b", w)),
				op(reg, service("x", 1, 0)), op(reg, service("y", 1, 0)), op(reg, service("X", 1, w)),
			},
			wantEntries:  []string{"1 a passing", "2 a passing"},
			wantServices: []string{"x 1 passing", "y 1 passing"},
		},
		{
			name: "a removal forgets, and a new addition goes last",
			changes: []registry.Change{
				op(set, entry(1, "a", 0)), op(set, entry(2, "a", 0)), op(unset, entry(1, "", 0)), op(set, entry(1, "b", 0)),
				op(reg, service("x", 1, 0)), op(reg, service("x", 2, 0)), op(dereg, service("X", 1, 0)), op(reg, service("x", 1, 0)),
			},
			wantEntries:  []string{"2 a passing", "1 b passing"},
			wantServices: []string{"x 2 passing", "x 1 passing"},
		},
		{
			name: "a change of health keeps the place",
			changes: []registry.Change{
				op(set, entry(1, "a", 0)), op(set, entry(2, "a", 0)), op(entryHealth, entry(1, "other", c)),
				op(reg, service("x", 1, 0)), op(reg, service("y", 1, 0)), op(serviceHealth, service("X", 1, w)),
			},
			wantEntries:  []string{"1 a critical", "2 a passing"},
			wantServices: []string{"x 1 warning", "y 1 passing"},
		},
		{
			name: "a change of health of what is not held adds nothing",
			changes: []registry.Change{
				op(entryHealth, entry(1, "a", c)), op(serviceHealth, service("x", 1, c)),
				op(set, entry(1, "a", 0)), op(unset, entry(1, "a", 0)), op(entryHealth, entry(1, "a", c)),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder(0)
			for _, ch := range tt.changes {
				b.apply(ch)
			}
			st := b.state()
			var entries, services []string
			for _, e := range st.Entries {
				entries = append(entries, fmt.Sprintf("%d %s %v", e.Prog, e.Addr, e.Health.Status))
			}
			for _, s := range st.Services {
				services = append(services, fmt.Sprintf("%s %d %v", s.Name, s.Port, s.Health.Status))
			}
			if !slices.Equal(entries, tt.wantEntries) || !slices.Equal(services, tt.wantServices) {
				t.Errorf("entries %q services %q, want %q %q", entries, services, tt.wantEntries, tt.wantServices)
			}
		})
	}
}
