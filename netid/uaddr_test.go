package netid

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// TestUaddrPort holds the forms registry.UaddrPort accepted and refused:
// the v2 view of a registration, warm-start files and the web listing read
// ports this way.
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
		{"garbage.1.2", 258, true}, // the host is not looked at
		{".1.2", 258, true},
		{"0.0.0.0.256.1", 0, false},
		{"0.0.0.0.1.256", 0, false},
		{"0.0.0.0.-1.1", 0, false},
		{"0.0.0.0.+1.1", 0, false},
		{"0.0.0.0. 1.1", 0, false},
		{"0.0.0.0.1.", 0, false},
		{"0.0.0.0..1", 0, false},
		{"0.0.0.0.1.1 ", 0, false},
		{"0.0.0.0.0x1.1", 0, false},
		{"1.2", 0, false},
		{"12", 0, false},
		{".12", 0, false},
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

// TestParseUaddr holds the forms that portmapctl's uaddr2taddr and the
// pruner's address split accepted: any IP address, zones included, and
// port fields as UaddrPort reads them.
func TestParseUaddr(t *testing.T) {
	tests := []struct {
		uaddr string
		want  string // netip.AddrPort text; "" for refused
	}{
		{"127.0.0.1.15.161", "127.0.0.1:4001"},
		{"0.0.0.0.0.111", "0.0.0.0:111"},
		{"::1.15.160", "[::1]:4000"},
		{"::.0.111", "[::]:111"},
		{"fe80::1%eth0.4.1", "[fe80::1%eth0]:1025"},
		{"::ffff:127.0.0.1.8.1", "[::ffff:127.0.0.1]:2049"},
		{"255.255.255.255.255.255", "255.255.255.255:65535"},
		{"127.0.0.1.1.1", "127.0.0.1:257"}, // a family check is the caller's (CheckUaddr)
		{"somewhere", ""},
		{"somewhere.1.1", ""},
		{"127.0.0.1", ""},
		{"127.0.0.1.1", ""},
		{"127.0.0.1.256.1", ""},
		{"127.0.0.1.1.-1", ""},
		{"127.0.0.01.1.1", ""},
		{"[::1].1.1", ""},
		{"/run/rpcbind.sock", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.uaddr, func(t *testing.T) {
			ap, ok := ParseUaddr(tc.uaddr)
			got := ""
			if ok {
				got = ap.String()
			}
			if got != tc.want {
				t.Errorf("ParseUaddr(%q) = %q, %v; want %q", tc.uaddr, got, ok, tc.want)
			}
		})
	}
}

// TestCheckUaddr holds the forms the registry's address check accepted and
// refused.
func TestCheckUaddr(t *testing.T) {
	long := func(n int) string { return "/" + strings.Repeat("s", n-1) }
	tests := []struct {
		id   ID
		addr string
		want error
	}{
		{"udp", "0.0.0.0.0.111", nil},
		{"tcp", "127.0.0.1.156.65", nil},
		{"TCP", "255.255.255.255.255.255", nil},
		{"udp6", "::.0.111", nil},
		{"tcp6", "fe80::1.8.1", nil},
		{"Tcp6", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.255.255", nil},
		{"tcp6", "::ffff:127.0.0.1.8.1", nil},
		{"local", "/run/rpcbind.sock", nil},
		{"local", "@/run/rpcbind.sock", nil},
		{"LOCAL", "/run/rpcbind.sock", nil},
		{"local", "", nil},
		{"local", "127.0.0.1.3.232", nil},
		{"unix", "/run/x.sock", nil},
		{"local", long(MaxLocalAddrLen), nil},
		{"local", long(MaxLocalAddrLen + 1), ErrBadUaddr},
		{"local", "/run/a\x00b", ErrBadUaddr},
		{"udp", "garbage", ErrBadUaddr},
		{"udp", "", ErrBadUaddr},
		{"udp", "127.0.0.1", ErrBadUaddr},
		{"udp", "127.0.0.1.256.1", ErrBadUaddr},
		{"udp", "127.0.0.1.+1.1", ErrBadUaddr},
		{"udp", "::1.8.1", ErrBadUaddr},
		{"udp", "::ffff:127.0.0.1.8.1", ErrBadUaddr},
		{"udp6", "127.0.0.1.8.1", ErrBadUaddr},
		{"udp6", "fe80::1%eth0.8.1", ErrBadUaddr},
		{"tcp6", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%e.1.1", ErrBadUaddr},
		{"tcp", "0.0.0.0.0.111" + strings.Repeat(" ", 4096), ErrBadUaddr},
		{"tcp", "/run/x.sock", ErrBadUaddr},
		{"x", strings.Repeat("a", 4096), ErrUnknown},
		{"bogus", "whatever", ErrUnknown},
		{"", "127.0.0.1.1.1", ErrUnknown},
		{"rawip", "", ErrUnknown},
		{"ticotsord", "/run/x.sock", ErrUnknown},
	}
	for _, tc := range tests {
		t.Run(string(tc.id)+" "+fmt.Sprintf("%.30q", tc.addr), func(t *testing.T) {
			err := CheckUaddr(tc.id, tc.addr)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("CheckUaddr = %v, want nil", err)
				}
				return
			}
			var ae *AddrError
			if !errors.Is(err, tc.want) || !errors.As(err, &ae) || ae.ID != tc.id {
				t.Fatalf("CheckUaddr = %v, want an *AddrError of %q for %v", err, tc.id, tc.want)
			}
		})
	}
	if MaxUaddr4Len != 23 || MaxUaddr6Len != 53 {
		t.Errorf("MaxUaddr4Len %d, MaxUaddr6Len %d", MaxUaddr4Len, MaxUaddr6Len)
	}
}

// TestFormatUaddr: rpcbind's answers and portmapctl's r_addr print an IP
// address and port this way.
func TestFormatUaddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:111":           "127.0.0.1.0.111",
		"0.0.0.0:0":               "0.0.0.0.0.0",
		"255.255.255.255:65535":   "255.255.255.255.255.255",
		"[::1]:4000":              "::1.15.160",
		"[::]:111":                "::.0.111",
		"[fe80::1%eth0]:2049":     "fe80::1.8.1",
		"[::ffff:127.0.0.1]:2049": "::ffff:127.0.0.1.8.1",
		"192.0.2.7:40001":         "192.0.2.7.156.65",
	} {
		ap := netip.MustParseAddrPort(in)
		got := FormatUaddr(ap)
		if got != want {
			t.Errorf("FormatUaddr(%s) = %q, want %q", in, got, want)
		}
		back, ok := ParseUaddr(got)
		if !ok || back != netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port()) {
			t.Errorf("ParseUaddr(%q) = %v, %v", got, back, ok)
		}
	}
}

// TestWildcardUaddr holds the wildcard addresses of rpcbind's own
// registrations, of a v2 SET (the registry and the warm-start reader),
// of portmapctl's set with a bare port and of rpcinfo's view of a v2 list.
func TestWildcardUaddr(t *testing.T) {
	for _, tc := range []struct {
		id   ID
		port uint32
		want string
	}{
		{UDP, 0, "0.0.0.0.0.0"}, {TCP, 111, "0.0.0.0.0.111"}, {UDP, 40001, "0.0.0.0.156.65"}, {UDP, 65535, "0.0.0.0.255.255"},
		// v2 ports are u32 on the wire; rpcbind keeps the low 16 bits.
		{UDP, 70000, "0.0.0.0.17.112"}, {TCP, 0xffffffff, "0.0.0.0.255.255"},
		{TCP6, 111, "::.0.111"}, {UDP6, 4000, "::.15.160"},
		{Local, 111, "0.0.0.0.0.111"},
	} {
		got := WildcardUaddr(tc.id, uint16(tc.port))
		if got != tc.want {
			t.Errorf("WildcardUaddr(%q, %d) = %q, want %q", tc.id, tc.port, got, tc.want)
		}
		if p, ok := UaddrPort(got); !ok || uint32(p) != tc.port&0xffff {
			t.Errorf("UaddrPort(%q) = %d, %v", got, p, ok)
		}
		if tc.id.IsIP() {
			if err := CheckUaddr(tc.id, got); err != nil {
				t.Errorf("CheckUaddr(%q, %q) = %v", tc.id, got, err)
			}
		}
	}
}

// FuzzCheckUaddr: whatever a peer sends, CheckUaddr does not panic, and
// what it accepts is bounded and, on an IP netid, has a port and an
// address of the netid's family.
func FuzzCheckUaddr(f *testing.F) {
	for _, s := range [][2]string{
		{"udp", "0.0.0.0.0.111"}, {"tcp6", "::1.8.1"}, {"local", "/run/rpcbind.sock"}, {"x", "a"},
		{"udp", "1.2.3.4.5"}, {"UDP6", "fe80::1%lo.1.1"}, {"tcp", "255.255.255.255.255.255"}, {"unix", "@abstract"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, netid, addr string) {
		id := ID(netid)
		if CheckUaddr(id, addr) != nil {
			return
		}
		if len(addr) > MaxLocalAddrLen {
			t.Fatalf("accepted %d bytes on %q", len(addr), netid)
		}
		switch id := id.Lower(); {
		case id.IsIP():
			ap, ok := ParseUaddr(addr)
			if !ok || ap.Addr().Is4() == id.Is6() || ap.Addr().Zone() != "" {
				t.Fatalf("accepted %q on %q: %v %v", addr, netid, ap, ok)
			}
		case id.IsLocal():
		default:
			t.Fatalf("accepted netid %q", netid)
		}
	})
}

// FuzzParseUaddr: the strict parser never panics, agrees with UaddrPort,
// and what it reads prints back as a universal address that it reads the
// same (less a zone, which a universal address cannot carry).
func FuzzParseUaddr(f *testing.F) {
	for _, s := range []string{"0.0.0.0.0.111", "::1.8.1", "fe80::1%eth0.4.1", "127.0.0.1.256.1", "x.1.1", "1.2", "", "::ffff:1.2.3.4.0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uaddr string) {
		ap, ok := ParseUaddr(uaddr)
		port, portOK := UaddrPort(uaddr)
		if ok && (!portOK || port != ap.Port()) {
			t.Fatalf("ParseUaddr(%q) = %v but UaddrPort = %d, %v", uaddr, ap, port, portOK)
		}
		if !ok {
			return
		}
		back, ok := ParseUaddr(FormatUaddr(ap))
		if !ok || back != netip.AddrPortFrom(ap.Addr().WithZone(""), ap.Port()) {
			t.Fatalf("%q: %v printed as %q reads back as %v, %v", uaddr, ap, FormatUaddr(ap), back, ok)
		}
	})
}
