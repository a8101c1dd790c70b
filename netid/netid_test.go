package netid

import "testing"

func TestLower(t *testing.T) {
	for in, want := range map[ID]ID{
		"udp": "udp", "UDP": "udp", "Tcp6": "tcp6", "": "", "LOCAL": "local", "lOcAl": "local",
		// rpcbind compares netids with strcasecmp: ASCII letters only.
		"TCP\u00c9": "tcp\u00c9", "\u00c9": "\u00c9",
	} {
		if got := in.Lower(); got != want {
			t.Errorf("%q.Lower() = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = ID("udp6").Lower() }); n != 0 {
		t.Errorf("Lower of a lower-case netid allocates %.0f times", n)
	}
}

// TestKinds lists which netids each predicate accepts, as the copies it
// replaced did: exactly, in lower case.
func TestKinds(t *testing.T) {
	tests := []struct {
		id                            ID
		ip, local, loopback, is6, has bool
	}{
		{UDP, true, false, false, false, true},
		{TCP, true, false, false, false, true},
		{UDP6, true, false, false, true, true},
		{TCP6, true, false, false, true, true},
		{Local, false, true, true, false, true},
		{Unix, false, true, true, false, true},
		{RawIP, false, false, false, false, true},
		{TicotsOrd, false, false, true, false, false},
		{Ticots, false, false, true, false, false},
		{Ticlts, false, false, true, false, false},
		{"TCP", false, false, false, false, false},
		{"Local", false, false, false, false, false},
		{"sctp", false, false, false, false, false},
		{"", false, false, false, false, false},
	}
	for _, tc := range tests {
		_, has := Lookup(tc.id)
		if tc.id.IsIP() != tc.ip || tc.id.IsLocal() != tc.local || tc.id.IsLoopback() != tc.loopback || tc.id.Is6() != tc.is6 || has != tc.has {
			t.Errorf("%q: IsIP %v IsLocal %v IsLoopback %v Is6 %v in netconfig %v; want %v %v %v %v %v", tc.id,
				tc.id.IsIP(), tc.id.IsLocal(), tc.id.IsLoopback(), tc.id.Is6(), has, tc.ip, tc.local, tc.loopback, tc.is6, tc.has)
		}
	}
}

// TestProto is the v2 view both ways: PMAPPROC_SET and GETPORT, the
// warm-start files and portmapctl read a protocol number as a netid, and
// the registry and the warm-start writer a netid as a protocol number.
func TestProto(t *testing.T) {
	for _, tc := range []struct {
		prot uint32
		id   ID
		ok   bool
	}{
		{6, TCP, true}, {17, UDP, true}, {0, "", false}, {1, "", false}, {41, "", false}, {132, "", false}, {1<<32 - 1, "", false},
	} {
		id, ok := FromProto(tc.prot)
		if id != tc.id || ok != tc.ok {
			t.Errorf("FromProto(%d) = %q, %v; want %q, %v", tc.prot, id, ok, tc.id, tc.ok)
		}
		if !ok {
			continue
		}
		if prot, ok := id.Proto(); prot != tc.prot || !ok {
			t.Errorf("%q.Proto() = %d, %v", id, prot, ok)
		}
	}
	for _, tc := range []struct {
		id   ID
		prot uint32
		ok   bool
	}{
		{"tcp", ProtoTCP, true}, {"TCP", ProtoTCP, true}, {"Udp", ProtoUDP, true},
		{"tcp6", 0, false}, {"udp6", 0, false}, {"local", 0, false}, {"rawip", 0, false}, {"", 0, false},
	} {
		if prot, ok := tc.id.Proto(); prot != tc.prot || ok != tc.ok {
			t.Errorf("%q.Proto() = %d, %v; want %d, %v", tc.id, prot, ok, tc.prot, tc.ok)
		}
	}
}

// TestLookup is Debian's /etc/netconfig, found as getnetconfigent finds
// it.
func TestLookup(t *testing.T) {
	want := map[ID]Netconfig{
		"udp":   {UDP, TpiClts, true, "inet", "udp", FamilyInet},
		"tcp":   {TCP, TpiCotsOrd, true, "inet", "tcp", FamilyInet},
		"udp6":  {UDP6, TpiClts, true, "inet6", "udp", FamilyInet6},
		"tcp6":  {TCP6, TpiCotsOrd, true, "inet6", "tcp", FamilyInet6},
		"rawip": {RawIP, TpiRaw, false, "inet", "-", 0},
		"local": {Local, TpiCotsOrd, false, "loopback", "-", FamilyLocal},
		"unix":  {Unix, TpiCotsOrd, false, "loopback", "-", FamilyLocal},
	}
	for id, nc := range want {
		if got, ok := Lookup(id); !ok || got != nc {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v", id, got, ok, nc)
		}
	}
	for _, id := range []ID{"TCP", "Udp6", "LOCAL", "ticotsord", "sctp", "", "tcp "} {
		if got, ok := Lookup(id); ok {
			t.Errorf("Lookup(%q) = %+v, want none", id, got)
		}
	}
	for f, n := range map[Family]uint32{FamilyLocal: 110, FamilyInet: 16, FamilyInet6: 28, 0: 0, 3: 0} {
		if got := f.SockaddrLen(); got != n {
			t.Errorf("Family(%d).SockaddrLen() = %d, want %d", f, got, n)
		}
	}
}

// TestIP: portmapctl names the netid it reached a portmapper over by the
// protocol it asked for and the family of the address it reached.
func TestIP(t *testing.T) {
	for _, tc := range []struct {
		proto string
		v6    bool
		want  ID
		ok    bool
	}{
		{"tcp", false, TCP, true}, {"udp", false, UDP, true}, {"tcp", true, TCP6, true}, {"udp", true, UDP6, true},
		{"-", false, "", false}, {"TCP", false, "", false}, {"sctp", true, "", false}, {"", false, "", false},
	} {
		if got, ok := IP(tc.proto, tc.v6); got != tc.want || ok != tc.ok {
			t.Errorf("IP(%q, %v) = %q, %v; want %q, %v", tc.proto, tc.v6, got, ok, tc.want, tc.ok)
		}
		if tc.ok {
			if nc, _ := Lookup(tc.want); nc.Proto != tc.proto {
				t.Errorf("Lookup(%q).Proto = %q", tc.want, nc.Proto)
			}
		}
	}
}
