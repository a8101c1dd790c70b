package rpcbind

import (
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

func decodeMapping(c *oncrpc.Call) (xdr.Mapping, bool) {
	var m xdr.Mapping
	return m, c.DecodeArgs(m.Decode)
}

// pmapSet is v2 SET's change: the mapping as given.
func (p *Portmapper) pmapSet(c registry.Caller, m xdr.Mapping) (bool, error) {
	return p.Registry.SetMapping(c, m)
}

// pmapUnset is v2 UNSET's change: every mapping of the program and
// version, whatever its protocol and port.
func (p *Portmapper) pmapUnset(c registry.Caller, m xdr.Mapping) (bool, error) {
	return p.Registry.UnsetMapping(c, m.Prog, m.Vers)
}

func (p *Portmapper) pmapGetport(w oncrpc.ReplyWriter, c *oncrpc.Call) {
	m, ok := decodeMapping(c)
	if !ok {
		_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
		return
	}
	port := p.Registry.GetPort(m.Prog, m.Vers, m.Prot)
	_ = oncrpc.ReplyUint32(w, c, port)
	if id, ok := netid.FromProto(m.Prot); ok && p.serves(id) {
		answer := ""
		if port != 0 {
			answer = "found"
		}
		p.Stats.Addr(xdr.PmapVers, m.Prog, m.Vers, id, answer)
	}
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
