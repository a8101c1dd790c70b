package registry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
)

// check verifies that the list, the count, the indexes, the program rings
// and the interned strings describe the same entries.
func (t *rpcTable) check() error {
	var list []nodeID
	var prev nodeID
	for n := t.head; n != 0; n = t.at(n).next {
		if t.at(n).prev != prev {
			return fmt.Errorf("broken prev link at %+v", t.entry(n))
		}
		prev = n
		list = append(list, n)
	}
	if t.tail != prev || len(list) != t.n || t.byKey.n != t.n {
		return fmt.Errorf("list %d, n %d, byKey %d, tail ok %v", len(list), t.n, t.byKey.n, t.tail == prev)
	}
	pos := map[nodeID]int{}
	for i, n := range list {
		pos[n] = i
	}
	programs := map[uint32][]nodeID{}
	for _, n := range list {
		x := t.at(n)
		e := t.entry(n)
		if string(e.Netid) != string(netid.ID(t.netids.vals[x.netid])) || t.netids.vals[x.lnetid] != strings.ToLower(string(e.Netid)) {
			return fmt.Errorf("netids of %+v: %q %q", e, t.netids.vals[x.netid], t.netids.vals[x.lnetid])
		}
		if got := t.find(x.prog, x.vers, netid.ID(t.netids.vals[x.lnetid])); got != n {
			return fmt.Errorf("byKey does not find %+v", e)
		}
		programs[x.prog] = append(programs[x.prog], n)
	}
	if t.byProg.n != len(programs) {
		return fmt.Errorf("byProg holds %d programs, want %d", t.byProg.n, len(programs))
	}
	for prog, nodes := range programs {
		first := t.program(prog)
		var ring []nodeID
		for n := first; ; {
			ring = append(ring, n)
			if t.at(t.at(n).progNext).progPrev != n {
				return fmt.Errorf("program %d: broken progPrev link", prog)
			}
			if n = t.at(n).progNext; n == first || len(ring) > len(nodes) {
				break
			}
		}
		if !slices.Equal(ring, nodes) {
			return fmt.Errorf("program %d: ring %v, want %v in registration order", prog, ring, nodes)
		}
	}
	netids, owners, namespaces := map[uint32]uint32{}, map[uint32]uint32{}, map[uint32]uint32{}
	var seq uint64
	for _, n := range list {
		x := t.at(n)
		netids[uint32(x.netid)]++
		netids[uint32(x.lnetid)]++
		owners[uint32(x.owner)]++
		namespaces[uint32(x.netns)]++
		if x.seq <= seq || x.seq > t.seq {
			return fmt.Errorf("%+v: seq %d after %d (last given %d)", t.entry(n), x.seq, seq, t.seq)
		}
		seq = x.seq
	}
	return errors.Join(checkInterned("netids", &t.netids, netids), checkInterned("owners", &t.owners, owners), checkInterned("namespaces", &t.namespaces, namespaces))
}

// checkInterned verifies that tab counts each value's users as refs
// does, and indexes every value it holds.
func checkInterned[T comparable](name string, tab *interned[T], refs map[uint32]uint32) error {
	var zero T
	for id, v := range tab.vals {
		if id == 0 {
			continue
		}
		if tab.refs[id] != refs[uint32(id)] {
			return fmt.Errorf("%s: %v counted %d, used %d", name, v, tab.refs[id], refs[uint32(id)])
		}
		if v != zero && tab.ids[v] != uint32(id) {
			return fmt.Errorf("%s: %v not indexed", name, v)
		}
	}
	return nil
}

// addrOf is the address the random test registers for k at step i: its
// key, then a length of its own, so that the arena holds them unevenly.
func addrOf(k key, i int) string {
	return fmt.Sprintf("%04x.%d/%s.", k.prog, k.vers, k.netid) + strings.Repeat("x", i%97)
}

// TestTableRandom: a long random run of registrations and removals keeps
// the table's indexes, rings and interned strings consistent with a plain
// map of the same entries, through growing and shrinking, and back to
// nothing.
func TestTableRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tab rpcTable
	model := map[key]nodeID{}
	addrs := map[key]string{}
	netids := []netid.ID{"tcp", "udp", "TCP", "tcp6", "Udp6", "local"}
	owners := []string{OwnerSuperuser, OwnerUnknown, "1000", "1001"}
	for i := range 20000 {
		k := key{uint32(rng.IntN(300)), uint32(rng.IntN(4)), ""}
		spelled := netids[rng.IntN(len(netids))]
		k.netid = spelled.Lower()
		if n, ok := model[k]; ok && (i > 15000 || rng.IntN(3) == 0) {
			tab.remove(n)
			delete(model, k)
		} else if !ok && i <= 15000 {
			n, ok := tab.insert(k, Entry{Prog: k.prog, Vers: k.vers, Netid: spelled, Addr: addrOf(k, i), Owner: owners[rng.IntN(len(owners))], NetNS: uint64(rng.IntN(3))})
			if !ok {
				t.Fatal("insert refused")
			}
			model[k], addrs[k] = n, addrOf(k, i)
		}
		if i%997 == 0 {
			if err := tab.check(); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if tab.n != len(model) {
				t.Fatalf("step %d: table holds %d, want %d", i, tab.n, len(model))
			}
			for k, n := range model {
				if got := tab.find(k.prog, k.vers, k.netid); got != n {
					t.Fatalf("step %d: %v found at %d, want %d", i, k, got, n)
				}
				if a := tab.entry(n).Addr; a != addrs[k] {
					t.Fatalf("step %d: %v has address %q, want %q", i, k, a, addrs[k])
				}
			}
		}
	}
	for k, n := range model {
		tab.remove(n)
		delete(model, k)
	}
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
	if tab.n != 0 || len(tab.slabs) != 0 || len(tab.byKey.slots) != 0 || len(tab.netids.ids) != 0 || len(tab.owners.ids) != 0 || len(tab.namespaces.ids) != 0 {
		t.Errorf("empty table holds %d nodes, %d slabs, %d slots, %d netids, %d owners, %d namespaces", tab.n, len(tab.slabs), len(tab.byKey.slots), len(tab.netids.ids), len(tab.owners.ids), len(tab.namespaces.ids))
	}
}

// TestAddrArenaCompaction: removing most entries compacts the addresses
// into fewer chunks; the remaining entries keep theirs, and the strings
// handed out before keep their bytes.
func TestAddrArenaCompaction(t *testing.T) {
	var tab rpcTable
	var ids []nodeID
	var before []string
	for i := range 5000 {
		k := key{uint32(i), 1, "tcp"}
		id, ok := tab.insert(k, Entry{Prog: k.prog, Vers: 1, Netid: "tcp", Addr: addrOf(k, 40)})
		if !ok {
			t.Fatal("insert refused")
		}
		ids = append(ids, id)
		before = append(before, tab.entry(id).Addr)
	}
	chunks := len(tab.addrs.chunks)
	for _, id := range ids[:4500] {
		tab.remove(id)
	}
	if len(tab.addrs.chunks) >= chunks {
		t.Errorf("%d chunks after removing 9 entries in 10, %d before", len(tab.addrs.chunks), chunks)
	}
	for i, id := range ids[4500:] {
		if a, want := tab.entry(id).Addr, addrOf(key{uint32(4500 + i), 1, "tcp"}, 40); a != want {
			t.Fatalf("%q, want %q", a, want)
		}
	}
	for i, a := range before {
		if want := addrOf(key{uint32(i), 1, "tcp"}, 40); a != want {
			t.Fatalf("an address handed out became %q, was %q", a, want)
		}
	}
	if err := tab.check(); err != nil {
		t.Fatal(err)
	}
}

func TestAddrArenaLimit(t *testing.T) {
	var tab rpcTable
	if _, ok := tab.insert(key{1, 1, "tcp"}, Entry{Prog: 1, Vers: 1, Netid: "tcp", Addr: strings.Repeat("x", arenaChunk)}); ok {
		t.Error("an address of a chunk was taken")
	}
	if _, ok := tab.insert(key{1, 1, "tcp"}, Entry{Prog: 1, Vers: 1, Netid: "tcp", Addr: strings.Repeat("x", arenaChunk-1)}); !ok {
		t.Error("the longest address was refused")
	}
}

// TestFindRegistration: an entry is found as it was registered, by its
// key in any spelling of its netid, and not once its address, pid or
// registration time differ from what the table holds.
func TestFindRegistration(t *testing.T) {
	var tab rpcTable
	held := Entry{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1", PID: 42, Registered: time.Unix(1700000000, 5)}
	id, ok := tab.insert(key{held.Prog, held.Vers, held.Netid.Lower()}, held)
	if !ok {
		t.Fatal("insert refused")
	}
	tests := []struct {
		name   string
		change func(*Entry)
		want   nodeID
	}{
		{"as registered", func(*Entry) {}, id},
		{"netid in another case", func(e *Entry) { e.Netid = "TCP" }, id},
		{"another owner", func(e *Entry) { e.Owner = "1000" }, id},
		{"another address", func(e *Entry) { e.Addr = "0.0.0.0.8.2" }, 0},
		{"another pid", func(e *Entry) { e.PID = 43 }, 0},
		{"registered again", func(e *Entry) { e.Registered = e.Registered.Add(time.Nanosecond) }, 0},
		{"another version", func(e *Entry) { e.Vers = 4 }, 0},
		{"another netid", func(e *Entry) { e.Netid = "udp" }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := held
			tt.change(&e)
			if got := tab.findRegistration(e); got != tt.want {
				t.Errorf("findRegistration(%+v) = %d, want %d", e, got, tt.want)
			}
		})
	}
}
