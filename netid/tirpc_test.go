package netid

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
)

func TestAtoi(t *testing.T) {
	for in, want := range map[string]int{
		"0": 0, "111": 111, "255": 255, "256": 256, " 3": 3, "\t\n3": 3, "+3": 3, "-1": -1, "3x": 3, "x3": 0,
		"": 0, "-": 0, "+": 0, " ": 0, "0x10": 0, "007": 7, "3 4": 3, "--1": 0,
		// Digits stop counting once the number is past 2^24, where
		// C's atoi would have overflowed long before it mattered.
		"99999999999999999999": 99999999,
	} {
		if got := atoi(in); got != want {
			t.Errorf("atoi(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestUaddr2Taddr holds the forms rpcbind's uaddrToTaddr (UADDR2TADDR)
// converted and refused, with the port read as libtirpc reads it.
func TestUaddr2Taddr(t *testing.T) {
	tests := []struct {
		name  string
		fam   Family
		uaddr string
		host  string // the address or path the sockaddr holds; "" when refused
		port  uint16
	}{
		{"inet", FamilyInet, "127.0.0.1.3.232", "127.0.0.1", 1000},
		{"inet6", FamilyInet6, "::1.3.232", "::1", 1000},
		{"inet wildcard", FamilyInet, "0.0.0.0.0.111", "0.0.0.0", 111},
		{"inet6 mapped", FamilyInet6, "::ffff:127.0.0.1.0.111", "::ffff:127.0.0.1", 111},
		{"atoi: blanks and sign", FamilyInet, "127.0.0.1. 3.+232", "127.0.0.1", 1000},
		{"atoi: trailing garbage", FamilyInet, "127.0.0.1.3x.232y", "127.0.0.1", 1000},
		{"atoi: not a number is 0", FamilyInet, "127.0.0.1.a.b", "127.0.0.1", 0},
		{"atoi: empty fields are 0", FamilyInet, "127.0.0.1..", "127.0.0.1", 0},
		{"atoi: a field over 255 spills", FamilyInet, "127.0.0.1.256.1", "127.0.0.1", 1},
		{"atoi: negative wraps", FamilyInet, "127.0.0.1.-1.0", "127.0.0.1", 65280},
		{"local path", FamilyLocal, "/run/rpcbind.sock", "/run/rpcbind.sock", 0},
		{"local path with dots keeps them", FamilyLocal, "/run/a.b.c", "/run/a.b.c", 0},
		{"local non-path loses its last two fields", FamilyLocal, "127.0.0.1.3.232", "127.0.0.1", 0},
		{"local abstract name loses them too", FamilyLocal, "@/run/rpcbind.sock.1.2", "@/run/rpcbind.sock", 0},
		{"local path cut at NUL", FamilyLocal, "/run/a\x00b", "/run/a", 0},
		{"local path cut to sun_path", FamilyLocal, "/" + strings.Repeat("p", 200), "/" + strings.Repeat("p", 106), 0},
		{"local non-path without fields", FamilyLocal, "x", "", 0},
		{"inet6 address on inet", FamilyInet, "::1.3.232", "", 0},
		{"inet address on inet6", FamilyInet6, "127.0.0.1.3.232", "", 0},
		{"zone", FamilyInet6, "fe80::1%eth0.3.232", "", 0},
		{"no port", FamilyInet, "127.0.0.1", "", 0},
		{"one field", FamilyInet, "127.0.0.1.1", "", 0},
		{"garbage", FamilyInet, "x", "", 0},
		{"empty", FamilyInet, "", "", 0},
		{"path on inet", FamilyInet, "/run/rpcbind.sock", "", 0},
		{"unknown family", 3, "127.0.0.1.3.232", "", 0},
		{"rawip has no family", 0, "127.0.0.1.3.232", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sa, ok := Uaddr2Taddr(tc.fam, tc.uaddr)
			if tc.host == "" {
				if ok || sa != nil {
					t.Fatalf("Uaddr2Taddr(%d, %q) = %x, %v; want refused", tc.fam, tc.uaddr, sa, ok)
				}
				if ap, ok := ParseUaddrLenient(tc.fam, tc.uaddr); ok {
					t.Errorf("ParseUaddrLenient = %v", ap)
				}
				return
			}
			if !ok || binary.NativeEndian.Uint16(sa) != uint16(tc.fam) || uint32(len(sa)) > tc.fam.SockaddrLen() {
				t.Fatalf("Uaddr2Taddr(%d, %q) = %x, %v", tc.fam, tc.uaddr, sa, ok)
			}
			if tc.fam == FamilyLocal {
				if got := string(sa[2:]); got != tc.host {
					t.Errorf("path %q, want %q", got, tc.host)
				}
				if ap, ok := ParseUaddrLenient(tc.fam, tc.uaddr); ok {
					t.Errorf("ParseUaddrLenient on local = %v", ap)
				}
				return
			}
			if uint32(len(sa)) != tc.fam.SockaddrLen() {
				t.Errorf("sockaddr of %d bytes, want %d", len(sa), tc.fam.SockaddrLen())
			}
			want := netip.AddrPortFrom(netip.MustParseAddr(tc.host), tc.port)
			if ap, ok := ParseUaddrLenient(tc.fam, tc.uaddr); !ok || ap != want {
				t.Errorf("ParseUaddrLenient = %v, %v; want %v", ap, ok, want)
			}
			back, ok := Taddr2Uaddr(tc.fam, sa)
			if !ok || back != FormatUaddr(want) {
				t.Errorf("Taddr2Uaddr = %q, %v; want %q", back, ok, FormatUaddr(want))
			}
		})
	}
}

// TestTaddr2Uaddr holds what rpcbind's taddrToUaddr (TADDR2UADDR) read
// and refused: the address by the transport's family, whatever sa_family
// says, from a buffer at least that family's size.
func TestTaddr2Uaddr(t *testing.T) {
	in4 := []byte{2, 0, 0x03, 0xe8, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}
	in6 := append([]byte{10, 0, 0x00, 0x6f, 0, 0, 0, 0}, netip.IPv6Loopback().AsSlice()...)
	in6 = append(in6, 0, 0, 0, 0)
	tests := []struct {
		name string
		fam  Family
		buf  []byte
		want string
		ok   bool
	}{
		{"inet", FamilyInet, in4, "127.0.0.1.3.232", true},
		{"inet with extra bytes", FamilyInet, append(bytes.Clone(in4), 9, 9), "127.0.0.1.3.232", true},
		{"inet read from another family's buffer", FamilyInet, append([]byte{10, 0}, in4[2:]...), "127.0.0.1.3.232", true},
		{"inet short", FamilyInet, in4[:15], "", false},
		{"inet6", FamilyInet6, in6, "::1.0.111", true},
		{"inet6 short", FamilyInet6, in6[:27], "", false},
		{"inet6 from an inet buffer", FamilyInet6, in4, "", false},
		{"local", FamilyLocal, append([]byte{1, 0}, "/run/rpcbind.sock"...), "/run/rpcbind.sock", true},
		{"local cut at NUL", FamilyLocal, append([]byte{1, 0}, "/run/a\x00junk"...), "/run/a", true},
		{"local empty path", FamilyLocal, []byte{1, 0}, "", true},
		{"local short", FamilyLocal, []byte{1}, "", false},
		{"short netbuf", FamilyInet, make([]byte, 8), "", false},
		{"unknown family", 3, in4, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Taddr2Uaddr(tc.fam, tc.buf)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Taddr2Uaddr = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// FuzzUaddr2Taddr: the lenient parser never panics, writes no more than a
// sockaddr of the family holds, and what it writes for an IP family reads
// back as a universal address it parses to the same address and port.
func FuzzUaddr2Taddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1.3.232", "::1.3.232", "/run/rpcbind.sock", "127.0.0.1. 3.+232", "1.2.-1.-1", "x", "", "a\x00b.1.1"} {
		for _, fam := range []Family{FamilyLocal, FamilyInet, FamilyInet6} {
			f.Add(uint16(fam), s)
		}
	}
	f.Fuzz(func(t *testing.T, family uint16, uaddr string) {
		fam := Family(family)
		sa, ok := Uaddr2Taddr(fam, uaddr)
		if !ok {
			return
		}
		if len(sa) < sunPathOffset || uint32(len(sa)) > fam.SockaddrLen() {
			t.Fatalf("%q on %d: sockaddr of %d bytes", uaddr, fam, len(sa))
		}
		back, ok := Taddr2Uaddr(fam, sa)
		if !ok {
			t.Fatalf("%q on %d: %x does not read back", uaddr, fam, sa)
		}
		if fam == FamilyLocal {
			return
		}
		ap, ok := ParseUaddrLenient(fam, uaddr)
		if !ok || back != FormatUaddr(ap) {
			t.Fatalf("%q on %d: read back as %q, parsed as %v, %v", uaddr, fam, back, ap, ok)
		}
		if again, ok := ParseUaddrLenient(fam, back); !ok || again != ap {
			t.Fatalf("%q on %d: %q parses as %v, %v; want %v", uaddr, fam, back, again, ok, ap)
		}
	})
}

// FuzzTaddr2Uaddr: whatever netbuf a peer sends, the conversion does not
// panic, and an IP address it prints reads back, leniently and strictly,
// as the address and port the buffer holds.
func FuzzTaddr2Uaddr(f *testing.F) {
	in4, _ := Uaddr2Taddr(FamilyInet, "127.0.0.1.3.232")
	in6, _ := Uaddr2Taddr(FamilyInet6, "fe80::1.0.111")
	un, _ := Uaddr2Taddr(FamilyLocal, "/run/rpcbind.sock")
	for _, b := range [][]byte{in4, in6, un, nil, {1}, make([]byte, 8)} {
		for _, fam := range []Family{FamilyLocal, FamilyInet, FamilyInet6} {
			f.Add(uint16(fam), b)
		}
	}
	f.Fuzz(func(t *testing.T, family uint16, buf []byte) {
		fam := Family(family)
		uaddr, ok := Taddr2Uaddr(fam, buf)
		if !ok || fam == FamilyLocal {
			return
		}
		lenient, ok1 := ParseUaddrLenient(fam, uaddr)
		strict, ok2 := ParseUaddr(uaddr)
		if !ok1 || !ok2 || lenient != strict || strict.Port() != binary.BigEndian.Uint16(buf[2:4]) {
			t.Fatalf("%x on %d printed as %q: lenient %v %v, strict %v %v", buf, fam, uaddr, lenient, ok1, strict, ok2)
		}
		if err := CheckUaddr(map[Family]ID{FamilyInet: TCP, FamilyInet6: TCP6}[fam], uaddr); err != nil {
			t.Fatalf("%x on %d printed as %q: %v", buf, fam, uaddr, err)
		}
	})
}
