// Package rpcbind is portmapd's ONC RPC face: the portmapper's procedures
// of versions 2, 3 and 4 (RFC 1833) on the shared registry, with rpcbind's
// semantics, for package oncrpc to serve, and a client of them. It turns
// the peer of each call into the registry's caller (callerOf), and keeps
// GETSTAT's counters.
package rpcbind

import (
	"slices"
	"time"

	"github.com/portmapd/portmapd/audit"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// A Portmapper answers program 100000, versions 2, 3 and 4, from the
// shared registry with rpcbind's semantics. Its fields must be set before
// it serves.
type Portmapper struct {
	Registry *registry.Registry
	// Stats collects GETSTAT's counters; a Portmapper without one counts
	// into a private Stats.
	Stats *Stats
	// Netids are the transports served; GETADDR answers and statistics
	// only concern them. All known netids when empty.
	Netids []netid.ID
	// Insecure lets CALLIT reach the portmapper itself, like rpcbind -i.
	Insecure bool
	// Interfaces lists the host's addresses for address merging, given
	// the address the call arrived at; ifaddrs.Read on every call when
	// nil. An ifaddrs.Table is the Source to use: it is never staler
	// than the kernel.
	Interfaces ifaddrs.Source
	// Now is GETTIME's clock; time.Now when nil.
	Now func() time.Time
	// Audit receives a line for every SET and UNSET; none when nil.
	Audit *audit.Logger
}

// Register installs versions 2, 3 and 4 on mux.
func (p *Portmapper) Register(mux *oncrpc.ServeMux) {
	if p.Stats == nil {
		p.Stats = &Stats{}
	}
	const prog = xdr.PmapProg
	handle := func(vers, proc uint32, f oncrpc.HandlerFunc) {
		mux.Handle(prog, vers, proc, oncrpc.HandlerFunc(func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
			p.Stats.Call(vers, proc)
			f(w, c)
		}))
	}
	handle(xdr.PmapVers, xdr.PmapProcNull, p.null)
	handle(xdr.PmapVers, xdr.PmapProcSet, change(p, "set", xdr.PmapVers, (*xdr.Mapping).Decode, p.pmapSet, p.Stats.Set))
	handle(xdr.PmapVers, xdr.PmapProcUnset, change(p, "unset", xdr.PmapVers, (*xdr.Mapping).Decode, p.pmapUnset, p.Stats.Unset))
	handle(xdr.PmapVers, xdr.PmapProcGetport, p.pmapGetport)
	handle(xdr.PmapVers, xdr.PmapProcDump, p.pmapDump)
	handle(xdr.PmapVers, xdr.PmapProcCallit, p.remoteCall(xdr.PmapVers, false))
	for _, vers := range []uint32{xdr.RpcbVers, xdr.RpcbVers4} {
		handle(vers, xdr.RpcbProcNull, p.null)
		handle(vers, xdr.RpcbProcSet, change(p, "set", vers, (*xdr.RPCB).Decode, p.rpcbSet, p.Stats.Set))
		handle(vers, xdr.RpcbProcUnset, change(p, "unset", vers, (*xdr.RPCB).Decode, p.rpcbUnset, p.Stats.Unset))
		handle(vers, xdr.RpcbProcGetaddr, p.rpcbGetaddr(vers, false))
		handle(vers, xdr.RpcbProcDump, p.rpcbDump)
		handle(vers, xdr.RpcbProcCallit, p.remoteCall(vers, false))
		handle(vers, xdr.RpcbProcGettime, p.rpcbGettime)
		handle(vers, xdr.RpcbProcUaddr2taddr, p.rpcbUaddr2taddr)
		handle(vers, xdr.RpcbProcTaddr2uaddr, p.rpcbTaddr2uaddr)
	}
	handle(xdr.RpcbVers4, xdr.RpcbProcGetversaddr, p.rpcbGetaddr(xdr.RpcbVers4, true))
	handle(xdr.RpcbVers4, xdr.RpcbProcIndirect, p.remoteCall(xdr.RpcbVers4, true))
	handle(xdr.RpcbVers4, xdr.RpcbProcGetaddrlist, p.rpcbGetaddrlist)
	handle(xdr.RpcbVers4, xdr.RpcbProcGetstat, p.rpcbGetstat)
}

func (p *Portmapper) serves(id netid.ID) bool {
	if _, ok := transport(id); !ok {
		return false
	}
	return len(p.Netids) == 0 || slices.Contains(p.Netids, id)
}

// transport returns the netconfig entry of id when it is a transport
// rpcbind can serve: local, and each visible entry, as rpcbind's main sets
// them up (unix and rawip are neither). The match is exact, as
// getnetconfigent's: a registration on "TCP" has no transport.
func transport(id netid.ID) (netid.Netconfig, bool) {
	nc, ok := netid.Lookup(id)
	return nc, ok && (nc.Visible || id == netid.Local)
}

func (p *Portmapper) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Portmapper) null(w oncrpc.ReplyWriter, c *oncrpc.Call) { _ = oncrpc.Reply(w, c, nil) }

// isDatagram reports whether c arrived on a connectionless transport.
func isDatagram(c *oncrpc.Call) bool {
	return callNetid(c) == netid.UDP || callNetid(c) == netid.UDP6
}

// remoteCall answers CALLIT (v2, v3), BCAST (v4) and INDIRECT (v4) the way
// rpcbind does when it cannot forward: datagrams only, the blocklist
// enforced with AUTH_TOOWEAK, the call counted, and then silence, or for
// INDIRECT the error a forwarder would have met (PROG_UNAVAIL,
// PROG_MISMATCH, and SYSTEM_ERR for a call it would have forwarded).
// Silence keeps a spoofed datagram from reflecting off this host.
func (p *Portmapper) remoteCall(vers uint32, indirect bool) oncrpc.HandlerFunc {
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
		if !indirect {
			return
		}
		switch {
		case !found:
			_ = oncrpc.ReplyError(w, c, xdr.ProgUnavail)
		case e.Vers != a.Vers:
			low, high := p.Registry.VersionRange(a.Prog, callNetid(c))
			h := xdr.Accepted(c.XID, xdr.ProgMismatch)
			h.Mismatch = xdr.Mismatch{Low: low, High: high}
			_ = w.WriteReply(h, nil)
		default:
			if _, ok := p.mergeAddr(c, callNetid(c), e.Addr, ""); !ok {
				_ = oncrpc.ReplyError(w, c, xdr.ProgUnavail)
				return
			}
			_ = oncrpc.ReplyError(w, c, xdr.SystemErr)
		}
	}
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

// mayCallIndirectly is rpcbind's check_callit.
func (p *Portmapper) mayCallIndirectly(a xdr.CallArgs) bool {
	if a.Proc == 0 {
		return true
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
