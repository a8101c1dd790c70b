package main

// Reaching the portmapper over versions 3 and 4 as rpcinfo and libtirpc
// do: the local socket, a host over a netid or over the first transport
// that works, and rpcb_getaddr's lookup.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// isKnownNetid reports whether Linux's /etc/netconfig has the netid
// name: what getnetconfigent finds.
func isKnownNetid(name string) bool {
	_, ok := netid.Lookup(netid.ID(name))
	return ok
}

// ipNetwork is the Go network of an IP netid, which Go spells the same,
// or "".
func ipNetwork(name string) string {
	if netid.ID(name).IsIP() {
		return name
	}
	return ""
}

// dialLocal connects to the portmapper's local socket (--socket, the
// abstract socket of that name first), or to --server when it is set.
func (g *globals) dialLocal(ctx context.Context) (*rpcbind.Client, string, error) {
	if g.server != "" {
		c, err := g.dial(ctx, "tcp", g.server)
		return c, string(netid.TCP), err
	}
	ctx, cancel := g.callContext(ctx)
	defer cancel()
	c, err := rpcbind.DialLocal(ctx, g.socket)
	return c, string(netid.Local), err
}

// dialLocalRpcb is libtirpc's local_rpcb, which rpcb_set and rpcb_unset
// use: the local socket, else TCP to the loopback portmapper.
func (g *globals) dialLocalRpcb(ctx context.Context) (*rpcbind.Client, error) {
	c, _, err := g.dialLocal(ctx)
	if err == nil || g.server != "" {
		return c, err
	}
	if e := interrupted(ctx); e != nil {
		return nil, e
	}
	return g.dial(ctx, "tcp", g.portmapper("localhost"))
}

// dialNetid connects to host's portmapper over netid (udp, tcp, udp6,
// tcp6; local ignores host), and returns the netid actually used.
func (g *globals) dialNetid(ctx context.Context, host, name string) (*rpcbind.Client, string, error) {
	if name == string(netid.Local) {
		return g.dialLocal(ctx)
	}
	network := ipNetwork(name)
	if network == "" {
		return nil, "", fmt.Errorf("netid %s not supported", name)
	}
	c, err := g.dial(ctx, network, g.portmapper(host))
	if err != nil {
		return nil, "", err
	}
	return c, clientNetid(c, name), nil
}

// clientNetid is the netid of a client connected over the IP netid name:
// its protocol, on the family of the address it reached.
func clientNetid(c *rpcbind.Client, name string) string {
	nc, _ := netid.Lookup(netid.ID(name))
	ap, ok := addrPort(c.RemoteAddr())
	id, _ := netid.IP(nc.Proto, ok && !ap.Addr().Unmap().Is4())
	return string(id)
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort(), true
	case *net.UDPAddr:
		return a.AddrPort(), true
	}
	return netip.AddrPort{}, false
}

// dialRpcbind is rpcinfo's clnt_rpcbind_create and getclnthandle: with
// -T, host's portmapper over that netid; without, over TCP and, when TCP
// cannot connect, over UDP (which always "connects"). A failure is
// reported with rpcinfo's "can't contact rpcbind" message.
func (g *globals) dialRpcbind(ctx context.Context, host, name string) (*rpcbind.Client, string, rpcStatus) {
	if name != "" {
		c, used, err := g.dialNetid(ctx, host, name)
		if err != nil {
			return nil, "", statusOf(err)
		}
		return c, used, rpcStatus{}
	}
	c, used, err := g.dialNetid(ctx, host, string(netid.TCP))
	if err == nil {
		return c, used, rpcStatus{}
	}
	if e := interrupted(ctx); e != nil {
		return nil, "", statusOf(e)
	}
	c, used, err = g.dialNetid(ctx, host, string(netid.UDP))
	if err != nil {
		return nil, "", statusOf(err)
	}
	return c, used, rpcStatus{}
}

// serverUaddr is the universal address of the portmapper a client
// reached: what libtirpc sends as r_addr so that the portmapper can answer
// with an address the caller can use.
func serverUaddr(c *rpcbind.Client) string {
	ap, ok := addrPort(c.RemoteAddr())
	if !ok {
		return ""
	}
	return formatUaddr(ap)
}

// formatUaddr is taddr2uaddr for IP, of an IPv4 address in its IPv4 form
// even when Go reports it mapped into IPv6.
func formatUaddr(ap netip.AddrPort) string {
	return netid.FormatUaddr(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

// parseUaddr is uaddr2taddr for IP netids: the host and port of a
// universal address.
func parseUaddr(uaddr string) (netip.AddrPort, error) {
	ap, ok := netid.ParseUaddr(uaddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q is not a universal address", uaddr)
	}
	return ap, nil
}

// rpcbGetaddr is libtirpc's rpcb_getaddr: ask the portmapper pm (reached
// over netid) for prog, vers with version 4's GETADDR, then version 3's,
// and, for the IPv4 netids, version 2's GETPORT when the portmapper
// speaks neither. It returns the universal address found.
func (g *globals) rpcbGetaddr(ctx context.Context, pm *rpcbind.Client, prog, vers uint32, name string) (string, rpcStatus) {
	args := xdr.RPCB{Prog: prog, Vers: vers, Netid: name, Addr: serverUaddr(pm)}
	for _, v := range []uint32{xdr.RpcbVers4, xdr.RpcbVers} {
		callCtx, cancel := g.callContext(ctx)
		ua, err := pm.GetAddr(callCtx, v, args)
		cancel()
		if err == nil {
			if ua == "" {
				return "", rpcStatus{Stat: rpcProgNotRegistered}
			}
			return ua, rpcStatus{}
		}
		st := statusOf(err)
		switch {
		case st.Stat == rpcProgVersMismatch && st.Vers.Low <= xdr.RpcbVers4:
		case st.Stat == rpcProgUnavail:
		default:
			return "", lookupStatus(err)
		}
	}
	if name != string(netid.UDP) && name != string(netid.TCP) {
		return "", rpcStatus{Stat: rpcProgNotRegistered}
	}
	port, st := g.getport(ctx, pm, prog, vers, name)
	if st.Stat != rpcSuccess {
		return "", st
	}
	ap, _ := addrPort(pm.RemoteAddr())
	return formatUaddr(netip.AddrPortFrom(ap.Addr(), uint16(port))), rpcStatus{}
}

// dialUaddr connects over netid to a universal address.
func (g *globals) dialUaddr(ctx context.Context, name, uaddr string) (*rpcbind.Client, rpcStatus) {
	if name == string(netid.Local) {
		ctx, cancel := g.callContext(ctx)
		defer cancel()
		var d net.Dialer
		conn, err := d.DialContext(ctx, "unix", uaddr)
		if err != nil {
			return nil, statusOf(err)
		}
		return rpcbind.NewClient(streamOnly{conn}), rpcStatus{}
	}
	ap, err := parseUaddr(uaddr)
	if err != nil {
		// libtirpc: RPC_N2AXLATEFAILURE.
		return nil, rpcStatus{Stat: rpcFailed, Detail: err}
	}
	c, err := g.dial(ctx, ipNetwork(name), ap.String())
	if err != nil {
		return nil, statusOf(err)
	}
	return c, rpcStatus{}
}

// streamOnly hides the datagram methods of a *net.UnixConn from
// rpcbind.NewClient, so that its calls are framed in records.
type streamOnly struct{ net.Conn }

// euidOwner is what libtirpc sends as r_owner: the effective uid.
func euidOwner() string { return strconv.Itoa(os.Geteuid()) }

// versionNotSpoken reports whether a call failed because the portmapper
// does not speak the version asked for, and which versions it speaks.
func versionNotSpoken(err error) (xdr.Mismatch, bool) {
	var re *xdr.ReplyError
	if errors.As(err, &re) && re.Header.Stat == xdr.MsgAccepted &&
		(re.Header.Accept == xdr.ProgMismatch || re.Header.Accept == xdr.ProgUnavail) {
		return re.Header.Mismatch, true
	}
	return xdr.Mismatch{}, false
}
