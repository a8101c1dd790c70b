package registry

import "testing"

func TestUaddrPort(t *testing.T) {
	tests := []struct {
		uaddr string
		port  uint16
		ok    bool
	}{
		{"0.0.0.0.0.111", 111, true},
		{"127.0.0.1.156.65", 40001, true},
		{"0.0.0.0.255.255", 65535, true},
		{"0.0.0.0.0.0", 0, true},
		{"::.0.111", 111, true},
		{"::1.8.1", 2049, true},
		{"fe80::1%eth0.4.1", 1025, true},
		{"0.0.0.0.256.1", 0, false},
		{"0.0.0.0.1.256", 0, false},
		{"0.0.0.0.-1.1", 0, false},
		{"0.0.0.0.+1.1", 0, false},
		{"0.0.0.0.1.", 0, false},
		{"0.0.0.0..1", 0, false},
		{"0.0.0.0.1.1 ", 0, false},
		{"1.2", 0, false},
		{"12", 0, false},
		{"", 0, false},
		{"/run/rpcbind.sock", 0, false},
		{"@/run/rpcbind.sock", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.uaddr, func(t *testing.T) {
			port, ok := UaddrPort(tc.uaddr)
			if port != tc.port || ok != tc.ok {
				t.Errorf("UaddrPort(%q) = %d, %v; want %d, %v", tc.uaddr, port, ok, tc.port, tc.ok)
			}
		})
	}
}

func TestWildcardUaddr4(t *testing.T) {
	for _, tc := range []struct {
		port uint32
		want string
	}{
		{0, "0.0.0.0.0.0"}, {111, "0.0.0.0.0.111"}, {40001, "0.0.0.0.156.65"}, {65535, "0.0.0.0.255.255"},
		// v2 ports are u32 on the wire; rpcbind keeps the low 16 bits.
		{70000, "0.0.0.0.17.112"}, {0xffffffff, "0.0.0.0.255.255"},
	} {
		got := wildcardUaddr4(tc.port)
		if got != tc.want {
			t.Errorf("wildcardUaddr4(%d) = %q, want %q", tc.port, got, tc.want)
		}
		if p, ok := UaddrPort(got); !ok || uint32(p) != tc.port&0xffff {
			t.Errorf("UaddrPort(%q) = %d, %v", got, p, ok)
		}
	}
}

func TestLowerASCII(t *testing.T) {
	for in, want := range map[string]string{"udp": "udp", "UDP": "udp", "Tcp6": "tcp6", "": "", "LOCAL": "local"} {
		if got := lowerASCII(in); got != want {
			t.Errorf("lowerASCII(%q) = %q", in, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = lowerASCII("udp6") }); n != 0 {
		t.Errorf("lowerASCII of a lower-case netid allocates %.0f times", n)
	}
}

// FuzzCheckAddr: whatever a peer sends, CheckAddr does not panic, and what
// it accepts is bounded and, on an IP netid, has a port.
func FuzzCheckAddr(f *testing.F) {
	for _, s := range [][2]string{{"udp", "0.0.0.0.0.111"}, {"tcp6", "::1.8.1"}, {"local", "/run/rpcbind.sock"}, {"x", "a"}, {"udp", "1.2.3.4.5"}, {"UDP6", "fe80::1%lo.1.1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, netid, addr string) {
		if CheckAddr(netid, addr) != nil {
			return
		}
		if len(addr) > MaxLocalAddrLen {
			t.Fatalf("accepted %d bytes on %q", len(addr), netid)
		}
		switch lowerASCII(netid) {
		case NetidUDP, NetidTCP, NetidUDP6, NetidTCP6:
			if _, ok := UaddrPort(addr); !ok {
				t.Fatalf("accepted %q on %q without a port", addr, netid)
			}
		case NetidLocal, NetidUnix:
		default:
			t.Fatalf("accepted netid %q", netid)
		}
	})
}
