package rpcbind

import (
	"errors"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/xdr"
)

func decodeRPCB(c *oncrpc.Call) (xdr.RPCB, bool) {
	var r xdr.RPCB
	return r, c.DecodeArgs(r.Decode)
}

// rpcbGetaddr answers GETADDR (any version of the program may answer) and
// GETVERSADDR (exactly the version asked for). Both look on the netid the
// call arrived on, whatever r_netid says, and merge the address into one
// the caller can reach, with r_addr as a hint.
func (p *Portmapper) rpcbGetaddr(statVers uint32, exact bool) oncrpc.HandlerFunc {
	return func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		// Only the program, version and r_addr are read: the netid
		// is the call's. r_addr is read in place, and its string
		// kept (uaddrCache), so that a lookup allocates nothing.
		var prog, vers uint32
		var hint []byte
		if !c.DecodeArgs(func(d *xdr.Decoder) {
			prog, vers = d.Uint32(), d.Uint32()
			d.OpaqueView("r_netid", xdr.MaxRPCBString)
			hint = d.OpaqueView("r_addr", xdr.MaxRPCBString)
			d.OpaqueView("r_owner", xdr.MaxRPCBString)
		}) {
			_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
			return
		}
		answer := ""
		if e, found := p.Registry.Lookup(prog, vers, callNetid(c)); found && (!exact || e.Vers == vers) {
			answer = e.Addr
			if merged, ok := p.mergeAddr(c, callNetid(c), e.Addr, p.uaddrs.hint(hint)); ok {
				answer = merged
			}
		}
		// Counted before the reply, as rpcbind counts before its
		// dispatcher answers: a client that asks for GETSTAT once it has
		// its answer sees this lookup.
		if p.serves(callNetid(c)) {
			p.Stats.Addr(statVers, prog, vers, callNetid(c), answer)
		}
		_ = oncrpc.ReplyString(w, c, answer)
	}
}

func (p *Portmapper) rpcbDump(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	err := oncrpc.Reply(w, c, func(e *xdr.Encoder) {
		for en := range p.Registry.All() {
			e.Bool(true)
			r := xdr.RPCB{Prog: en.Prog, Vers: en.Vers, Netid: string(en.Netid), Addr: en.Addr, Owner: en.Owner}
			r.Encode(e)
		}
		e.Bool(false)
	})
	if errors.Is(err, oncrpc.ErrReplyTooLarge) {
		_ = oncrpc.ReplyError(w, c, xdr.SystemErr)
	}
}

func (p *Portmapper) rpcbGettime(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	_ = oncrpc.ReplyUint32(w, c, uint32(p.now().Unix()))
}

// rpcbUaddr2taddr converts with the family of the netid the call arrived
// on; failure is an empty netbuf.
func (p *Portmapper) rpcbUaddr2taddr(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	var uaddr string
	if !c.DecodeArgs(func(d *xdr.Decoder) { uaddr = d.String("uaddr", xdr.MaxRPCBString) }) {
		_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
		return
	}
	var nb xdr.Netbuf
	if nc, ok := transport(callNetid(c)); ok {
		if sa, ok := netid.Uaddr2Taddr(nc.Family, uaddr); ok {
			nb = xdr.Netbuf{MaxLen: nc.Family.SockaddrLen(), Buf: sa}
		}
	}
	_ = oncrpc.Reply(w, c, nb.Encode)
}

// rpcbTaddr2uaddr converts with the family of the netid the call arrived
// on; failure is an empty string.
func (p *Portmapper) rpcbTaddr2uaddr(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	var nb xdr.Netbuf
	if !c.DecodeArgs(nb.Decode) {
		_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
		return
	}
	uaddr := ""
	if nc, ok := transport(callNetid(c)); ok {
		if u, ok := netid.Taddr2Uaddr(nc.Family, nb.Buf); ok {
			uaddr = u
		}
	}
	_ = oncrpc.Reply(w, c, func(e *xdr.Encoder) { e.String(uaddr) })
}

// rpcbGetaddrlist answers every registration of exactly the program and
// version whose transport is of the caller's protocol family, merged.
func (p *Portmapper) rpcbGetaddrlist(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	r, ok := decodeRPCB(c)
	if !ok {
		_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
		return
	}
	arrival, ok := transport(callNetid(c))
	if !ok {
		_ = oncrpc.ReplyError(w, c, xdr.SystemErr)
		return
	}
	var list []xdr.RPCBEntry
	failed := false
	last := ""
	for en := range p.Registry.Versions(r.Prog, r.Vers) {
		nc, ok := transport(en.Netid)
		if !ok || !p.serves(en.Netid) {
			failed = true // rpcbind abandons the whole list
			break
		}
		if nc.ProtoFmly != arrival.ProtoFmly {
			continue
		}
		merged, ok := p.mergeAddr(c, en.Netid, en.Addr, r.Addr)
		if !ok {
			continue
		}
		last = merged
		list = append(list, xdr.RPCBEntry{MAddr: merged, Netid: string(nc.ID), Semantics: nc.Semantics, ProtoFmly: nc.ProtoFmly, Proto: nc.Proto})
	}
	if failed {
		// rpcbind's getaddrlist returns no result for a list holding a
		// netid it does not serve, and so sends no reply at all.
		return
	}
	if p.serves(callNetid(c)) {
		p.Stats.Addr(xdr.RpcbVers4, r.Prog, r.Vers, callNetid(c), last)
	}
	err := oncrpc.Reply(w, c, func(e *xdr.Encoder) { xdr.EncodeList(e, list, (*xdr.RPCBEntry).Encode) })
	if errors.Is(err, oncrpc.ErrReplyTooLarge) {
		_ = oncrpc.ReplyError(w, c, xdr.SystemErr)
	}
}

func (p *Portmapper) rpcbGetstat(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	snap := p.Stats.Snapshot()
	if isDatagram(c) && !c.Peer.Addr.Addr().IsLoopback() {
		// The per-program lists grow with every program anyone looked
		// up, to kilobytes that a spoofed 40-byte datagram would reflect
		// at its victim; over UDP only this host sees them (over TCP,
		// which cannot be spoofed, everyone does, as from rpcbind).
		for i := range snap {
			snap[i].AddrInfo, snap[i].RmtInfo = nil, nil
		}
	}
	err := oncrpc.Reply(w, c, func(e *xdr.Encoder) {
		for i := range snap {
			snap[i].Encode(e)
		}
	})
	if errors.Is(err, oncrpc.ErrReplyTooLarge) {
		_ = oncrpc.ReplyError(w, c, xdr.SystemErr)
	}
}
