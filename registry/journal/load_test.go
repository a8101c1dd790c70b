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
// health of what is not held adds nothing. Each case's steps are replayed
// for an entry and a service at once, which must not disturb each other.
func TestReplay(t *testing.T) {
	type step struct {
		act    int // add, remove or health
		key    uint32
		other  string // what is not the key: an entry's address, a service's executable
		status registry.Status
	}
	const (
		add = iota
		remove
		health
	)
	entryOps := [...]registry.ChangeOp{add: registry.OpSet, remove: registry.OpUnset, health: registry.OpEntryHealth}
	serviceOps := [...]registry.ChangeOp{add: registry.OpRegister, remove: registry.OpDeregister, health: registry.OpServiceHealth}
	w, c := registry.Warning, registry.Critical
	tests := []struct {
		name  string
		steps []step
		want  []string // key, other and status of what is held, in order
	}{
		{"additions in order", []step{{add, 2, "a", 0}, {add, 1, "b", 0}}, []string{"2 a passing", "1 b passing"}},
		{"an addition of what is held changes nothing", []step{{add, 1, "a", 0}, {add, 2, "a", 0}, {add, 1, "b", w}}, []string{"1 a passing", "2 a passing"}},
		{"a removal forgets, and a new addition goes last", []step{{add, 1, "a", 0}, {add, 2, "a", 0}, {remove, 1, "", 0}, {add, 1, "b", 0}}, []string{"2 a passing", "1 b passing"}},
		{"a change of health keeps the place", []step{{add, 1, "a", 0}, {add, 2, "a", 0}, {health, 1, "other", c}}, []string{"1 a critical", "2 a passing"}},
		{"a change of health of what is not held adds nothing", []step{{health, 1, "a", c}, {add, 1, "a", 0}, {remove, 1, "a", 0}, {health, 1, "a", c}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder(0)
			for _, s := range tt.steps {
				h := registry.Health{Status: s.status}
				b.apply(registry.Change{Op: entryOps[s.act], Entry: registry.Entry{Prog: s.key, Vers: 1, Netid: netid.TCP, Addr: s.other, Health: h}})
				b.apply(registry.Change{Op: serviceOps[s.act], Service: registry.Service{Name: fmt.Sprint("svc", s.key), Network: netid.TCP, Port: 1, Process: registry.Process{Exe: s.other}, Health: h}})
			}
			st := b.state()
			var entries, services []string
			for _, e := range st.Entries {
				entries = append(entries, fmt.Sprintf("%d %s %v", e.Prog, e.Addr, e.Health.Status))
			}
			for _, s := range st.Services {
				services = append(services, fmt.Sprintf("%s %s %v", s.Name[len("svc"):], s.Exe, s.Health.Status))
			}
			if !slices.Equal(entries, tt.want) || !slices.Equal(services, tt.want) {
				t.Errorf("entries %q, services %q; want %q for both", entries, services, tt.want)
			}
		})
	}
}
