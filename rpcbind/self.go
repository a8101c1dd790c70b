package rpcbind

import (
	"slices"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// An Endpoint is one transport the portmapper serves: its netid and the
// universal address it registers itself under (netid.WildcardUaddr for an
// IP transport bound to every address).
type Endpoint struct {
	Netid netid.ID
	Addr  string
}

// servedVersions are the portmapper versions this package answers, highest
// first.
func servedVersions() []uint32 { return []uint32{xdr.RpcbVers4, xdr.RpcbVers, xdr.PmapVers} }

// SelfEntries returns the portmapper's own registrations for the endpoints
// it serves, in rpcbind's order: by netid tcp6, udp6, tcp, udp, local, then
// by version from the highest. Version 2 is listed on tcp and udp only,
// since it cannot describe other transports.
func (p *Portmapper) SelfEntries(eps []Endpoint) []registry.Entry {
	eps = slices.Clone(eps)
	slices.SortStableFunc(eps, func(a, b Endpoint) int { return rank(a.Netid) - rank(b.Netid) })
	var out []registry.Entry
	for _, ep := range eps {
		for _, v := range servedVersions() {
			if v == xdr.PmapVers && ep.Netid != netid.TCP && ep.Netid != netid.UDP {
				continue
			}
			out = append(out, registry.Entry{Prog: xdr.PmapProg, Vers: v, Netid: ep.Netid, Addr: ep.Addr})
		}
	}
	return out
}

// rank orders the portmapper's own entries as rpcbind's list has them.
func rank(id netid.ID) int {
	switch id {
	case netid.TCP6:
		return 0
	case netid.UDP6:
		return 1
	case netid.TCP:
		return 2
	case netid.UDP:
		return 3
	case netid.Local:
		return 4
	}
	return 5
}
