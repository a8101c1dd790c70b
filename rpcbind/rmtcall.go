package rpcbind

import (
	"net/netip"
	"slices"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/xdr"
)

// remoteCall answers CALLIT (v2, v3), BCAST (v4) and INDIRECT (v4) as
// rpcbind does: datagrams only (over a stream nothing is ever answered),
// the blocklist enforced with AUTH_TOOWEAK, the call counted, then for an
// unregistered program or version silence, or for INDIRECT PROG_UNAVAIL
// or PROG_MISMATCH. A call that passes is forwarded by the Forwarder;
// without one, as from rpcbind built without remote calls, CALLIT and
// BCAST get silence and INDIRECT SYSTEM_ERR. Silence keeps a spoofed
// datagram from reflecting off this host.
func (p *Portmapper) remoteCall(vers uint32, indirect bool) oncrpc.HandlerFunc {
	proc := uint32(xdr.RpcbProcCallit)
	if indirect {
		proc = xdr.RpcbProcIndirect
	}
	return func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		if !isDatagram(c) {
			return
		}
		var a xdr.CallArgs
		if !c.DecodeArgs(a.Decode) {
			if indirect {
				_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
			}
			return
		}
		if !p.mayCallIndirectly(a) {
			_ = oncrpc.Deny(w, c, xdr.AuthTooWeak)
			return
		}
		e, found := p.Registry.Lookup(a.Prog, a.Vers, callNetid(c))
		p.Stats.RmtCall(vers, indirect, a.Prog, a.Vers, a.Proc, callNetid(c), found && e.Vers == a.Vers)
		fail := func(stat xdr.AcceptStat) {
			if indirect {
				_ = oncrpc.ReplyError(w, c, stat)
			}
		}
		switch {
		case !found:
			fail(xdr.ProgUnavail)
			return
		case e.Vers != a.Vers:
			if indirect {
				low, high := p.Registry.VersionRange(a.Prog, callNetid(c))
				h := xdr.Accepted(c.XID, xdr.ProgMismatch)
				h.Mismatch = xdr.Mismatch{Low: low, High: high}
				_ = w.WriteReply(h, nil)
			}
			return
		}
		uaddr, ok := p.mergeAddr(c, callNetid(c), e.Addr, "")
		if !ok {
			fail(xdr.ProgUnavail)
			return
		}
		if vers == xdr.PmapVers {
			// Version 2's answer carries a port, which rpcbind takes
			// from an IPv4 address only: over udp6 it never answers.
			if ap, ok := netid.ParseUaddr(uaddr); !ok || !ap.Addr().Is4() {
				return
			}
		}
		if p.Forwarder == nil {
			fail(xdr.SystemErr)
			return
		}
		target, ok := p.forwardTarget(callNetid(c), e.Addr)
		if !ok {
			p.Forwarder.dropped.Note("service registered at an address of another host")
			fail(xdr.SystemErr)
			return
		}
		p.Forwarder.forward(w, forwardRequest{c: c, proc: proc, vers: vers, args: a, target: target, uaddr: uaddr})
	}
}

// forwardTarget is where a remote call to a service registered at uaddr
// on the netid id goes: the loopback address of its family, at its port,
// for a service registered on the wildcard or the loopback address (the
// address rpcbind forwards to), and the registered address itself when it
// is another address of this host. A service registered at an address of
// another host, or at a link-local one, is never called on anyone's
// behalf: the portmapper would relay its callers to another host.
func (p *Portmapper) forwardTarget(id netid.ID, uaddr string) (netip.AddrPort, bool) {
	nc, ok := transport(id)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap, ok := netid.ParseUaddrLenient(nc.Family, uaddr)
	if !ok || ap.Port() == 0 {
		return netip.AddrPort{}, false
	}
	a := ap.Addr()
	switch {
	case a.Is4In6(), a.IsLinkLocalUnicast(), a.IsMulticast():
		return netip.AddrPort{}, false
	case a.IsUnspecified() && a.Is4():
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ap.Port()), true
	case a.IsUnspecified():
		return netip.AddrPortFrom(netip.IPv6Loopback(), ap.Port()), true
	case a.IsLoopback():
		return ap, true
	}
	ifs, err := p.interfaces(netip.Addr{})
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, ifa := range ifs {
		if ifa.Prefix.Addr() == a {
			return ap, true
		}
	}
	return netip.AddrPort{}, false
}

// Programs and procedures that rpcbind never calls on a requester's behalf:
// an indirect call would come from the portmapper's own privileged address.
const (
	progMount    = 100005
	progYPBind   = 100007
	progYPPasswd = 100009
	progNFS      = 100003
	progRquota   = 100011
	progYP       = 100004
)

// mayCallIndirectly is rpcbind's check_callit, with the programs the
// Forwarder denies (ForwardConfig.Deny) added to its list.
func (p *Portmapper) mayCallIndirectly(a xdr.CallArgs) bool {
	if a.Proc == 0 {
		return true
	}
	if p.Forwarder.denies(a.Prog) {
		return false
	}
	switch a.Prog {
	case xdr.PmapProg:
		return p.Insecure
	case progMount:
		return a.Proc != 1 && a.Proc != 3 // MNT, UMNT
	case progYPBind:
		return a.Proc != 2 // SETDOM
	case progYPPasswd, progNFS, progRquota:
		return false
	case progYP:
		switch a.Proc {
		case 3, 4, 5, 8: // MATCH, FIRST, NEXT, ALL
			return false
		}
	}
	return true
}

// denies says whether prog is on the list of programs f never calls; a
// nil Forwarder, which calls nothing, has no list.
func (f *Forwarder) denies(prog uint32) bool {
	return f != nil && slices.Contains(f.deny, prog)
}
