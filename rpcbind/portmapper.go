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
	// Forwarder, when set, forwards remote calls (CALLIT, BCAST and
	// INDIRECT), as rpcbind built with remote calls does; without one
	// they are answered as by rpcbind built without (see remoteCall).
	Forwarder *Forwarder
	// Interfaces lists the host's addresses for address merging, given
	// the address the call arrived at; ifaddrs.Read on every call when
	// nil. An ifaddrs.Table is the Source to use: it is never staler
	// than the kernel.
	Interfaces ifaddrs.Source
	// Now is GETTIME's clock; time.Now when nil.
	Now func() time.Time
	// Audit receives a line for every SET and UNSET; none when nil.
	Audit *audit.Logger

	// uaddrs keeps the strings GETADDR reads and answers (merge.go).
	uaddrs uaddrCache
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
