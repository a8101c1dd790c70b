package registry

import (
	"net/netip"
	"strconv"
	"strings"
)

// Netids of the transports a portmapper serves (/etc/netconfig).
const (
	NetidUDP   = "udp"
	NetidTCP   = "tcp"
	NetidUDP6  = "udp6"
	NetidTCP6  = "tcp6"
	NetidLocal = "local"
)

// IP protocol numbers of the v2 view.
const (
	ProtoTCP = 6
	ProtoUDP = 17
)

// UaddrPort returns the port of an IP universal address, the number formed
// by its last two dot-separated fields (p1*256 + p2), as rpcbind parses it.
func UaddrPort(uaddr string) (uint16, bool) {
	i := strings.LastIndexByte(uaddr, '.')
	if i <= 0 {
		return 0, false
	}
	j := strings.LastIndexByte(uaddr[:i], '.')
	if j < 0 {
		return 0, false
	}
	hi, err1 := strconv.ParseUint(uaddr[j+1:i], 10, 8)
	lo, err2 := strconv.ParseUint(uaddr[i+1:], 10, 8)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return uint16(hi<<8 | lo), true
}

// wildcardUaddr4 is how a v2 registration appears in the v3 list.
func wildcardUaddr4(port uint32) string {
	return "0.0.0.0." + strconv.Itoa(int(port>>8&0xff)) + "." + strconv.Itoa(int(port&0xff))
}

// lowerASCII returns s in lower case without allocating when it already is.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// Bounds of the address forms CheckAddr accepts.
const (
	// MaxUaddr4Len is the longest IPv4 universal address,
	// "255.255.255.255.255.255".
	MaxUaddr4Len = len("255.255.255.255.255.255")
	// MaxUaddr6Len is the longest IPv6 universal address: the longest
	// text of an IPv6 address (INET6_ADDRSTRLEN less its NUL, with an
	// embedded IPv4 address), then ".255.255".
	MaxUaddr6Len = len("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255") + len(".255.255")
	// MaxLocalAddrLen is the size of sun_path: a path less its NUL, or
	// an abstract name written "@name", can be at most this long.
	MaxLocalAddrLen = 108
)

// NetidUnix is /etc/netconfig's other name for the local transport, which
// libtirpc treats as local.
const NetidUnix = "unix"

// CheckAddr reports whether addr has the form of a universal address on
// netid (in any case), the only netids a portmapper client can create a
// transport for: /etc/netconfig's udp, tcp, udp6 and tcp6, whose addresses
// are an IP address of the netid's family followed by two decimal port
// fields of 0 to 255, and local (or unix), whose address is a socket path or
// "@" and an abstract name, at most MaxLocalAddrLen bytes. Any other netid
// is ErrUnknownNetid, and an address not of the netid's form
// ErrBadAddress, wrapped in a *RefusedError.
func CheckAddr(netid, addr string) error {
	refuse := func(err error, detail string) error {
		return &RefusedError{Netid: netid, Err: err, Detail: detail}
	}
	switch lowerASCII(netid) {
	case NetidUDP, NetidTCP:
		if len(addr) > MaxUaddr4Len || !isIPUaddr(addr, true) {
			return refuse(ErrBadAddress, "not h1.h2.h3.h4.p1.p2")
		}
	case NetidUDP6, NetidTCP6:
		if len(addr) > MaxUaddr6Len || !isIPUaddr(addr, false) {
			return refuse(ErrBadAddress, "not an IPv6 address followed by .p1.p2")
		}
	case NetidLocal, NetidUnix:
		if len(addr) > MaxLocalAddrLen {
			return refuse(ErrBadAddress, "longer than an AF_UNIX address holds")
		}
		if strings.IndexByte(addr, 0) >= 0 {
			return refuse(ErrBadAddress, "NUL in a socket path")
		}
	default:
		return refuse(ErrUnknownNetid, "")
	}
	return nil
}

// isIPUaddr reports whether uaddr is an IP address of the family (IPv4 or
// IPv6, without a zone) and two port fields, as libtirpc's taddr2uaddr and
// the kernel write them.
func isIPUaddr(uaddr string, v4 bool) bool {
	if _, ok := UaddrPort(uaddr); !ok {
		return false
	}
	host := uaddr[:strings.LastIndexByte(uaddr[:strings.LastIndexByte(uaddr, '.')], '.')]
	a, err := netip.ParseAddr(host)
	return err == nil && a.Zone() == "" && a.Is4() == v4
}
