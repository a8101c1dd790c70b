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
	"strings"

	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// knownNetids are the netids of Linux's /etc/netconfig: what
// getnetconfigent finds.
var knownNetids = []string{"udp", "tcp", "udp6", "tcp6", "rawip", "local", "unix"}

func isKnownNetid(netid string) bool {
	for _, n := range knownNetids {
		if n == netid {
			return true
		}
	}
	return false
}

// ipNetwork is the Go network of an IP netid, or "".
func ipNetwork(netid string) string {
	switch netid {
	case "udp", "tcp", "udp6", "tcp6":
		return netid
	}
	return ""
}

// dialLocal connects to the portmapper's local socket (--socket, the
// abstract socket of that name first), or to --server when it is set.
func (g *globals) dialLocal(ctx context.Context) (*rpcbind.Client, string, error) {
	if g.server != "" {
		c, err := g.dial(ctx, "tcp", g.server)
		return c, "tcp", err
	}
	ctx, cancel := g.callContext(ctx)
	defer cancel()
	c, err := rpcbind.DialLocal(ctx, g.socket)
	return c, "local", err
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
func (g *globals) dialNetid(ctx context.Context, host, netid string) (*rpcbind.Client, string, error) {
	if netid == "local" {
		return g.dialLocal(ctx)
	}
	network := ipNetwork(netid)
	if network == "" {
		return nil, "", fmt.Errorf("netid %s not supported", netid)
	}
	c, err := g.dial(ctx, network, g.portmapper(host))
	if err != nil {
		return nil, "", err
	}
	return c, clientNetid(c, netid), nil
}

// clientNetid is the netid of a connected IP client: its transport and
// the family of the address it reached.
func clientNetid(c *rpcbind.Client, netid string) string {
	base := strings.TrimSuffix(netid, "6")
	if ap, ok := addrPort(c.RemoteAddr()); ok && !ap.Addr().Unmap().Is4() {
		return base + "6"
	}
	return base
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
func (g *globals) dialRpcbind(ctx context.Context, host, netid string) (*rpcbind.Client, string, rpcStatus) {
	if netid != "" {
		c, used, err := g.dialNetid(ctx, host, netid)
		if err != nil {
			return nil, "", statusOf(err)
		}
		return c, used, rpcStatus{}
	}
	c, used, err := g.dialNetid(ctx, host, "tcp")
	if err == nil {
		return c, used, rpcStatus{}
	}
	if e := interrupted(ctx); e != nil {
		return nil, "", statusOf(e)
	}
	c, used, err = g.dialNetid(ctx, host, "udp")
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

// formatUaddr is taddr2uaddr for IP: h1.h2.h3.h4.p1.p2, or IPv6 text
// followed by .p1.p2.
func formatUaddr(ap netip.AddrPort) string {
	a := ap.Addr().Unmap().WithZone("")
	return fmt.Sprintf("%s.%d.%d", a, ap.Port()>>8, ap.Port()&0xff)
}

// parseUaddr is uaddr2taddr for IP netids: the host and port of a
// universal address.
func parseUaddr(uaddr string) (netip.AddrPort, error) {
	bad := fmt.Errorf("%q is not a universal address", uaddr)
	i := strings.LastIndexByte(uaddr, '.')
	if i < 0 {
		return netip.AddrPort{}, bad
	}
	j := strings.LastIndexByte(uaddr[:i], '.')
	if j < 0 {
		return netip.AddrPort{}, bad
	}
	hi, err1 := strconv.ParseUint(uaddr[j+1:i], 10, 8)
	lo, err2 := strconv.ParseUint(uaddr[i+1:], 10, 8)
	a, err3 := netip.ParseAddr(uaddr[:j])
	if err1 != nil || err2 != nil || err3 != nil {
		return netip.AddrPort{}, bad
	}
	return netip.AddrPortFrom(a, uint16(hi<<8|lo)), nil
}

// wildcardUaddr is the universal address of port on every address of an
// IP netid's family, as a service bound to the wildcard registers.
func wildcardUaddr(netid string, port uint16) string {
	if strings.HasSuffix(netid, "6") {
		return formatUaddr(netip.AddrPortFrom(netip.IPv6Unspecified(), port))
	}
	return formatUaddr(netip.AddrPortFrom(netip.IPv4Unspecified(), port))
}

// rpcbGetaddr is libtirpc's rpcb_getaddr: ask the portmapper pm (reached
// over netid) for prog, vers with version 4's GETADDR, then version 3's,
// and, for the IPv4 netids, version 2's GETPORT when the portmapper
// speaks neither. It returns the universal address found.
func (g *globals) rpcbGetaddr(ctx context.Context, pm *rpcbind.Client, prog, vers uint32, netid string) (string, rpcStatus) {
	args := xdr.RPCB{Prog: prog, Vers: vers, Netid: netid, Addr: serverUaddr(pm)}
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
	if netid != "udp" && netid != "tcp" {
		return "", rpcStatus{Stat: rpcProgNotRegistered}
	}
	port, st := g.getport(ctx, pm, prog, vers, netid)
	if st.Stat != rpcSuccess {
		return "", st
	}
	ap, _ := addrPort(pm.RemoteAddr())
	return formatUaddr(netip.AddrPortFrom(ap.Addr(), uint16(port))), rpcStatus{}
}

// dialUaddr connects over netid to a universal address.
func (g *globals) dialUaddr(ctx context.Context, netid, uaddr string) (*rpcbind.Client, rpcStatus) {
	if netid == "local" {
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
	c, err := g.dial(ctx, ipNetwork(netid), ap.String())
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

// rpcbindNotSpoken reports whether a DUMP failed because the portmapper
// does not speak the version asked for.
func rpcbindNotSpoken(err error) (xdr.Mismatch, bool) {
	var re *xdr.ReplyError
	if errors.As(err, &re) && re.Header.Stat == xdr.MsgAccepted &&
		(re.Header.Accept == xdr.ProgMismatch || re.Header.Accept == xdr.ProgUnavail) {
		return re.Header.Mismatch, true
	}
	return xdr.Mismatch{}, false
}
