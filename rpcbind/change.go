package rpcbind

import (
	"errors"
	"log/slog"

	"github.com/portmapd/portmapd/audit"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// change returns the handler of a SET or UNSET (op) of version vers,
// whose arguments decode reads: it asks the registry for the change with
// apply, answers the registry's verdict, or AUTH_TOOWEAK for a caller it
// does not accept changes from, counts a change made with count, and
// writes the audit line.
func change[A any](p *Portmapper, op string, vers uint32, decode func(*A, *xdr.Decoder), apply func(registry.Caller, A) (bool, error), count func(vers uint32)) oncrpc.HandlerFunc {
	return func(w oncrpc.ReplyWriter, c *oncrpc.Call) {
		var args A
		caller := callerOf(c)
		if !c.DecodeArgs(func(d *xdr.Decoder) { decode(&args, d) }) {
			_ = oncrpc.ReplyError(w, c, xdr.GarbageArgs)
			p.Audit.Change(caller, op, auditVersion(vers, nil), audit.Failed, errGarbageArgs)
			return
		}
		done, err := apply(caller, args)
		result := audit.Unchanged
		switch {
		case errors.Is(err, registry.ErrNotLocal):
			_ = oncrpc.Deny(w, c, xdr.AuthTooWeak)
			result = audit.Refused
		case errors.Is(err, registry.ErrRefused):
			// A netid or address the registry will not hold, or a
			// cap: FALSE, as rpcbind answers a SET it refuses.
			_ = oncrpc.ReplyBool(w, c, false)
			result = audit.Refused
		case err != nil:
			_ = oncrpc.ReplyError(w, c, xdr.SystemErr)
			result = audit.Failed
		default:
			_ = oncrpc.ReplyBool(w, c, done)
		}
		if done {
			count(vers)
			result = audit.Done
		}
		p.Audit.Change(caller, op, auditVersion(vers, auditArgs(args)), result, err)
	}
}

// errGarbageArgs is the audit trail's reason for arguments that do not
// decode.
var errGarbageArgs = errors.New("arguments do not decode")

// auditVersion prepends the protocol version to an audit line's
// attributes.
func auditVersion(vers uint32, attrs []slog.Attr) []slog.Attr {
	return append([]slog.Attr{slog.Uint64("vers", uint64(vers))}, attrs...)
}

// auditArgs names what a SET or UNSET asked for, for the audit trail.
func auditArgs(args any) []slog.Attr {
	switch a := args.(type) {
	case xdr.Mapping:
		return []slog.Attr{slog.Uint64("prog", uint64(a.Prog)), slog.Uint64("prog_vers", uint64(a.Vers)),
			slog.Uint64("prot", uint64(a.Prot)), slog.Uint64("port", uint64(a.Port))}
	case xdr.RPCB:
		return []slog.Attr{slog.Uint64("prog", uint64(a.Prog)), slog.Uint64("prog_vers", uint64(a.Vers)),
			slog.String("netid", a.Netid), slog.String("addr", a.Addr)}
	}
	return nil
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

// rpcbSet is v3 and v4 SET's change: the registration on r's netid,
// owned as the registry decides, whatever r.Owner claims.
func (p *Portmapper) rpcbSet(c registry.Caller, r xdr.RPCB) (bool, error) {
	return p.Registry.Set(c, registry.Entry{Prog: r.Prog, Vers: r.Vers, Netid: netid.ID(r.Netid), Addr: r.Addr})
}

// rpcbUnset is v3 and v4 UNSET's change: the registration on r's netid,
// or on every netid when it is empty.
func (p *Portmapper) rpcbUnset(c registry.Caller, r xdr.RPCB) (bool, error) {
	return p.Registry.Unset(c, r.Prog, r.Vers, netid.ID(r.Netid))
}
