//go:build !linux

package ifaddrs

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// linkFlags is the standard library's account of an interface's flags.
type linkFlags = net.Flags

// The bits of linkFlags that an Addr reports.
const (
	flagUp           = net.FlagUp
	flagLoopback     = net.FlagLoopback
	flagPointToPoint = net.FlagPointToPoint
	flagBroadcast    = net.FlagBroadcast
	flagMulticast    = net.FlagMulticast
)

// Read lists the addresses of the host's interfaces from the standard
// library's account of them, IPv4 before IPv6 as on Linux, by interface.
func Read() ([]Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("ifaddrs: %w", err)
	}
	var out []Addr
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("ifaddrs: %s: %w", ifc.Name, err)
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			ones, _ := n.Mask.Size()
			ad := Addr{Prefix: netip.PrefixFrom(ip.Unmap(), ones), Index: ifc.Index, Name: ifc.Name}
			ad.setLinkFlags(ifc.Flags)
			// The standard library does not say an address's broadcast
			// address; it is the last of its network unless set
			// otherwise, which only Linux's list tells.
			if ad.Broadcast && ad.Prefix.Addr().Is4() && ad.Prefix.Bits() < 31 {
				ad.BroadcastAddr = lastAddr(ad.Prefix)
			}
			out = append(out, ad)
		}
	}
	slices.SortStableFunc(out, func(a, b Addr) int {
		switch {
		case a.Prefix.Addr().Is4() == b.Prefix.Addr().Is4():
			return 0
		case a.Prefix.Addr().Is4():
			return -1
		}
		return 1
	})
	return out, nil
}
