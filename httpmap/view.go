package httpmap

import (
	"strconv"
	"strings"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// A view is what a change's answer shows (the named services it touched)
// and what every answer shows after its instances: the daemon's recent
// removals. Every view is made by viewFor, and the listing's rows pass the
// same rule (reachable, in rowWalk), so that what a viewer may see is
// decided alike whatever the format or route.
type view struct {
	named    []Instance
	removals []Removal
	removed  KindCounts
}

// rpcRow is one RPC entry with the instances (names) it appears as.
type rpcRow struct {
	ins []Instance
}

func (row *rpcRow) add(in Instance) { row.ins = append(row.ins, in) }

// viewFor completes a response's instances with the recent removals and
// applies the rule of what its requester may see: a viewer on another host
// gets remoteView.
func (s *Server) viewFor(q *request, named []Instance) view {
	v := view{named: named}
	events, removed := s.reg.RecentEvents()
	v.removed = KindCounts(removed)
	v.removals = make([]Removal, len(events))
	for i, ev := range events {
		v.removals[i] = Removal(ev)
	}
	if s.external(q.sender, q.r) {
		return remoteView(v)
	}
	return v
}

// remoteView is the rule for viewers on other hosts: they see the services
// they could reach, TCP and UDP ports, and nothing that only means
// something on this host. AF_UNIX registrations, RPC entries on the local
// transport or on a netid that is not IP, and RPC entries whose address is
// not a universal address of their netid are left out whole, with their
// paths, pids and owners; so are removals of any such registration.
// What remains is shown as it is to local viewers. The removal counts are
// totals and name nothing, so they stay.
func remoteView(v view) view {
	out := view{removed: v.removed}
	for _, in := range v.named {
		if reachable(in) {
			out.named = append(out.named, in)
		}
	}
	for _, ev := range v.removals {
		if in, ok := removedInstance(ev); ok && reachable(in) {
			out.removals = append(out.removals, ev)
		}
	}
	return out
}

// reachable reports whether another host could reach in: a TCP or UDP
// port.
func reachable(in Instance) bool {
	if in.Protocol != netid.TCP && in.Protocol != netid.UDP {
		return false
	}
	port, err := strconv.ParseUint(in.Port, 10, 16)
	return err == nil && port != 0
}

// removedInstance reads back, from the registry's description of a removal
// ("NAME NETWORK ENDPOINT pid N" or "prog P vers V NETID ADDR [pid N]"),
// the protocol and port of the registration it removed, as the listing
// would have shown them. ok is false for text of any other form, which
// remoteView then hides: a netid or address with a space in it cannot
// pass for a port.
func removedInstance(ev Removal) (in Instance, ok bool) {
	f := strings.Split(ev.What, " ")
	switch ev.Kind {
	case "named":
		if len(f) != 5 || f[3] != "pid" {
			return Instance{}, false
		}
		return Instance{Protocol: netid.ID(f[1]), Port: f[2]}, true
	case "rpc":
		if len(f) != 6 && (len(f) != 8 || f[6] != "pid") || f[0] != "prog" || f[2] != "vers" {
			return Instance{}, false
		}
		return rpcInstances(registry.Entry{Netid: netid.ID(f[4]), Addr: f[5]}, nil)[0], true
	}
	return Instance{}, false
}
