package ifaddrs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

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

// linkFlags is a link's flags word, ifinfomsg's ifi_flags: the kernel's
// IFF_ bits.
type linkFlags uint32

// The bits of linkFlags that an Addr reports.
const (
	flagUp           linkFlags = unix.IFF_UP
	flagLoopback     linkFlags = unix.IFF_LOOPBACK
	flagPointToPoint linkFlags = unix.IFF_POINTOPOINT
	flagBroadcast    linkFlags = unix.IFF_BROADCAST
	flagMulticast    linkFlags = unix.IFF_MULTICAST
)

type link struct {
	name  string
	flags linkFlags
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
		l := link{flags: linkFlags(binary.NativeEndian.Uint32(m.Data[8:12]))}
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
		var address, local, brd []byte
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.IFA_ADDRESS:
				address = a.Value
			case unix.IFA_LOCAL:
				local = a.Value
			case unix.IFA_BROADCAST:
				brd = a.Value
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
		a := Addr{Prefix: netip.PrefixFrom(ip, prefixLen), Index: int(index), Name: l.name}
		a.setLinkFlags(l.flags)
		if b, ok := netip.AddrFromSlice(brd); ok && b.Is4() {
			a.BroadcastAddr = b
		}
		out = append(out, a)
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
