package rpcbind

import (
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
)

// callNetid is the netid c arrived on: the name the daemon serves the
// socket under, which the server gives each call's peer as its transport.
func callNetid(c *oncrpc.Call) netid.ID { return netid.ID(c.Peer.Transport) }

// callerOf turns the sender of c into the caller the registry judges: a
// local caller, with the kernel's credentials when the socket gave them,
// for the local transport; a network caller at its address otherwise.
func callerOf(c *oncrpc.Call) registry.Caller {
	if callNetid(c) != netid.Local {
		return registry.Caller{Transport: registry.Network, Addr: c.Peer.Addr}
	}
	caller := registry.Caller{Transport: registry.Local}
	if c.Peer.Cred != nil {
		// registry.Cred is peer.Cred's twin: the conversion fails to
		// compile should either change.
		cred := registry.Cred(*c.Peer.Cred)
		caller.Cred = &cred
	}
	return caller
}
