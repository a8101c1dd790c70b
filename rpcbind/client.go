package rpcbind

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/xdr"
)

// A Client calls a portmapper's procedures of versions 2, 3 and 4 over one
// connection. It is an oncrpc.Client, whose Call, CallStream, Null and
// settings (Cred, Retransmit, MaxReply) it shares, with the portmapper's
// procedures as methods.
type Client struct {
	*oncrpc.Client
}

// Dial connects to a portmapper. network is udp, udp4, udp6, tcp, tcp4,
// tcp6 or unix.
func Dial(ctx context.Context, network, address string) (*Client, error) {
	c, err := oncrpc.Dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return &Client{c}, nil
}

// DialReservedUDP connects over UDP to the portmapper at address as
// libtirpc's clients do as root with bindresvport: from a reserved source
// port, the highest free one from 1023 down to 600, so that the
// portmapper records the superuser as the owner of what the caller
// registers and lets it remove the superuser's registrations. When the
// caller is not root, or every one of those ports is in use, it connects
// from any port, as Dial does.
func DialReservedUDP(ctx context.Context, address string) (*Client, error) {
	if os.Geteuid() == 0 {
		raddr, err := net.ResolveUDPAddr("udp", address)
		if err != nil {
			return nil, err
		}
		local := netip.IPv4Unspecified()
		if raddr.IP.To4() == nil {
			local = netip.IPv6Unspecified()
		}
		for port := 1023; port >= 600; port-- {
			conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, uint16(port))), raddr)
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			if err != nil {
				return nil, err
			}
			return NewClient(conn), nil
		}
	}
	return Dial(ctx, "udp", address)
}

// NewClient returns a Client that calls over conn, which it owns, as
// oncrpc.NewClient does.
func NewClient(conn net.Conn) *Client { return &Client{oncrpc.NewClient(conn)} }

// PmapSet registers m with a v2 SET.
func (c *Client) PmapSet(ctx context.Context, m xdr.Mapping) (bool, error) {
	return c.callBool(ctx, xdr.PmapVers, xdr.PmapProcSet, m.Encode)
}

// PmapUnset removes prog, vers with a v2 UNSET.
func (c *Client) PmapUnset(ctx context.Context, prog, vers uint32) (bool, error) {
	m := xdr.Mapping{Prog: prog, Vers: vers}
	return c.callBool(ctx, xdr.PmapVers, xdr.PmapProcUnset, m.Encode)
}

// callBool calls a portmapper procedure whose result is a bool.
func (c *Client) callBool(ctx context.Context, vers, proc uint32, args func(*xdr.Encoder)) (bool, error) {
	var ok bool
	err := c.Call(ctx, xdr.PmapProg, vers, proc, args, func(d *xdr.Decoder) { ok = d.Bool() })
	return ok, err
}

// GetPort asks for the port of prog, vers over protocol prot (netid.ProtoTCP
// or netid.ProtoUDP); 0 means not registered.
func (c *Client) GetPort(ctx context.Context, prog, vers, prot uint32) (uint32, error) {
	m := xdr.Mapping{Prog: prog, Vers: vers, Prot: prot}
	var port uint32
	err := c.Call(ctx, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcGetport, m.Encode, func(d *xdr.Decoder) { port = d.Uint32() })
	return port, err
}

// Dump returns the portmapper's v2 list.
func (c *Client) Dump(ctx context.Context) ([]xdr.Mapping, error) {
	return oncrpc.CallList(ctx, c.Client, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcDump, nil, 4+4*4, (*xdr.Mapping).Decode)
}

// PmapCallit makes a remote call through the portmapper with a v2 CALLIT:
// procedure a.Proc of program a.Prog, version a.Vers, with a.Args as its
// encoded arguments. It returns the program's port and encoded results.
// Only a datagram call is forwarded, and the portmapper answers only a
// call that succeeded: any failure is a timeout (or, for a call the
// portmapper refuses to make, AUTH_TOOWEAK).
func (c *Client) PmapCallit(ctx context.Context, a xdr.CallArgs) (xdr.CallResult, error) {
	var r xdr.CallResult
	err := c.Call(ctx, xdr.PmapProg, xdr.PmapVers, xdr.PmapProcCallit, a.Encode, r.Decode)
	return r, err
}
