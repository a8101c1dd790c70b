package registry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// The rules tested here are rpcbind's, from
// ../shared/reference/rpcbind-behaviour.md section 2 ("Registration
// rules", "Lookups", "Access control"), and where it recorded them, from
// Debian rpcbind's answers in testdata/oracle.

var testNow = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

func newTestRegistry(opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = func() time.Time { return testNow }
	}
	return New(opts)
}

// netCaller is a UDP or TCP peer at addr ("127.0.0.1:40000", "[::1]:5").
func netCaller(addr string) Caller {
	return Caller{Transport: Network, Addr: netip.MustParseAddrPort(addr)}
}

var (
	root      = Caller{Transport: Internal}  // superuser
	loUnpriv  = netCaller("127.0.0.1:40000") // owner "unknown"
	loPriv    = netCaller("127.0.0.1:777")   // owner "superuser"
	uid1000   = Caller{Transport: Local, Cred: &Cred{UID: 1000, GID: 1000, PID: 4242}}
	uid2000   = Caller{Transport: Local, Cred: &Cred{UID: 2000, GID: 2000, PID: 4343}}
	remote    = netCaller("10.0.0.1:111")
	notLocal2 = netCaller("127.0.0.2:111")
)

func mustSet(t *testing.T, r *Registry, c Caller, e Entry) {
	t.Helper()
	if ok, err := r.Set(c, e); !ok || err != nil {
		t.Fatalf("Set(%+v) = %v, %v", e, ok, err)
	}
}

// keys returns "prog/vers/netid=addr@owner" for every entry, in DUMP order.
func keys(r *Registry) []string {
	var out []string
	for e := range r.All() {
		out = append(out, fmt.Sprintf("%d/%d/%s=%s@%s", e.Prog, e.Vers, e.Netid, e.Addr, e.Owner))
	}
	return out
}

func mappings(r *Registry) []xdr.Mapping {
	return slices.Collect(r.Mappings())
}

// checkIndexes verifies that the list, the count and the indexes
// describe the same entries.
func checkIndexes(t testing.TB, r *Registry) {
	t.Helper()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if err := r.rpc.check(); err != nil {
		t.Fatal(err)
	}
}

func TestSet(t *testing.T) {
	const prog = 0x2fff0001
	udp := Entry{Prog: prog, Vers: 1, Netid: "udp", Addr: "127.0.0.1.156.65"}
	tests := []struct {
		name   string
		caller Caller
		e      Entry
		want   bool
		// after is the table once the call is done.
		after []string
	}{
		{"duplicate, same address: TRUE, nothing added", loUnpriv, udp, true,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown"}},
		{"duplicate, other address: FALSE", loUnpriv, Entry{Prog: prog, Vers: 1, Netid: "udp", Addr: "127.0.0.1.156.67"}, false,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown"}},
		{"duplicate from another owner, same address: TRUE", uid2000, udp, true,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown"}},
		{"netid is case-insensitive: UDP is udp", loUnpriv, Entry{Prog: prog, Vers: 1, Netid: "UDP", Addr: "127.0.0.1.156.67"}, false,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown"}},
		{"same program, other netid: added", uid1000, Entry{Prog: prog, Vers: 1, Netid: "tcp6", Addr: "::1.156.66"}, true,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown", "805240833/1/tcp6=::1.156.66@1000"}},
		{"same program, other version: added", loPriv, Entry{Prog: prog, Vers: 2, Netid: "udp", Addr: "127.0.0.1.156.65"}, true,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown", "805240833/2/udp=127.0.0.1.156.65@superuser"}},
		{"netid kept as registered", root, Entry{Prog: prog, Vers: 1, Netid: "TCP", Addr: "0.0.0.0.4.1"}, true,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown", "805240833/1/TCP=0.0.0.0.4.1@superuser"}},
		{"the request's owner is ignored", uid1000, Entry{Prog: prog, Vers: 1, Netid: "local", Addr: "/run/x.sock", Owner: "superuser", PID: 1}, true,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown", "805240833/1/local=/run/x.sock@1000"}},
		{"the daemon's own entries are not checked", root, Entry{Prog: prog, Vers: 1, Netid: "bogus", Addr: "not an address"}, true,
			[]string{"805240833/1/udp=127.0.0.1.156.65@unknown", "805240833/1/bogus=not an address@superuser"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{})
			mustSet(t, r, loUnpriv, udp)
			got, err := r.Set(tc.caller, tc.e)
			if err != nil || got != tc.want {
				t.Errorf("Set = %v, %v; want %v", got, err, tc.want)
			}
			if k := keys(r); !slices.Equal(k, tc.after) {
				t.Errorf("table\n got  %q\n want %q", k, tc.after)
			}
			checkIndexes(t, r)
		})
	}
}

func TestSetRecordsCallerAndTime(t *testing.T) {
	r := newTestRegistry(Options{})
	mustSet(t, r, uid1000, Entry{Prog: 1, Vers: 1, Netid: "udp", Addr: "0.0.0.0.0.1", Owner: "forged", PID: 99, Registered: time.Unix(1, 0)})
	got, ok := r.LookupExact(1, 1, "udp")
	want := Entry{Prog: 1, Vers: 1, Netid: "udp", Addr: "0.0.0.0.0.1", Owner: "1000", PID: 4242, Registered: testNow}
	if !ok || got != want {
		t.Errorf("entry %+v, want %+v", got, want)
	}
}

func TestSetMapping(t *testing.T) {
	tests := []struct {
		name  string
		m     xdr.Mapping
		want  bool
		entry string // the entry it makes, "" for none
		port  uint32 // what GETPORT then answers
	}{
		{"udp", xdr.Mapping{Prog: 7, Vers: 1, Prot: netid.ProtoUDP, Port: 40001}, true, "7/1/udp=0.0.0.0.156.65@unknown", 40001},
		{"tcp", xdr.Mapping{Prog: 7, Vers: 1, Prot: netid.ProtoTCP, Port: 111}, true, "7/1/tcp=0.0.0.0.0.111@unknown", 111},
		{"port 0", xdr.Mapping{Prog: 7, Vers: 1, Prot: netid.ProtoUDP, Port: 0}, true, "7/1/udp=0.0.0.0.0.0@unknown", 0},
		{"port 65535", xdr.Mapping{Prog: 7, Vers: 1, Prot: netid.ProtoUDP, Port: 65535}, true, "7/1/udp=0.0.0.0.255.255@unknown", 65535},
		// The oracle (set-v2-port-70000): rpcbind keeps only the low 16
		// bits, in the uaddr, GETPORT and DUMP alike.
		{"port 70000", xdr.Mapping{Prog: 7, Vers: 1, Prot: netid.ProtoUDP, Port: 70000}, true, "7/1/udp=0.0.0.0.17.112@unknown", 4464},
		{"prot 99", xdr.Mapping{Prog: 7, Vers: 1, Prot: 99, Port: 40001}, false, "", 0},
		{"prot 0", xdr.Mapping{Prog: 7, Vers: 1, Prot: 0, Port: 40001}, false, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{})
			got, err := r.SetMapping(loUnpriv, tc.m)
			if err != nil || got != tc.want {
				t.Fatalf("SetMapping = %v, %v; want %v", got, err, tc.want)
			}
			var want []string
			if tc.entry != "" {
				want = []string{tc.entry}
			}
			if k := keys(r); !slices.Equal(k, want) {
				t.Errorf("table %q, want %q", k, want)
			}
			if tc.entry != "" {
				if p := r.GetPort(tc.m.Prog, tc.m.Vers, tc.m.Prot); p != tc.port {
					t.Errorf("GetPort = %d, want %d", p, tc.port)
				}
				m := mappings(r)
				if len(m) != 1 || m[0].Port != tc.port || m[0].Prot != tc.m.Prot {
					t.Errorf("Mappings = %+v", m)
				}
			}
		})
	}
	t.Run("same port again: TRUE; other port: FALSE", func(t *testing.T) {
		r := newTestRegistry(Options{})
		m := xdr.Mapping{Prog: 7, Vers: 1, Prot: netid.ProtoUDP, Port: 40001}
		for i, want := range []bool{true, true} {
			if got, err := r.SetMapping(loUnpriv, m); got != want || err != nil {
				t.Fatalf("SET #%d = %v, %v", i, got, err)
			}
		}
		m.Port = 40003
		if got, _ := r.SetMapping(loUnpriv, m); got {
			t.Error("SET with another port = TRUE")
		}
		if r.Len() != 1 {
			t.Errorf("Len = %d", r.Len())
		}
	})
	t.Run("v2 SET over a v3 entry with a specific address: FALSE", func(t *testing.T) {
		// The oracle's set-v2-unix after set-v3-udp: 0.0.0.0.156.65 is
		// not 127.0.0.1.156.65.
		r := newTestRegistry(Options{})
		mustSet(t, r, root, Entry{Prog: 7, Vers: 1, Netid: "udp", Addr: "127.0.0.1.156.65"})
		if got, _ := r.SetMapping(root, xdr.Mapping{Prog: 7, Vers: 1, Prot: netid.ProtoUDP, Port: 40001}); got {
			t.Error("SET = TRUE")
		}
	})
}

func TestV2View(t *testing.T) {
	r := newTestRegistry(Options{})
	for _, e := range []Entry{
		{Prog: 9, Vers: 3, Netid: "udp", Addr: "127.0.0.1.156.65"},
		{Prog: 9, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.156.66"},
		{Prog: 9, Vers: 3, Netid: "udp6", Addr: "::.156.67"},
		{Prog: 9, Vers: 3, Netid: "tcp6", Addr: "::1.156.68"},
		{Prog: 9, Vers: 3, Netid: "local", Addr: "/run/nine.sock"},
	} {
		mustSet(t, r, root, e)
	}
	want := []xdr.Mapping{{Prog: 9, Vers: 3, Prot: netid.ProtoUDP, Port: 40001}, {Prog: 9, Vers: 3, Prot: netid.ProtoTCP, Port: 40002}}
	if got := mappings(r); !reflect.DeepEqual(got, want) {
		t.Errorf("Mappings = %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		vers, prot, want uint32
	}{
		{3, netid.ProtoUDP, 40001}, {3, netid.ProtoTCP, 40002},
		// Other versions fall back to vers 3 on the same protocol.
		{5, netid.ProtoTCP, 40002}, {5, netid.ProtoUDP, 40001},
		{3, 99, 0},
	} {
		if got := r.GetPort(9, tc.vers, tc.prot); got != tc.want {
			t.Errorf("GetPort(9, %d, %d) = %d, want %d", tc.vers, tc.prot, got, tc.want)
		}
	}
	if got := r.Len(); got != 5 {
		t.Errorf("Len = %d", got)
	}
}

func TestUnset(t *testing.T) {
	// base: prog 5 vers 1 on udp, tcp, udp6, local; vers 2 on udp; prog 6.
	base := []struct {
		c Caller
		e Entry
	}{
		{uid1000, Entry{Prog: 5, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.1"}},
		{uid1000, Entry{Prog: 5, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.2"}},
		{uid2000, Entry{Prog: 5, Vers: 1, Netid: "udp6", Addr: "::.4.3"}},
		{uid1000, Entry{Prog: 5, Vers: 1, Netid: "local", Addr: "/run/5.sock"}},
		{uid1000, Entry{Prog: 5, Vers: 2, Netid: "udp", Addr: "0.0.0.0.4.4"}},
		{uid1000, Entry{Prog: 6, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.5"}},
	}
	all := []string{"5/1/udp", "5/1/tcp", "5/1/udp6", "5/1/local", "5/2/udp", "6/1/udp"}
	tests := []struct {
		name       string
		c          Caller
		prog, vers uint32
		netid      netid.ID
		want       bool
		left       []string
	}{
		{"empty netid, superuser: every netid of prog 5 vers 1", root, 5, 1, "", true,
			[]string{"5/2/udp", "6/1/udp"}},
		{"one netid", uid1000, 5, 1, "tcp", true,
			[]string{"5/1/udp", "5/1/udp6", "5/1/local", "5/2/udp", "6/1/udp"}},
		{"netid case-insensitive", uid1000, 5, 1, "TCP", true,
			[]string{"5/1/udp", "5/1/udp6", "5/1/local", "5/2/udp", "6/1/udp"}},
		{"nothing registered: TRUE", uid1000, 5, 9, "", true, all},
		{"nothing on that netid: TRUE", uid1000, 5, 1, "tcp6", true, all},
		{"other owner, one netid: FALSE", uid2000, 5, 1, "udp", false, all},
		// uid1000 owns udp and tcp, then meets uid2000's udp6: it stops
		// there with FALSE, udp and tcp stay removed, local is kept.
		{"first owner mismatch stops, earlier removals stay", uid1000, 5, 1, "", false,
			[]string{"5/1/udp6", "5/1/local", "5/2/udp", "6/1/udp"}},
		{"other owner first: nothing removed", uid2000, 5, 1, "", false, all},
		{"superuser by port removes anyone's", loPriv, 5, 1, "udp6", true,
			[]string{"5/1/udp", "5/1/tcp", "5/1/local", "5/2/udp", "6/1/udp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{})
			for _, b := range base {
				mustSet(t, r, b.c, b.e)
			}
			got, err := r.Unset(tc.c, tc.prog, tc.vers, tc.netid)
			if err != nil || got != tc.want {
				t.Errorf("Unset = %v, %v; want %v", got, err, tc.want)
			}
			var left []string
			for _, e := range r.Entries() {
				left = append(left, fmt.Sprintf("%d/%d/%s", e.Prog, e.Vers, e.Netid))
			}
			if !slices.Equal(left, tc.left) {
				t.Errorf("left\n got  %q\n want %q", left, tc.left)
			}
			checkIndexes(t, r)
		})
	}
	t.Run("unknown may remove unknown", func(t *testing.T) {
		r := newTestRegistry(Options{})
		mustSet(t, r, loUnpriv, Entry{Prog: 5, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.1"})
		if ok, err := r.Unset(netCaller("[::1]:50000"), 5, 1, "udp"); !ok || err != nil || r.Len() != 0 {
			t.Errorf("Unset = %v, %v; %d left", ok, err, r.Len())
		}
	})
}

func TestUnsetMapping(t *testing.T) {
	tests := []struct {
		name  string
		setup []Entry
		c     Caller
		want  bool
		left  []string
	}{
		{"tcp and udp go, udp6 and tcp6 stay",
			[]Entry{{Prog: 5, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.1"}, {Prog: 5, Vers: 1, Netid: "udp6", Addr: "::.4.1"}, {Prog: 5, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"}, {Prog: 5, Vers: 1, Netid: "tcp6", Addr: "::.4.1"}, {Prog: 5, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.4.2"}},
			root, true, []string{"5/1/udp6", "5/1/tcp6", "5/2/tcp"}},
		{"only udp", []Entry{{Prog: 5, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.1"}}, root, true, nil},
		{"nothing: TRUE", []Entry{{Prog: 5, Vers: 1, Netid: "local", Addr: "/run/5.sock"}}, root, true, []string{"5/1/local"}},
		// tcp is refused, udp is removed: the answer is the OR.
		{"tcp refused, udp removed: TRUE",
			[]Entry{{Prog: 5, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1", Owner: "2000"}, {Prog: 5, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.1"}},
			uid1000, true, []string{"5/1/tcp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{})
			for _, e := range tc.setup {
				c := uid1000
				if e.Owner == "2000" {
					c = uid2000
				}
				mustSet(t, r, c, e)
			}
			got, err := r.UnsetMapping(tc.c, 5, 1)
			if err != nil || got != tc.want {
				t.Errorf("UnsetMapping = %v, %v; want %v", got, err, tc.want)
			}
			var left []string
			for _, e := range r.Entries() {
				left = append(left, fmt.Sprintf("%d/%d/%s", e.Prog, e.Vers, e.Netid))
			}
			if !slices.Equal(left, tc.left) {
				t.Errorf("left %q, want %q", left, tc.left)
			}
		})
	}
	t.Run("both refused: FALSE", func(t *testing.T) {
		r := newTestRegistry(Options{})
		mustSet(t, r, uid2000, Entry{Prog: 5, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})
		mustSet(t, r, uid2000, Entry{Prog: 5, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.1"})
		if got, err := r.UnsetMapping(uid1000, 5, 1); got || err != nil || r.Len() != 2 {
			t.Errorf("UnsetMapping = %v, %v; %d left", got, err, r.Len())
		}
	})
}

func TestLookups(t *testing.T) {
	r := newTestRegistry(Options{})
	for _, e := range []Entry{
		{Prog: 8, Vers: 1, Netid: "udp", Addr: "0.0.0.0.0.1"},
		{Prog: 8, Vers: 3, Netid: "udp", Addr: "0.0.0.0.0.3"},
		{Prog: 8, Vers: 2, Netid: "udp", Addr: "0.0.0.0.0.2"},
		{Prog: 8, Vers: 7, Netid: "tcp", Addr: "0.0.0.0.0.7"},
		{Prog: 8, Vers: 5, Netid: "udp6", Addr: "::.0.5"},
	} {
		mustSet(t, r, root, e)
	}
	tests := []struct {
		name       string
		vers       uint32
		netid      netid.ID
		lookup     string // Lookup's address, "" for none
		exact      string // LookupExact's
		prot, port uint32 // GetPort
	}{
		{"exact version wins", 3, "udp", "0.0.0.0.0.3", "0.0.0.0.0.3", netid.ProtoUDP, 3},
		{"other version: the last registered", 9, "udp", "0.0.0.0.0.2", "", netid.ProtoUDP, 2},
		{"fallback stays on its netid", 9, "tcp", "0.0.0.0.0.7", "", netid.ProtoTCP, 7},
		{"udp6 has its own fallback", 1, "udp6", "::.0.5", "", 0, 0},
		{"netid case-insensitive", 1, "UDP", "0.0.0.0.0.1", "0.0.0.0.0.1", netid.ProtoUDP, 1},
		{"unknown netid", 1, "tcp6", "", "", 99, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := r.Lookup(8, tc.vers, tc.netid)
			if ok != (tc.lookup != "") || e.Addr != tc.lookup {
				t.Errorf("Lookup = %q, %v; want %q", e.Addr, ok, tc.lookup)
			}
			e, ok = r.LookupExact(8, tc.vers, tc.netid)
			if ok != (tc.exact != "") || e.Addr != tc.exact {
				t.Errorf("LookupExact = %q, %v; want %q", e.Addr, ok, tc.exact)
			}
			if tc.prot != 0 {
				if p := r.GetPort(8, tc.vers, tc.prot); p != tc.port {
					t.Errorf("GetPort = %d, want %d", p, tc.port)
				}
			}
		})
	}
	t.Run("fallback follows removals", func(t *testing.T) {
		r := newTestRegistry(Options{})
		for v := uint32(1); v <= 3; v++ {
			mustSet(t, r, root, Entry{Prog: 8, Vers: v, Netid: "udp", Addr: fmt.Sprintf("0.0.0.0.0.%d", v)})
		}
		for _, step := range []struct {
			unset uint32
			want  uint32
		}{{0, 3}, {3, 2}, {1, 2}, {2, 0}} {
			if step.unset != 0 {
				r.Unset(root, 8, step.unset, "udp")
			}
			if got := r.GetPort(8, 9, netid.ProtoUDP); got != step.want {
				t.Errorf("after unset of vers %d: GetPort = %d, want %d", step.unset, got, step.want)
			}
		}
	})
	t.Run("unregistered program", func(t *testing.T) {
		if _, ok := r.Lookup(99, 1, "udp"); ok {
			t.Error("Lookup found prog 99")
		}
		if p := r.GetPort(99, 1, netid.ProtoUDP); p != 0 {
			t.Errorf("GetPort = %d", p)
		}
	})
}

func TestVersionsAndVersionRange(t *testing.T) {
	r := newTestRegistry(Options{})
	for _, e := range []Entry{
		{Prog: 4, Vers: 3, Netid: "udp"}, {Prog: 4, Vers: 2, Netid: "tcp"}, {Prog: 4, Vers: 2, Netid: "udp"},
		{Prog: 4, Vers: 4, Netid: "udp"}, {Prog: 4, Vers: 2, Netid: "local"},
	} {
		mustSet(t, r, root, e)
	}
	var netids []netid.ID
	for e := range r.Versions(4, 2) {
		netids = append(netids, e.Netid)
	}
	if want := []netid.ID{"tcp", "udp", "local"}; !slices.Equal(netids, want) {
		t.Errorf("Versions(4, 2) = %q, want %q", netids, want)
	}
	netids = nil
	for e := range r.Versions(4, 2) {
		netids = append(netids, e.Netid)
		break
	}
	if len(netids) != 1 {
		t.Errorf("Versions did not stop: %q", netids)
	}
	for _, tc := range []struct {
		netid     netid.ID
		low, high uint32
	}{{"udp", 2, 4}, {"UDP", 2, 4}, {"tcp", 2, 2}, {"tcp6", 0, 0}} {
		if low, high := r.VersionRange(4, tc.netid); low != tc.low || high != tc.high {
			t.Errorf("VersionRange(4, %q) = %d, %d; want %d, %d", tc.netid, low, high, tc.low, tc.high)
		}
	}
}

func TestAccessControl(t *testing.T) {
	tests := []struct {
		name     string
		c        Caller
		insecure bool
		allowed  bool
	}{
		{"127.0.0.1", netCaller("127.0.0.1:40000"), false, true},
		{"::1", netCaller("[::1]:40000"), false, true},
		{"::ffff:127.0.0.1", netCaller("[::ffff:127.0.0.1]:40000"), false, true},
		{"local socket", uid1000, false, true},
		{"local socket without credentials", Caller{Transport: Local}, false, true},
		{"internal", root, false, true},
		{"127.0.0.2", notLocal2, false, false},
		{"127.255.255.254", netCaller("127.255.255.254:1"), false, false},
		{"10.0.0.1", remote, false, false},
		{"::2", netCaller("[::2]:111"), false, false},
		{"::ffff:127.0.0.2", netCaller("[::ffff:127.0.0.2]:111"), false, false},
		{"fe80::1", netCaller("[fe80::1%lo]:111"), false, false},
		{"zero caller", Caller{}, false, false},
		{"10.0.0.1 with Insecure", remote, true, true},
		{"::2 with Insecure", netCaller("[::2]:111"), true, true},
		{"127.0.0.2 with Insecure", notLocal2, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRegistry(Options{Insecure: tc.insecure})
			mustSet(t, r, root, Entry{Prog: 3, Vers: 1, Netid: "udp", Addr: "0.0.0.0.0.1"})
			before := keys(r)
			want := error(nil)
			if !tc.allowed {
				want = ErrNotLocal
			}
			_, err1 := r.Set(tc.c, Entry{Prog: 3, Vers: 2, Netid: "udp", Addr: "0.0.0.0.0.2"})
			_, err2 := r.SetMapping(tc.c, xdr.Mapping{Prog: 3, Vers: 3, Prot: netid.ProtoTCP, Port: 3})
			_, err3 := r.Unset(tc.c, 3, 9, "")
			_, err4 := r.UnsetMapping(tc.c, 3, 9)
			for i, err := range []error{err1, err2, err3, err4} {
				if !errors.Is(err, want) || (want == nil && err != nil) {
					t.Errorf("call %d: error %v, want %v", i+1, err, want)
				}
			}
			if !tc.allowed {
				if got := keys(r); !slices.Equal(got, before) {
					t.Errorf("a refused caller changed the table: %q", got)
				}
				if ok, _ := r.Unset(tc.c, 3, 1, ""); ok {
					t.Error("refused Unset reported TRUE")
				}
			} else if r.Len() != 3 {
				t.Errorf("Len = %d after two SETs", r.Len())
			}
		})
	}
}

func TestRangeOrder(t *testing.T) {
	r := newTestRegistry(Options{})
	var want []string
	for i := range 10 {
		id := []netid.ID{"udp", "tcp"}[i%2]
		mustSet(t, r, root, Entry{Prog: uint32(100 + i), Vers: 1, Netid: id, Addr: "0.0.0.0.0.1"})
		want = append(want, fmt.Sprintf("%d/1/%s=0.0.0.0.0.1@superuser", 100+i, id))
	}
	drop := func(prog int) {
		r.Unset(root, uint32(prog), 1, "")
		want = slices.DeleteFunc(want, func(s string) bool { return strings.HasPrefix(s, fmt.Sprintf("%d/", prog)) })
	}
	drop(100) // head
	drop(109) // tail
	drop(104) // middle
	mustSet(t, r, root, Entry{Prog: 104, Vers: 1, Netid: "udp", Addr: "0.0.0.0.0.1"})
	want = append(want, "104/1/udp=0.0.0.0.0.1@superuser") // back at the end
	for i := range 3 {
		if got := keys(r); !slices.Equal(got, want) {
			t.Fatalf("All #%d\n got  %q\n want %q", i, got, want)
		}
	}
	var fromEntries []string
	for _, e := range r.Entries() {
		fromEntries = append(fromEntries, fmt.Sprintf("%d/%d/%s=%s@%s", e.Prog, e.Vers, e.Netid, e.Addr, e.Owner))
	}
	if !slices.Equal(fromEntries, want) {
		t.Errorf("Entries differs from All: %q", fromEntries)
	}
	var progs []uint32
	for m := range r.Mappings() {
		progs = append(progs, m.Prog)
	}
	if wantProgs := []uint32{101, 102, 103, 105, 106, 107, 108, 104}; !slices.Equal(progs, wantProgs) {
		t.Errorf("Mappings order %v, want %v", progs, wantProgs)
	}
	n := 0
	for range r.All() {
		if n++; n == 3 {
			break
		}
	}
	m := 0
	for range r.Mappings() {
		m++
		break
	}
	if n != 3 || m != 1 {
		t.Errorf("the walk did not stop: %d, %d entries", n, m)
	}
	checkIndexes(t, r)
}

// model is rpcbind's registry as rpcbind keeps it: one list, scanned.
type model struct {
	list []Entry
}

func (m *model) find(prog, vers uint32, id netid.ID) int {
	return slices.IndexFunc(m.list, func(e Entry) bool {
		return e.Prog == prog && e.Vers == vers && strings.EqualFold(string(e.Netid), string(id))
	})
}

func (m *model) set(c Caller, e Entry) bool {
	if i := m.find(e.Prog, e.Vers, e.Netid); i >= 0 {
		return m.list[i].Addr == e.Addr
	}
	e.Owner, e.PID, e.Registered = c.Owner(), c.PID(), testNow
	m.list = append(m.list, e)
	return true
}

func (m *model) unset(c Caller, prog, vers uint32, id netid.ID) bool {
	for i := 0; i < len(m.list); {
		e := m.list[i]
		if e.Prog != prog || e.Vers != vers || (id != "" && !strings.EqualFold(string(e.Netid), string(id))) {
			i++
			continue
		}
		if c.Owner() != OwnerSuperuser && c.Owner() != e.Owner {
			return false
		}
		m.list = slices.Delete(m.list, i, i+1)
	}
	return true
}

func (m *model) lookup(prog, vers uint32, id netid.ID) (Entry, bool) {
	var hit *Entry
	for i, e := range m.list {
		if e.Prog == prog && strings.EqualFold(string(e.Netid), string(id)) {
			hit = &m.list[i]
			if e.Vers == vers {
				break
			}
		}
	}
	if hit == nil {
		return Entry{}, false
	}
	return *hit, true
}

// uaddrOn returns a wildcard address of port in netid's form.
func uaddrOn(id netid.ID, port int) string {
	switch id.Lower() {
	case netid.UDP6, netid.TCP6:
		return fmt.Sprintf("::.%d.%d", port>>8, port&0xff)
	case netid.Local:
		return fmt.Sprintf("/run/%d.sock", port)
	}
	return netid.WildcardUaddr(netid.UDP, uint16(port))
}

// TestAgainstModel runs random operations on the indexed Registry and on a
// plain scanned list with rpcbind's rules and expects the same answers and
// the same table after each.
func TestAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	callers := []Caller{root, loUnpriv, uid1000, uid2000}
	netids := []netid.ID{"udp", "tcp", "udp6", "UDP", "Tcp", "local"}
	for round := range 20 {
		r := newTestRegistry(Options{})
		var m model
		for step := range 500 {
			c := callers[rng.IntN(len(callers))]
			prog, vers := uint32(1+rng.IntN(3)), uint32(1+rng.IntN(3))
			id := netids[rng.IntN(len(netids))]
			addr := uaddrOn(id, rng.IntN(3))
			var got, want any
			switch op := rng.IntN(6); op {
			case 0, 1:
				e := Entry{Prog: prog, Vers: vers, Netid: id, Addr: addr}
				ok, _ := r.Set(c, e)
				got, want = ok, m.set(c, e)
			case 2:
				if rng.IntN(3) == 0 {
					id = ""
				}
				ok, _ := r.Unset(c, prog, vers, id)
				got, want = ok, m.unset(c, prog, vers, id)
			case 3:
				ok, _ := r.UnsetMapping(c, prog, vers)
				a, b := m.unset(c, prog, vers, "tcp"), m.unset(c, prog, vers, "udp")
				got, want = ok, a || b
			case 4:
				e, ok := r.Lookup(prog, vers, id)
				we, wok := m.lookup(prog, vers, id)
				got, want = fmt.Sprint(e, ok), fmt.Sprint(we, wok)
			case 5:
				prot := []uint32{netid.ProtoTCP, netid.ProtoUDP}[rng.IntN(2)]
				id := map[uint32]netid.ID{netid.ProtoTCP: "tcp", netid.ProtoUDP: "udp"}[prot]
				var wantPort uint32
				if e, ok := m.lookup(prog, vers, id); ok {
					p, _ := netid.UaddrPort(e.Addr)
					wantPort = uint32(p)
				}
				got, want = r.GetPort(prog, vers, prot), wantPort
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d step %d: got %v, model %v", round, step, got, want)
			}
			if entries := r.Entries(); !reflect.DeepEqual(entries, m.list) && (len(entries) != 0 || len(m.list) != 0) {
				t.Fatalf("round %d step %d: table\n got  %+v\n want %+v", round, step, entries, m.list)
			}
		}
		checkIndexes(t, r)
	}
}

// TestConcurrentUse hammers one Registry from many goroutines; run it with
// -race. Each writer owns a program, so its own results are predictable.
func TestConcurrentUse(t *testing.T) {
	r := newTestRegistry(Options{})
	const writers, readers, rounds = 8, 4, 300
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			prog := uint32(1000 + w)
			for i := range rounds {
				vers := uint32(i%5 + 1)
				e := Entry{Prog: prog, Vers: vers, Netid: []netid.ID{"udp", "tcp", "udp6"}[i%3], Addr: uaddrOn([]netid.ID{"udp", "tcp", "udp6"}[i%3], w<<8|i%256)}
				if ok, err := r.Set(root, e); !ok || err != nil {
					// The same key may still be there from 15 rounds ago
					// with another address.
					if _, present := r.LookupExact(prog, vers, e.Netid); !present {
						errs <- fmt.Errorf("writer %d: Set refused with nothing there", w)
						return
					}
				}
				if _, ok := r.Lookup(prog, vers, e.Netid); !ok {
					errs <- fmt.Errorf("writer %d: own entry vanished", w)
					return
				}
				if i%4 == 3 {
					r.Unset(root, prog, vers, "")
				}
				if i%7 == 0 {
					r.UnsetMapping(root, prog, uint32(i%5+1))
				}
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for i := range rounds {
				r.GetPort(uint32(1000+i%writers), uint32(i%5+1), netid.ProtoUDP)
				r.Lookup(uint32(1000+i%writers), 9, "tcp")
				r.LookupExact(uint32(1000+i%writers), 1, "udp6")
				for range r.All() {
				}
				for range r.Mappings() {
				}
				for range r.Versions(uint32(1000+i%writers), 1) {
				}
				r.VersionRange(uint32(1000+i%writers), "udp")
				_ = r.Entries()
				_ = r.Len()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkIndexes(t, r)
}
