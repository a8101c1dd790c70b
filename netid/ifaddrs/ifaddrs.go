// Package ifaddrs lists the host's interface addresses the way
// getifaddrs(3) does, and keeps that list no staler than the kernel's.
//
// Read asks the kernel every time. A Table keeps the list between calls
// and reads it again as soon as the kernel announces a change of
// addresses or links, or when it is asked about an address it lacks: an
// answer built from it is never older than the kernel's own tables.
//
// It imports nothing of the portmapper, so that both faces' parts that
// need the host's addresses (address merging in rpcbind, the port checks
// of registry/lifetime) can share one Table. On Linux it reads rtnetlink
// (the _linux files); elsewhere it reads the standard library's list of
// interfaces, and a Table reads it on every call.
package ifaddrs

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// An Addr is one address of a network interface, as getifaddrs reports
// it: for IPv4 the local address (IFA_LOCAL, which differs from
// IFA_ADDRESS on a point-to-point link), for IPv6 IFA_ADDRESS; the
// prefix length of its netmask; the flags of its link.
type Addr struct {
	// Prefix is the address and its prefix length. A link-local IPv6
	// address carries no zone: Index says which link it is on.
	Prefix netip.Prefix
	// Index and Name identify the interface.
	Index int
	Name  string
	// Up, Loopback and PointToPoint are the link's IFF_UP,
	// IFF_LOOPBACK and IFF_POINTOPOINT; Broadcast and Multicast its
	// IFF_BROADCAST and IFF_MULTICAST.
	Up, Loopback, PointToPoint bool
	Broadcast, Multicast       bool
	// BroadcastAddr is an IPv4 address's broadcast address
	// (IFA_BROADCAST, getifaddrs's ifa_broadaddr), when it was given one.
	BroadcastAddr netip.Addr
}

// setLinkFlags sets a's Up, Loopback, PointToPoint, Broadcast and
// Multicast from flags, its link's flags.
func (a *Addr) setLinkFlags(flags linkFlags) {
	a.Up = flags&flagUp != 0
	a.Loopback = flags&flagLoopback != 0
	a.PointToPoint = flags&flagPointToPoint != 0
	a.Broadcast = flags&flagBroadcast != 0
	a.Multicast = flags&flagMulticast != 0
}

// OnLink reports whether zone, as Go spells a scoped address's zone (the
// interface name, or its index in decimal when the name is unknown),
// names a's interface.
func (a Addr) OnLink(zone string) bool {
	return zone != "" && (zone == a.Name || zone == strconv.Itoa(a.Index))
}

// accounts reports whether list accounts for the kernel having just
// delivered a packet to dst: dst is one of its addresses on a link that is
// up, the broadcast address of one of its IPv4 networks, or on the network
// of a loopback address (the kernel takes all of 127.0.0.0/8 as local). A
// multicast or limited-broadcast destination tells nothing of the list.
func accounts(list []Addr, dst netip.Addr) bool {
	dst = dst.WithZone("")
	if dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return true
	}
	for i := range list {
		a := &list[i]
		if !a.Up {
			continue
		}
		if a.Prefix.Addr() == dst || (a.Loopback && a.Prefix.Contains(dst)) ||
			(dst.Is4() && a.Prefix.Addr().Is4() && a.Prefix.Bits() < 31 && dst == lastAddr(a.Prefix)) {
			return true
		}
	}
	return false
}

// lastAddr is the highest address of p's network, an IPv4 network's
// broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := binary.BigEndian.Uint32(b[:]) | host
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// A Source lists the host's interface addresses. dst, when valid, is the
// destination of a call the kernel has just delivered; a Source that keeps
// a list must read the kernel's again rather than answer with a list that
// cannot account for that delivery (see Table.Addrs).
type Source func(dst netip.Addr) ([]Addr, error)

// ReadSource is the Source that reads the kernel's list on every call.
func ReadSource(netip.Addr) ([]Addr, error) { return Read() }
