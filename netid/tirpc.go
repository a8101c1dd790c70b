package netid

import (
	"encoding/binary"
	"net/netip"
	"strings"
)

// This file reads universal addresses the lenient way libtirpc's
// __rpc_uaddr2taddr_af does, for the answers that must match rpcbind's
// byte for byte: RPCBPROC_UADDR2TADDR and TADDR2UADDR, and the addresses
// that GETADDR merges.

// splitLenient splits a universal address as libtirpc does: anything but
// an absolute path loses its last two dot-separated fields as the port,
// whatever the family, each field read with C's atoi; a path is all host.
// It is false when there are not two dots to split at.
func splitLenient(uaddr string) (host string, port uint16, ok bool) {
	if strings.HasPrefix(uaddr, "/") {
		return uaddr, 0, true
	}
	i := strings.LastIndexByte(uaddr, '.')
	if i < 0 {
		return "", 0, false
	}
	j := strings.LastIndexByte(uaddr[:i], '.')
	if j < 0 {
		return "", 0, false
	}
	return uaddr[:j], uint16(atoi(uaddr[j+1:i])<<8 | atoi(uaddr[i+1:])), true
}

// atoi reads a decimal number as C's atoi does: optional blanks and sign,
// then digits up to the first non-digit; anything else reads as 0.
func atoi(s string) int {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' || n > 1<<24 {
			break
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		return -n
	}
	return n
}

// ParseUaddrLenient reads an IP universal address of the family (FamilyInet
// or FamilyInet6) the way libtirpc's uaddr2taddr does: the port fields as
// splitLenient reads them, then an address of that family without a zone.
func ParseUaddrLenient(fam Family, uaddr string) (netip.AddrPort, bool) {
	if fam != FamilyInet && fam != FamilyInet6 {
		return netip.AddrPort{}, false
	}
	host, port, ok := splitLenient(uaddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" || (fam == FamilyInet) != a.Is4() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, port), true
}

// Uaddr2Taddr converts a universal address of a family into the Linux
// struct sockaddr a netbuf of SockaddrLen carries, as RPCBPROC_UADDR2TADDR
// answers. As in libtirpc, a local address that is not an absolute path
// loses its last two dot-separated fields too: a local "path" of
// 127.0.0.1.3.232 becomes 127.0.0.1. A path is cut at a NUL and at the
// length of sun_path less its NUL.
func Uaddr2Taddr(fam Family, uaddr string) ([]byte, bool) {
	buf := binary.NativeEndian.AppendUint16(make([]byte, 0, fam.SockaddrLen()), uint16(fam))
	switch fam {
	case FamilyLocal:
		path, _, ok := splitLenient(uaddr)
		if !ok {
			return nil, false
		}
		if i := strings.IndexByte(path, 0); i >= 0 {
			path = path[:i]
		}
		if len(path) > sizeofSockaddrUn-sunPathOffset-1 {
			path = path[:sizeofSockaddrUn-sunPathOffset-1]
		}
		return append(buf, path...), true
	case FamilyInet, FamilyInet6:
		ap, ok := ParseUaddrLenient(fam, uaddr)
		if !ok {
			return nil, false
		}
		buf = binary.BigEndian.AppendUint16(buf, ap.Port())
		if fam == FamilyInet {
			a4 := ap.Addr().As4()
			buf = append(buf, a4[:]...)
			return append(buf, make([]byte, 8)...), true // sin_zero
		}
		a16 := ap.Addr().As16()
		buf = append(buf, 0, 0, 0, 0) // flow info
		buf = append(buf, a16[:]...)
		return append(buf, 0, 0, 0, 0), true // scope id
	}
	return nil, false
}

// Taddr2Uaddr converts a buffer holding a Linux struct sockaddr of the
// family into a universal address, as RPCBPROC_TADDR2UADDR answers. Like
// libtirpc, it reads the address by the transport's family, not by the
// buffer's sa_family.
func Taddr2Uaddr(fam Family, buf []byte) (string, bool) {
	switch fam {
	case FamilyInet:
		if len(buf) < sizeofSockaddrIn {
			return "", false
		}
		port := binary.BigEndian.Uint16(buf[2:4])
		return FormatUaddr(netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port)), true
	case FamilyInet6:
		if len(buf) < sizeofSockaddrIn6 {
			return "", false
		}
		port := binary.BigEndian.Uint16(buf[2:4])
		return FormatUaddr(netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port)), true
	case FamilyLocal:
		if len(buf) < sunPathOffset {
			return "", false
		}
		path := buf[sunPathOffset:]
		if i := strings.IndexByte(string(path), 0); i >= 0 {
			path = path[:i]
		}
		return string(path), true
	}
	return "", false
}
