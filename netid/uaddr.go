package netid

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Bounds of the address forms CheckUaddr accepts.
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

// Reasons CheckUaddr refuses an address, wrapped in an *AddrError.
var (
	// ErrUnknown reports a netid outside /etc/netconfig's udp, tcp,
	// udp6, tcp6, local and unix: none a client can create a transport
	// for.
	ErrUnknown = errors.New("netid: not a netid a client can reach")
	// ErrBadUaddr reports an address not of its netid's form.
	ErrBadUaddr = errors.New("netid: address is not of the netid's form")
)

// An AddrError says why CheckUaddr refused an address. It unwraps to
// ErrUnknown or ErrBadUaddr.
type AddrError struct {
	ID ID
	// Err is ErrUnknown or ErrBadUaddr.
	Err error
	// Detail says what form was expected; empty for ErrUnknown.
	Detail string
}

func (e *AddrError) Error() string {
	s := e.Err.Error() + ": netid " + strconv.Quote(string(e.ID))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *AddrError) Unwrap() error { return e.Err }

// CheckUaddr reports whether addr has the form of a universal address on
// id (in any case), for the only netids a portmapper client can create a
// transport for: udp, tcp, udp6 and tcp6, whose addresses are an IP
// address of the netid's family without a zone followed by two decimal
// port fields of 0 to 255 (at most MaxUaddr4Len or MaxUaddr6Len bytes),
// and local or unix, whose address is a socket path or "@" and an abstract
// name, at most MaxLocalAddrLen bytes and without NUL. Anything else is an
// *AddrError.
func CheckUaddr(id ID, addr string) error {
	bad := func(detail string) error { return &AddrError{ID: id, Err: ErrBadUaddr, Detail: detail} }
	switch id.Lower() {
	case UDP, TCP:
		if len(addr) > MaxUaddr4Len || !isIPUaddr(addr, true) {
			return bad("not h1.h2.h3.h4.p1.p2")
		}
	case UDP6, TCP6:
		if len(addr) > MaxUaddr6Len || !isIPUaddr(addr, false) {
			return bad("not an IPv6 address followed by .p1.p2")
		}
	case Local, Unix:
		if len(addr) > MaxLocalAddrLen {
			return bad("longer than an AF_UNIX address holds")
		}
		if strings.IndexByte(addr, 0) >= 0 {
			return bad("NUL in a socket path")
		}
	default:
		return &AddrError{ID: id, Err: ErrUnknown}
	}
	return nil
}

// isIPUaddr reports whether uaddr is an IP address of the family (IPv4 or
// IPv6, without a zone) and two port fields, as libtirpc's taddr2uaddr and
// the kernel write them.
func isIPUaddr(uaddr string, v4 bool) bool {
	ap, ok := ParseUaddr(uaddr)
	return ok && ap.Addr().Zone() == "" && ap.Addr().Is4() == v4
}

// splitUaddr splits an IP universal address into the text before its last
// two dot-separated fields and the port those fields make (p1*256 + p2),
// each a decimal number of 0 to 255 without sign or blanks.
func splitUaddr(uaddr string) (host string, port uint16, ok bool) {
	i := strings.LastIndexByte(uaddr, '.')
	if i <= 0 {
		return "", 0, false
	}
	j := strings.LastIndexByte(uaddr[:i], '.')
	if j < 0 {
		return "", 0, false
	}
	hi, err1 := strconv.ParseUint(uaddr[j+1:i], 10, 8)
	lo, err2 := strconv.ParseUint(uaddr[i+1:], 10, 8)
	if err1 != nil || err2 != nil {
		return "", 0, false
	}
	return uaddr[:j], uint16(hi<<8 | lo), true
}

// UaddrPort returns the port of an IP universal address, the number formed
// by its last two dot-separated fields (p1*256 + p2), as rpcbind parses it
// for the v2 view. The host is not looked at.
func UaddrPort(uaddr string) (uint16, bool) {
	_, port, ok := splitUaddr(uaddr)
	return port, ok
}

// ParseUaddr reads an IP universal address: any address netip.ParseAddr
// reads, of either family and with a zone if it has one, followed by two
// port fields as UaddrPort reads them. CheckUaddr says whether the address
// suits a netid.
func ParseUaddr(uaddr string) (netip.AddrPort, bool) {
	host, port, ok := splitUaddr(uaddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a, port), true
}

// FormatUaddr writes an IP address and port as a universal address,
// h1.h2.h3.h4.p1.p2 or the IPv6 text followed by .p1.p2, as libtirpc's
// taddr2uaddr does: without a zone, and an IPv4-mapped IPv6 address in its
// IPv6 form.
func FormatUaddr(ap netip.AddrPort) string {
	port := ap.Port()
	return ap.Addr().WithZone("").String() + "." + strconv.Itoa(int(port>>8)) + "." + strconv.Itoa(int(port&0xff))
}

// WildcardUaddr returns the universal address of port on every address of
// an IP netid's family, as rpcbind registers itself and as portmap v2's
// SET registers a service: 0.0.0.0.p1.p2, or ::.p1.p2 for udp6 and tcp6.
// A v2 port is a 32-bit number on the wire of which rpcbind keeps the low
// 16 bits: pass uint16(port).
func WildcardUaddr(id ID, port uint16) string {
	hi, lo := strconv.Itoa(int(port>>8)), strconv.Itoa(int(port&0xff))
	if id.Is6() {
		return "::." + hi + "." + lo
	}
	return "0.0.0.0." + hi + "." + lo
}
