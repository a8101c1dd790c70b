package rpcbind

import (
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/xdr"
)

func (p *Portmapper) pmapGetport(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	var m xdr.Mapping
	if !c.DecodeArgs(m.Decode) {
		_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
		return
	}
	port := p.Registry.GetPort(m.Prog, m.Vers, m.Prot)
	// Counted before the reply, as in rpcbGetaddr.
	if id, ok := netid.FromProto(m.Prot); ok && p.serves(id) {
		answer := ""
		if port != 0 {
			answer = "found"
		}
		p.Stats.Addr(xdr.PmapVers, m.Prog, m.Vers, id, answer)
	}
	_ = oncrpc.ReplyUint32(w, c, port)
}

func (p *Portmapper) pmapDump(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	// A list too long for a datagram gets no answer, as from rpcbind.
	_ = oncrpc.Reply(w, c, func(e *xdr.Encoder) {
		for m := range p.Registry.Mappings() {
			e.Bool(true)
			m.Encode(e)
		}
		e.Bool(false)
	})
}
