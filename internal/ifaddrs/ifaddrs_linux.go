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
// of registry/liveness) can share one Table.
package ifaddrs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
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
	// IFF_LOOPBACK and IFF_POINTOPOINT.
	Up, Loopback, PointToPoint bool
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

// dumpAttempts is how many times a dump the kernel flags as interrupted
// by a concurrent change (NLM_F_DUMP_INTR) is asked for again.
const dumpAttempts = 3

// Read lists the addresses of the calling thread's network namespace
// from two rtnetlink dumps, links then addresses, as glibc's getifaddrs
// does, in the kernel's order (IPv4 before IPv6, by interface), which is
// the order rpcbind searches them in.
func Read() ([]Addr, error) {
	for attempt := 1; ; attempt++ {
		addrs, err := read()
		if !errors.Is(err, errInterrupted) || attempt == dumpAttempts {
			return addrs, err
		}
	}
}

var errInterrupted = errors.New("ifaddrs: the interface list kept changing during the dump")

type link struct {
	name  string
	flags uint32
}

func read() ([]Addr, error) {
	links := map[int32]link{}
	err := dump(unix.RTM_GETLINK, func(m syscall.NetlinkMessage) error {
		if m.Header.Type != unix.RTM_NEWLINK {
			return nil
		}
		if len(m.Data) < unix.SizeofIfInfomsg {
			return fmt.Errorf("ifaddrs: ifinfomsg of %d bytes", len(m.Data))
		}
		index := int32(binary.NativeEndian.Uint32(m.Data[4:8]))
		l := link{flags: binary.NativeEndian.Uint32(m.Data[8:12])}
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return fmt.Errorf("ifaddrs: link attributes: %w", err)
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_IFNAME {
				l.name = cString(a.Value)
			}
		}
		links[index] = l
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []Addr
	err = dump(unix.RTM_GETADDR, func(m syscall.NetlinkMessage) error {
		if m.Header.Type != unix.RTM_NEWADDR {
			return nil
		}
		if len(m.Data) < unix.SizeofIfAddrmsg {
			return fmt.Errorf("ifaddrs: ifaddrmsg of %d bytes", len(m.Data))
		}
		family, prefixLen := m.Data[0], int(m.Data[1])
		index := int32(binary.NativeEndian.Uint32(m.Data[4:8]))
		attrs, err := syscall.ParseNetlinkRouteAttr(&m)
		if err != nil {
			return fmt.Errorf("ifaddrs: address attributes: %w", err)
		}
		var address, local []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_ADDRESS:
				address = a.Value
			case unix.IFA_LOCAL:
				local = a.Value
			}
		}
		// getifaddrs takes IFA_LOCAL as the address when there is one.
		raw := address
		if local != nil {
			raw = local
		}
		ip, ok := netip.AddrFromSlice(raw)
		switch {
		case !ok, family == unix.AF_INET && !ip.Is4(), family == unix.AF_INET6 && !ip.Is6():
			return nil // another family, or not an address getifaddrs reports
		case prefixLen > ip.BitLen():
			return fmt.Errorf("ifaddrs: prefix length %d for %s", prefixLen, ip)
		}
		l := links[index]
		out = append(out, Addr{
			Prefix:       netip.PrefixFrom(ip, prefixLen),
			Index:        int(index),
			Name:         l.name,
			Up:           l.flags&unix.IFF_UP != 0,
			Loopback:     l.flags&unix.IFF_LOOPBACK != 0,
			PointToPoint: l.flags&unix.IFF_POINTOPOINT != 0,
		})
		return nil
	})
	return out, err
}

// dump asks for one rtnetlink dump of every family and hands each message
// to fn.
func dump(typ int, fn func(syscall.NetlinkMessage) error) error {
	b, err := syscall.NetlinkRIB(typ, unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("ifaddrs: netlink dump: %w", os.NewSyscallError("netlinkrib", err))
	}
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return fmt.Errorf("ifaddrs: netlink dump: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Flags&unix.NLM_F_DUMP_INTR != 0 {
			return errInterrupted
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
