package rpcbind

import (
	"context"
	"fmt"
	"net"

	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/xdr"
)

// Client calls of rpcbind versions 3 and 4 (RFC 1833). Those that exist in
// both versions take the version to call; a version other than 3 or 4 is
// refused before anything is sent, since version 2's procedures of the same
// numbers take other arguments.

func checkRpcbVers(vers uint32) error {
	if vers != xdr.RpcbVers && vers != xdr.RpcbVers4 {
		return fmt.Errorf("rpcbind: version %d has no rpcbind procedures (use 3 or 4)", vers)
	}
	return nil
}

// RpcbSet registers r with SET. rpcbind takes the owner from the
// transport, not from r.Owner, which is sent as given.
func (c *Client) RpcbSet(ctx context.Context, vers uint32, r xdr.RPCB) (bool, error) {
	return c.rpcbBool(ctx, vers, xdr.RpcbProcSet, r)
}

// RpcbUnset removes r.Prog, r.Vers on r.Netid with UNSET; an empty netid
// removes it on every netid. r.Addr is ignored by the portmapper.
func (c *Client) RpcbUnset(ctx context.Context, vers uint32, r xdr.RPCB) (bool, error) {
	return c.rpcbBool(ctx, vers, xdr.RpcbProcUnset, r)
}

func (c *Client) rpcbBool(ctx context.Context, vers, proc uint32, r xdr.RPCB) (bool, error) {
	if err := checkRpcbVers(vers); err != nil {
		return false, err
	}
	return c.callBool(ctx, vers, proc, r.Encode)
}

func (c *Client) rpcbString(ctx context.Context, vers, proc uint32, args func(*xdr.Encoder), what string) (string, error) {
	var s string
	err := c.Call(ctx, xdr.PmapProg, vers, proc, args, func(d *xdr.Decoder) { s = d.String(what, xdr.MaxRPCBString) })
	return s, err
}

// GetAddr asks for the universal address of r.Prog, r.Vers (any version of
// the program, as rpcbind answers) on the transport the call travels over;
// r.Addr is a hint of the address the caller used to reach the server. ""
// means not registered.
func (c *Client) GetAddr(ctx context.Context, vers uint32, r xdr.RPCB) (string, error) {
	if err := checkRpcbVers(vers); err != nil {
		return "", err
	}
	return c.rpcbString(ctx, vers, xdr.RpcbProcGetaddr, r.Encode, "uaddr")
}

// GetVersAddr is version 4's GETADDR of exactly r.Vers.
func (c *Client) GetVersAddr(ctx context.Context, r xdr.RPCB) (string, error) {
	return c.rpcbString(ctx, xdr.RpcbVers4, xdr.RpcbProcGetversaddr, r.Encode, "uaddr")
}

// RpcbDump returns the portmapper's list with DUMP.
func (c *Client) RpcbDump(ctx context.Context, vers uint32) ([]xdr.RPCB, error) {
	if err := checkRpcbVers(vers); err != nil {
		return nil, err
	}
	return oncrpc.CallList(ctx, c.Client, xdr.PmapProg, vers, xdr.RpcbProcDump, nil, 4+4*2+3*(4+xdr.MaxRPCBString), (*xdr.RPCB).Decode)
}

// GetAddrList is version 4's GETADDRLIST: the addresses of exactly r.Prog,
// r.Vers on the transports of the caller's protocol family. r.Netid and
// r.Addr name the transport and address the caller used, as rpcinfo -l
// sends them.
func (c *Client) GetAddrList(ctx context.Context, r xdr.RPCB) ([]xdr.RPCBEntry, error) {
	return oncrpc.CallList(ctx, c.Client, xdr.PmapProg, xdr.RpcbVers4, xdr.RpcbProcGetaddrlist, r.Encode, 4+4+4*(4+xdr.MaxRPCBString), (*xdr.RPCBEntry).Decode)
}

// GetStat is version 4's GETSTAT: the counters of versions 2, 3 and 4, in
// that order.
func (c *Client) GetStat(ctx context.Context) ([xdr.StatVersions]xdr.VersionStat, error) {
	var s [xdr.StatVersions]xdr.VersionStat
	err := c.Call(ctx, xdr.PmapProg, xdr.RpcbVers4, xdr.RpcbProcGetstat, nil, func(d *xdr.Decoder) {
		for i := range s {
			s[i].Decode(d)
		}
	})
	return s, err
}

// GetTime returns the server's clock in seconds since the epoch.
func (c *Client) GetTime(ctx context.Context, vers uint32) (uint32, error) {
	if err := checkRpcbVers(vers); err != nil {
		return 0, err
	}
	var t uint32
	err := c.Call(ctx, xdr.PmapProg, vers, xdr.RpcbProcGettime, nil, func(d *xdr.Decoder) { t = d.Uint32() })
	return t, err
}

// Uaddr2Taddr asks the server to convert a universal address of the
// transport the call travels over into its native form (on Linux, a struct
// sockaddr). An empty netbuf means the server could not.
func (c *Client) Uaddr2Taddr(ctx context.Context, vers uint32, uaddr string) (xdr.Netbuf, error) {
	var nb xdr.Netbuf
	if err := checkRpcbVers(vers); err != nil {
		return nb, err
	}
	err := c.Call(ctx, xdr.PmapProg, vers, xdr.RpcbProcUaddr2taddr,
		func(e *xdr.Encoder) { e.String(uaddr) },
		func(d *xdr.Decoder) { nb.Decode(d) })
	return nb, err
}

// Taddr2Uaddr asks the server to convert a native address of the transport
// the call travels over into a universal address; "" means it could not.
func (c *Client) Taddr2Uaddr(ctx context.Context, vers uint32, nb xdr.Netbuf) (string, error) {
	if err := checkRpcbVers(vers); err != nil {
		return "", err
	}
	return c.rpcbString(ctx, vers, xdr.RpcbProcTaddr2uaddr, nb.Encode, "uaddr")
}

// RpcbCallit makes a remote call through the portmapper with version 3's
// CALLIT or version 4's BCAST, as PmapCallit does, and returns the
// program's universal address, as the caller can reach it, and its
// encoded results.
func (c *Client) RpcbCallit(ctx context.Context, vers uint32, a xdr.CallArgs) (xdr.RmtCallResult, error) {
	if err := checkRpcbVers(vers); err != nil {
		return xdr.RmtCallResult{}, err
	}
	return c.rmtCall(ctx, vers, xdr.RpcbProcCallit, a)
}

// Indirect makes a remote call through the portmapper with version 4's
// INDIRECT, which, unlike CALLIT, answers failures: PROG_UNAVAIL and
// PROG_MISMATCH for a program or version that is not registered,
// SYSTEM_ERR for a call that failed, as a *xdr.ReplyError.
func (c *Client) Indirect(ctx context.Context, a xdr.CallArgs) (xdr.RmtCallResult, error) {
	return c.rmtCall(ctx, xdr.RpcbVers4, xdr.RpcbProcIndirect, a)
}

func (c *Client) rmtCall(ctx context.Context, vers, proc uint32, a xdr.CallArgs) (xdr.RmtCallResult, error) {
	var r xdr.RmtCallResult
	err := c.Call(ctx, xdr.PmapProg, vers, proc, a.Encode, r.Decode)
	return r, err
}

// DefaultLocalSocket is where rpcbind serves the local transport.
const DefaultLocalSocket = "/run/rpcbind.sock"

// DialLocal connects to the portmapper's local socket at path as libtirpc
// does: the abstract socket "@path" first, which recent rpcbind and
// portmapd also serve, then the file path. The portmapper identifies the
// caller by its kernel credentials (netid "local").
func DialLocal(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", "@"+path)
	if err != nil {
		conn, err = d.DialContext(ctx, "unix", path)
		if err != nil {
			return nil, err
		}
	}
	return NewClient(conn), nil
}
