package rpcbind

import (
	"net/netip"
	"sync"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/oncrpc"
)

// mergeAddr rewrites a registered universal address into one the caller
// can reach, as rpcbind's mergeaddr and addrmerge do: the address of an
// interface near the address the caller used, with the registered port.
// It reports false where rpcbind's gives NULL: the netid is not served,
// the hint or registered address does not parse, the interfaces cannot be
// listed, or none fits. A local caller gets the registered address as is.
//
// The address the caller used is, first, the one the call arrived at
// (the accepted connection's local address, or the datagram's destination
// from IP_PKTINFO), which the kernel has just shown to be this host's;
// then r_addr, the hint the caller sends of the address it used; then the
// caller's own address, for an interface on its network. FreeBSD's
// rpcbind takes a datagram's destination first in the same way; Linux's
// (1.2.6) takes r_addr and then the caller. The answers differ only for a
// caller whose r_addr names another address than the one it reached,
// which libtirpc and rpcinfo never send: they send the server address
// they used.
func (p *Portmapper) mergeAddr(c *oncrpc.Call, id netid.ID, servUaddr, hint string) (string, bool) {
	if !p.serves(id) {
		return "", false
	}
	nc, _ := transport(id)
	if callNetid(c) == netid.Local || nc.Family == netid.FamilyLocal {
		return servUaddr, true
	}
	caller := c.Peer.Addr.Addr()
	target := caller
	if hint != "" {
		h, ok := netid.ParseUaddrLenient(nc.Family, hint)
		if !ok {
			return "", false
		}
		if h.Addr().Is4() == caller.Is4() {
			target = h.Addr()
		}
	}
	if caller.IsUnspecified() {
		return servUaddr, true
	}
	var dst netip.Addr
	if l := c.Peer.Local.Addr(); l.IsValid() && !l.IsUnspecified() && l.Is4() == caller.Is4() {
		dst = l
		// A call to a multicast group (an IPv6 broadcast remote call)
		// says nothing of the interface it came through; the caller's
		// address does, a link-local one by its zone.
		if !l.IsMulticast() {
			target = l
		}
	}
	ifs, err := p.interfaces(dst)
	if err != nil {
		return "", false
	}
	best, ok := pickInterface(ifs, caller, target)
	if !ok {
		return "", false
	}
	serv, ok := netid.ParseUaddrLenient(nc.Family, servUaddr)
	if !ok || serv.Addr().Is4() != best.Is4() {
		return "", false
	}
	return p.uaddrs.format(netip.AddrPortFrom(best, serv.Port())), true
}

// uaddrCacheSize bounds each map of a uaddrCache; a full map is emptied.
// A host answers from a few addresses, for a few ports each.
const uaddrCacheSize = 1024

// A uaddrCache keeps the strings GETADDR reads and answers, so that a
// lookup allocates none: the hints callers send (each caller sends the
// address it called, so there are few) and the merged addresses formatted
// (an interface address and a registered port). Its zero value is ready
// to use, and it is safe for concurrent use.
type uaddrCache struct {
	mu        sync.Mutex
	hints     map[string]string
	formatted map[netip.AddrPort]string
}

// hint returns b as a string, the same one for the same bytes.
func (u *uaddrCache) hint(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, ok := u.hints[string(b)]; ok {
		return s
	}
	if u.hints == nil || len(u.hints) >= uaddrCacheSize {
		u.hints = make(map[string]string)
	}
	s := string(b)
	u.hints[s] = s
	return s
}

// format returns netid.FormatUaddr(ap), made once.
func (u *uaddrCache) format(ap netip.AddrPort) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if s, ok := u.formatted[ap]; ok {
		return s
	}
	if u.formatted == nil || len(u.formatted) >= uaddrCacheSize {
		u.formatted = make(map[netip.AddrPort]string)
	}
	s := netid.FormatUaddr(ap)
	u.formatted[ap] = s
	return s
}

func (p *Portmapper) interfaces(dst netip.Addr) ([]ifaddrs.Addr, error) {
	if p.Interfaces != nil {
		return p.Interfaces(dst)
	}
	return ifaddrs.Read()
}

// pickInterface chooses the server address for addrmerge: an interface
// address equal to target wins; otherwise the first on target's network;
// otherwise the first up interface, preferring ordinary ones to loopback
// and point-to-point. Link-local IPv6 addresses are matched by the
// caller's link instead, when caller and target are link-local too.
func pickInterface(ifs []ifaddrs.Addr, caller, target netip.Addr) (netip.Addr, bool) {
	var best *ifaddrs.Addr
	for i := range ifs {
		ifa := &ifs[i]
		a := ifa.Prefix.Addr()
		if !ifa.Up || a.Is4() != target.Is4() {
			continue
		}
		if a.Is6() && a.IsLinkLocalUnicast() && caller.IsLinkLocalUnicast() && target.IsLinkLocalUnicast() {
			if ifa.OnLink(caller.Zone()) {
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
