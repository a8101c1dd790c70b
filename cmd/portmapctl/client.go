package main

import (
	"context"
	"fmt"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/rpcbind"
)

// netidNetwork checks a netid that ping can use.
func netidNetwork(name string) (string, error) {
	if id := netid.ID(name); id.IsIP() || id == netid.Local {
		return name, nil
	}
	if !isKnownNetid(name) {
		return "", &notFoundError{name}
	}
	return "", &argError{fmt.Sprintf("netid %s not supported (use udp, tcp, udp6, tcp6 or local)", name)}
}

// A notFoundError is a netid that /etc/netconfig does not have, reported
// as rpcinfo reports it.
type notFoundError struct{ netid string }

func (e *notFoundError) Error() string { return "Could not find " + e.netid }

// netidProto is the v2 protocol of a netid, which the callers have
// checked is tcp or udp.
func netidProto(name string) uint32 {
	if name == string(netid.TCP) {
		return netid.ProtoTCP
	}
	return netid.ProtoUDP
}

// dial connects to address over network, within --timeout.
func (g *globals) dial(ctx context.Context, network, address string) (*rpcbind.Client, error) {
	ctx, cancel := g.callContext(ctx)
	defer cancel()
	return rpcbind.Dial(ctx, network, address)
}

// dialPortmapper connects to the portmapper on host over netid.
func (g *globals) dialPortmapper(ctx context.Context, host, netid string) (*rpcbind.Client, error) {
	network, err := netidNetwork(netid)
	if err != nil {
		return nil, err
	}
	return g.dial(ctx, network, g.portmapper(host))
}

// getport asks the portmapper pm for prog, vers over netid, as
// rpcb_getaddr does for a v2-only server; port 0 is reported as
// "Program not registered". This is where the v4 GETADDR, v3 GETADDR, v2
// GETPORT fallback of rpcb_getaddr goes when portmapd speaks 3 and 4.
func (g *globals) getport(ctx context.Context, pm *rpcbind.Client, prog, vers uint32, netid string) (uint32, rpcStatus) {
	ctx, cancel := g.callContext(ctx)
	defer cancel()
	port, err := pm.GetPort(ctx, prog, vers, netidProto(netid))
	if err != nil {
		return 0, lookupStatus(err)
	}
	if port == 0 {
		return 0, rpcStatus{Stat: rpcProgNotRegistered}
	}
	return port, rpcStatus{}
}

// findService is rpcb_getaddr followed by the creation of a client: it
// asks host's portmapper (over netid; the local socket for local) where
// prog, vers is served over netid and connects to it there. A failure is
// reported as rpcinfo reports a client it cannot create.
func (g *globals) findService(ctx context.Context, host string, prog, vers uint32, netid string) (*rpcbind.Client, rpcStatus) {
	pm, used, err := g.dialNetid(ctx, host, netid)
	if err != nil {
		return nil, statusOf(err)
	}
	ua, st := g.rpcbGetaddr(ctx, pm, prog, vers, used)
	_ = pm.Close()
	if st.Stat != rpcSuccess {
		return nil, st
	}
	return g.dialUaddr(ctx, used, ua)
}

// null makes one NULL call within --timeout.
func (g *globals) null(ctx context.Context, c *rpcbind.Client, prog, vers uint32) error {
	ctx, cancel := g.callContext(ctx)
	defer cancel()
	return c.Null(ctx, prog, vers)
}
