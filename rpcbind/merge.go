package rpcbind

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// An IfAddr is one address of a network interface, as getifaddrs reports
// it.
type IfAddr struct {
	Prefix       netip.Prefix
	Index        int
	Up           bool
	Loopback     bool
	PointToPoint bool
}

// SystemInterfaces lists the host's interface addresses.
func SystemInterfaces() ([]IfAddr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []IfAddr
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			if ip.Is4In6() {
				ip = ip.Unmap()
			}
			out = append(out, IfAddr{
				Prefix:       netip.PrefixFrom(ip, ones),
				Index:        ifc.Index,
				Up:           ifc.Flags&net.FlagUp != 0,
				Loopback:     ifc.Flags&net.FlagLoopback != 0,
				PointToPoint: ifc.Flags&net.FlagPointToPoint != 0,
			})
		}
	}
	return out, nil
}

// interfaceCache keeps the interface list for a moment, so that a burst of
// GETADDR calls does not dump the kernel's address table for each one.
type interfaceCache struct {
	list func() ([]IfAddr, error)
	ttl  time.Duration

	mu      sync.Mutex
	addrs   []IfAddr
	fetched time.Time
}

func (ic *interfaceCache) get() []IfAddr {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.addrs == nil || time.Since(ic.fetched) > ic.ttl {
		list := ic.list
		if list == nil {
			list = SystemInterfaces
		}
		addrs, err := list()
		if err != nil {
			return ic.addrs
		}
		ic.addrs, ic.fetched = addrs, time.Now()
	}
	return ic.addrs
}

// mergeAddr rewrites a registered universal address into one the caller
// can reach, as rpcbind's mergeaddr and addrmerge do: the address of the
// interface on the caller's network (or the one the caller's hint names),
// with the registered port. It reports false where rpcbind's gives NULL:
// the netid is not served, the hint or registered address does not parse,
// or no interface fits. A local caller gets the registered address as is.
func (p *Portmapper) mergeAddr(c *Call, netid, servUaddr, hint string) (string, bool) {
	if !p.serves(netid) {
		return "", false
	}
	nc, _ := lookupNetconfig(netid)
	if c.Netid == "local" || nc.family == afLocal {
		return servUaddr, true
	}
	caller := c.Remote
	target := caller.Addr()
	if hint != "" {
		h, ok := parseUaddr(nc.family, hint)
		if !ok {
			return "", false
		}
		if h.Addr().Is4() == caller.Addr().Is4() {
			target = h.Addr()
		}
	}
	if caller.Addr().IsUnspecified() {
		return servUaddr, true
	}
	best, ok := pickInterface(p.ifaces.get(), caller.Addr(), target)
	if !ok {
		return "", false
	}
	serv, ok := parseUaddr(nc.family, servUaddr)
	if !ok || serv.Addr().Is4() != best.Is4() {
		return "", false
	}
	return formatUaddr(netip.AddrPortFrom(best, serv.Port())), true
}

// pickInterface chooses the server address for addrmerge: an interface
// address equal to target wins; otherwise the first on target's network;
// otherwise the first up interface, preferring ordinary ones to loopback
// and point-to-point.
func pickInterface(ifs []IfAddr, caller, target netip.Addr) (netip.Addr, bool) {
	var best *IfAddr
	for i := range ifs {
		ifa := &ifs[i]
		a := ifa.Prefix.Addr()
		if !ifa.Up || a.Is4() != target.Is4() {
			continue
		}
		if a.Is6() && a.IsLinkLocalUnicast() && caller.IsLinkLocalUnicast() && target.IsLinkLocalUnicast() {
			if zoneIndex(caller) == ifa.Index {
				return a, true
			}
		} else if ifa.Prefix.Masked().Contains(target.WithZone("")) {
			if best == nil {
				best = ifa
			}
			if a == target.WithZone("") {
				return a, true
			}
		}
		if best == nil || (!ifa.Loopback && !ifa.PointToPoint && (best.Loopback || best.PointToPoint)) {
			best = ifa
		}
	}
	if best == nil {
		return netip.Addr{}, false
	}
	return best.Prefix.Addr(), true
}

func zoneIndex(a netip.Addr) int {
	if a.Zone() == "" {
		return 0
	}
	if ifc, err := net.InterfaceByName(a.Zone()); err == nil {
		return ifc.Index
	}
	return 0
}
