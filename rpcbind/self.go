package rpcbind

import (
	"slices"
	"strconv"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// An Endpoint is one transport the portmapper serves: its netid and the
// universal address it registers itself under.
type Endpoint struct {
	Netid string
	Addr  string
}

// WildcardUaddr returns the universal address of port on every address of
// an IP netid's family, as rpcbind registers itself: 0.0.0.0.0.111 or
// ::.0.111.
func WildcardUaddr(netid string, port uint16) string {
	host := "0.0.0.0"
	if netid == registry.NetidTCP6 || netid == registry.NetidUDP6 {
		host = "::"
	}
	return host + "." + strconv.Itoa(int(port>>8)) + "." + strconv.Itoa(int(port&0xff))
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
			if v == xdr.PmapVers && ep.Netid != registry.NetidTCP && ep.Netid != registry.NetidUDP {
				continue
			}
			out = append(out, registry.Entry{Prog: xdr.PmapProg, Vers: v, Netid: ep.Netid, Addr: ep.Addr})
		}
	}
	return out
}

// rank orders the portmapper's own entries as rpcbind's list has them.
func rank(netid string) int {
	switch netid {
	case registry.NetidTCP6:
		return 0
	case registry.NetidUDP6:
		return 1
	case registry.NetidTCP:
		return 2
	case registry.NetidUDP:
		return 3
	case registry.NetidLocal:
		return 4
	}
	return 5
}
