package rpcbind

import (
	"errors"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// A Portmapper answers program 100000 from the shared registry with
// rpcbind's semantics.
type Portmapper struct {
	Registry *registry.Registry
}

// Register installs the portmapper's procedures on mux.
func (p *Portmapper) Register(mux *ServeMux) {
	const prog, vers = xdr.PmapProg, xdr.PmapVers
	mux.HandleFunc(prog, vers, xdr.PmapProcNull, p.null)
	mux.HandleFunc(prog, vers, xdr.PmapProcSet, p.pmapSet)
	mux.HandleFunc(prog, vers, xdr.PmapProcUnset, p.pmapUnset)
	mux.HandleFunc(prog, vers, xdr.PmapProcGetport, p.pmapGetport)
	mux.HandleFunc(prog, vers, xdr.PmapProcDump, p.pmapDump)
	mux.HandleFunc(prog, vers, xdr.PmapProcCallit, p.callit)
}

func (p *Portmapper) null(w ReplyWriter, c *Call) { _ = Reply(w, c, nil) }

// answerChange replies to SET or UNSET: the registry's verdict, or
// AUTH_TOOWEAK for a caller it does not accept changes from.
func answerChange(w ReplyWriter, c *Call, ok bool, err error) {
	switch {
	case errors.Is(err, registry.ErrNotLocal):
		_ = Deny(w, c, xdr.AuthTooWeak)
	case err != nil:
		_ = ReplyError(w, c, xdr.SystemErr)
	default:
		_ = ReplyBool(w, c, ok)
	}
}

func decodeMapping(c *Call) (registry.Mapping, bool) {
	var m xdr.Mapping
	if !c.DecodeArgs(m.Decode) {
		return registry.Mapping{}, false
	}
	return registry.Mapping(m), true
}

func (p *Portmapper) pmapSet(w ReplyWriter, c *Call) {
	m, ok := decodeMapping(c)
	if !ok {
		_ = ReplyError(w, c, xdr.GarbageArgs)
		return
	}
	done, err := p.Registry.SetMapping(c.Caller(), m)
	answerChange(w, c, done, err)
}

func (p *Portmapper) pmapUnset(w ReplyWriter, c *Call) {
	m, ok := decodeMapping(c)
	if !ok {
		_ = ReplyError(w, c, xdr.GarbageArgs)
		return
	}
	done, err := p.Registry.UnsetMapping(c.Caller(), m.Prog, m.Vers)
	answerChange(w, c, done, err)
}

func (p *Portmapper) pmapGetport(w ReplyWriter, c *Call) {
	m, ok := decodeMapping(c)
	if !ok {
		_ = ReplyError(w, c, xdr.GarbageArgs)
		return
	}
	_ = ReplyUint32(w, c, p.Registry.GetPort(m.Prog, m.Vers, m.Prot))
}

func (p *Portmapper) pmapDump(w ReplyWriter, c *Call) {
	_ = Reply(w, c, func(e *xdr.Encoder) {
		p.Registry.RangeMappings(func(m registry.Mapping) bool {
			e.Bool(true)
			xm := xdr.Mapping(m)
			xm.Encode(e)
			return true
		})
		e.Bool(false)
	})
}

// callit drops the call: remote calls are off, as in rpcbind built without
// --enable-rmtcalls, and an error reply would itself let a spoofed
// datagram reflect off this host.
func (p *Portmapper) callit(w ReplyWriter, c *Call) {}
