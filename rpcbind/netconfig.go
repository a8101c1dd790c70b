package rpcbind

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// Address families as a Linux struct sockaddr carries them.
const (
	afLocal = 1
	afInet  = 2
	afInet6 = 10
)

// A netconfig holds what /etc/netconfig says of a transport.
type netconfig struct {
	netid     string
	semantics uint32
	protoFmly string
	proto     string
	family    uint16
}

// lookupNetconfig returns Debian's /etc/netconfig entry for netid.
func lookupNetconfig(netid string) (netconfig, bool) {
	switch netid {
	case registry.NetidUDP:
		return netconfig{netid, xdr.NCTpiClts, "inet", "udp", afInet}, true
	case registry.NetidTCP:
		return netconfig{netid, xdr.NCTpiCotsOrd, "inet", "tcp", afInet}, true
	case registry.NetidUDP6:
		return netconfig{netid, xdr.NCTpiClts, "inet6", "udp", afInet6}, true
	case registry.NetidTCP6:
		return netconfig{netid, xdr.NCTpiCotsOrd, "inet6", "tcp", afInet6}, true
	case registry.NetidLocal:
		return netconfig{netid, xdr.NCTpiCotsOrd, "loopback", "-", afLocal}, true
	}
	return netconfig{}, false
}

// Sizes of the Linux socket addresses a netbuf carries.
const (
	sizeofSockaddrIn  = 16
	sizeofSockaddrIn6 = 28
	sizeofSockaddrUn  = 110
	sunPathOffset     = 2
)

// parseUaddr reads an IP universal address of the family into its address
// and port, the way uaddrToTaddr does.
func parseUaddr(family uint16, uaddr string) (netip.AddrPort, bool) {
	if family != afInet && family != afInet6 {
		return netip.AddrPort{}, false
	}
	nb, ok := uaddrToTaddr(family, uaddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	port := binary.BigEndian.Uint16(nb.Buf[2:4])
	if family == afInet {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(nb.Buf[4:8])), port), true
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(nb.Buf[8:24])), port), true
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

// formatUaddr writes an IP address and port as a universal address.
func formatUaddr(ap netip.AddrPort) string {
	p := ap.Port()
	return ap.Addr().WithZone("").String() + "." + strconv.Itoa(int(p>>8)) + "." + strconv.Itoa(int(p&0xff))
}

// uaddrToTaddr converts a universal address of a family into a netbuf
// holding a Linux struct sockaddr, as RPCBPROC_UADDR2TADDR answers. As in
// libtirpc, anything but an absolute path loses its last two dot-separated
// fields as the port, whatever the family: a local "path" of
// 127.0.0.1.3.232 becomes 127.0.0.1.
func uaddrToTaddr(family uint16, uaddr string) (xdr.Netbuf, bool) {
	host, port := uaddr, uint16(0)
	if !strings.HasPrefix(uaddr, "/") {
		i := strings.LastIndexByte(uaddr, '.')
		if i < 0 {
			return xdr.Netbuf{}, false
		}
		j := strings.LastIndexByte(uaddr[:i], '.')
		if j < 0 {
			return xdr.Netbuf{}, false
		}
		host, port = uaddr[:j], uint16(atoi(uaddr[j+1:i])<<8|atoi(uaddr[i+1:]))
	}
	buf := binary.NativeEndian.AppendUint16(nil, family)
	switch family {
	case afLocal:
		path := host
		if i := strings.IndexByte(path, 0); i >= 0 {
			path = path[:i]
		}
		if len(path) > sizeofSockaddrUn-sunPathOffset-1 {
			path = path[:sizeofSockaddrUn-sunPathOffset-1]
		}
		return xdr.Netbuf{MaxLen: sizeofSockaddrUn, Buf: append(buf, path...)}, true
	case afInet, afInet6:
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" || (family == afInet) != a.Is4() {
			return xdr.Netbuf{}, false
		}
		buf = binary.BigEndian.AppendUint16(buf, port)
		if family == afInet {
			a4 := a.As4()
			buf = append(buf, a4[:]...)
			buf = append(buf, make([]byte, 8)...)
		} else {
			a16 := a.As16()
			buf = append(buf, 0, 0, 0, 0) // flow info
			buf = append(buf, a16[:]...)
			buf = append(buf, 0, 0, 0, 0) // scope id
		}
		return xdr.Netbuf{MaxLen: uint32(len(buf)), Buf: buf}, true
	}
	return xdr.Netbuf{}, false
}

// taddrToUaddr converts a netbuf holding a struct sockaddr of the family
// into a universal address, as RPCBPROC_TADDR2UADDR answers. Like libtirpc,
// it reads the address by the transport's family, not the buffer's.
func taddrToUaddr(family uint16, buf []byte) (string, bool) {
	switch family {
	case afInet:
		if len(buf) < sizeofSockaddrIn {
			return "", false
		}
		port := binary.BigEndian.Uint16(buf[2:4])
		return formatUaddr(netip.AddrPortFrom(netip.AddrFrom4([4]byte(buf[4:8])), port)), true
	case afInet6:
		if len(buf) < sizeofSockaddrIn6 {
			return "", false
		}
		port := binary.BigEndian.Uint16(buf[2:4])
		return formatUaddr(netip.AddrPortFrom(netip.AddrFrom16([16]byte(buf[8:24])), port)), true
	case afLocal:
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
