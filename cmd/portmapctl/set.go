package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

const changeHelp = `Version 2 calls go over UDP to the local portmapper, 127.0.0.1 port 111,
or to --server. Run as root, portmapctl sends them from a reserved port, so
that the portmapper records the superuser as the owner.

Version 3 and 4 calls go where libtirpc's rpcb_set and rpcb_unset send
them: the local socket (--socket, /run/rpcbind.sock, tried first as the
abstract socket of that name), where the portmapper takes the owner from
the kernel (superuser for root, else the uid), or, when it cannot be
reached, TCP to the loopback portmapper; --server overrides both.

Prints the portmapper's answer, true or false, and exits 1 on false. A
portmapper that refuses the caller (AUTH_TOOWEAK: changes are only
accepted from 127.0.0.1, ::1 or the local socket unless it runs with -i)
is reported as such.`

func newSetCmd(g *globals) *cobra.Command {
	var askedVersion uint32
	cmd := &cobra.Command{
		Use:   "set [--version 2|3|4] PROG VERS NETID ADDR",
		Short: "Register a program (v2, or v3/v4 on any netid)",
		Long: `set registers program PROG (a number or a name from the RPC program
database), version VERS, on NETID at ADDR.

With version 2 (the default for tcp and udp) NETID is tcp or udp and ADDR a
port: a portmap SET. With --version 3 or 4 (the default for other netids)
it is rpcbind's SET: NETID is udp, tcp, udp6, tcp6 or local, and ADDR a
port (registered at the wildcard address of the netid's family, as a
service bound to every address is), a universal address (127.0.0.1.15.160,
::1.15.160) or, for local, a socket path.

` + changeHelp,
		Args:         positional("PROG", "VERS", "NETID", "ADDR"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := strings.ToLower(args[2])
			prog, vers, version, err := g.changeArgs(args[0], args[1], askedVersion, name != string(netid.TCP) && name != string(netid.UDP))
			if err != nil {
				return err
			}
			if version == xdr.PmapVers {
				prot, err := parseProto(args[2])
				if err != nil {
					return err
				}
				port, err := parsePort(args[3])
				if err != nil {
					return err
				}
				m := xdr.Mapping{Prog: prog, Vers: vers, Prot: prot, Port: port}
				return g.change(cmd, g.pmapTarget(), func(ctx context.Context, c *rpcbind.Client) (bool, error) {
					return c.PmapSet(ctx, m)
				})
			}
			uaddr, err := parseAddr(name, args[3])
			if err != nil {
				return err
			}
			r := xdr.RPCB{Prog: prog, Vers: vers, Netid: name, Addr: uaddr, Owner: euidOwner()}
			return g.change(cmd, g.rpcbTarget(), func(ctx context.Context, c *rpcbind.Client) (bool, error) {
				return c.RpcbSet(ctx, version, r)
			})
		},
	}
	cmd.Flags().Uint32Var(&askedVersion, "version", 0, "portmapper version to call: 2, 3 or 4 (default 2 for tcp and udp, else 3)")
	return cmd
}

func newUnsetCmd(g *globals) *cobra.Command {
	var askedVersion uint32
	var netid string
	cmd := &cobra.Command{
		Use:   "unset [--version 2|3|4] [-T NETID] PROG VERS",
		Short: "Remove a program's registrations (v2, or v3/v4 on one netid or all)",
		Long: `unset removes program PROG (a number or a name from the RPC program
database), version VERS.

With version 2 (the default without -T) it is a portmap UNSET: both its tcp
and its udp registrations go, whatever their ports. With --version 3 or 4
(the default with -T) it is rpcbind's UNSET: the registration on the netid
given with -T goes, or, without -T, its registrations on every netid.

` + changeHelp,
		Args:         positional("PROG", "VERS"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog, vers, version, err := g.changeArgs(args[0], args[1], askedVersion, cmd.Flags().Changed("netid"))
			if err != nil {
				return err
			}
			if version == xdr.PmapVers {
				if netid != "" {
					return &argError{"-T needs --version 3 or 4 (version 2 removes tcp and udp together)"}
				}
				return g.change(cmd, g.pmapTarget(), func(ctx context.Context, c *rpcbind.Client) (bool, error) {
					return c.PmapUnset(ctx, prog, vers)
				})
			}
			if netid != "" && !isKnownNetid(netid) {
				return &argError{fmt.Sprintf("netid %s not supported", netid)}
			}
			r := xdr.RPCB{Prog: prog, Vers: vers, Netid: netid, Owner: euidOwner()}
			return g.change(cmd, g.rpcbTarget(), func(ctx context.Context, c *rpcbind.Client) (bool, error) {
				return c.RpcbUnset(ctx, version, r)
			})
		},
	}
	cmd.Flags().Uint32Var(&askedVersion, "version", 0, "portmapper version to call: 2, 3 or 4 (default 2, or 3 with -T)")
	cmd.Flags().StringVarP(&netid, "netid", "T", "", "netid to remove the registration from (versions 3 and 4; default: every netid)")
	return cmd
}

// changeArgs reads the PROG and VERS of a set or unset, then the
// portmapper version to call: asked (--version), or by default 2, or 3
// when the change needs rpcbind's (a netid other than tcp and udp, or -T).
func (g *globals) changeArgs(progArg, versArg string, asked uint32, needsRpcbind bool) (prog, vers, version uint32, err error) {
	if prog, vers, err = g.parseProgVers(progArg, versArg); err != nil {
		return 0, 0, 0, err
	}
	version = asked
	if version == 0 {
		version = xdr.PmapVers
		if needsRpcbind {
			version = xdr.RpcbVers
		}
	}
	if version < xdr.PmapVers || version > xdr.RpcbVers4 {
		return 0, 0, 0, &argError{fmt.Sprintf("version %d is not a portmapper version (2, 3 or 4)", version)}
	}
	return prog, vers, version, nil
}

// parseAddr reads the ADDR of a v3/v4 set: a port (the wildcard address
// of an IP netid), a universal address, or a local socket's path.
func parseAddr(name, arg string) (string, error) {
	if !isKnownNetid(name) {
		return "", &argError{fmt.Sprintf("netid %s not supported", name)}
	}
	id := netid.ID(name)
	if !id.IsIP() {
		if isDigits(arg) {
			return "", &argError{fmt.Sprintf("%s is not an address of netid %s (give a socket path)", arg, name)}
		}
		return arg, nil
	}
	if isDigits(arg) {
		port, err := parsePort(arg)
		if err != nil {
			return "", err
		}
		return netid.WildcardUaddr(id, uint16(port)), nil
	}
	ap, err := parseUaddr(arg)
	if err != nil {
		return "", &argError{err.Error()}
	}
	if ap.Addr().Is4() == id.Is6() {
		return "", &argError{fmt.Sprintf("%s is not an address of netid %s", arg, name)}
	}
	return arg, nil
}

// A changeTarget is where SET and UNSET go: how to connect, and, for a
// portmapper that cannot be reached, where that was and which flags look
// elsewhere.
type changeTarget struct {
	dial         func(context.Context) (*rpcbind.Client, error)
	where, flags string
}

// pmapTarget is where version 2 SET and UNSET go.
func (g *globals) pmapTarget() changeTarget {
	return changeTarget{g.dialLocalPortmapper, "udp " + g.portmapper(defaultHost), "--server HOST:PORT asks another"}
}

// dialLocalPortmapper connects over UDP to the portmapper that SET and
// UNSET go to: --server, or 127.0.0.1 port 111. As root it binds a
// reserved source port, as bindresvport does, so that the portmapper
// records the superuser as owner and lets it remove the superuser's
// registrations.
func (g *globals) dialLocalPortmapper(ctx context.Context) (*rpcbind.Client, error) {
	ctx, cancel := g.callContext(ctx)
	defer cancel()
	return rpcbind.DialReservedUDP(ctx, g.portmapper(defaultHost))
}

// rpcbTarget is where version 3 and 4 SET and UNSET go.
func (g *globals) rpcbTarget() changeTarget {
	if g.server != "" {
		return changeTarget{g.dialLocalRpcb, "tcp " + g.server, "--server HOST:PORT asks another"}
	}
	return changeTarget{g.dialLocalRpcb, "the local socket " + g.socket + " or tcp " + g.portmapper("localhost"),
		"--socket PATH or --server HOST:PORT asks another"}
}

// change makes a SET or UNSET call and reports its result.
func (g *globals) change(cmd *cobra.Command, to changeTarget, call func(context.Context, *rpcbind.Client) (bool, error)) error {
	ctx := cmd.Context()
	stdout := cmd.OutOrStdout()
	c, err := to.dial(ctx)
	if err != nil {
		st := statusOf(err)
		return reportFailure(cmd, st.createError("portmapctl"), st.notReached(to.where, to.flags))
	}
	defer c.Close()
	callCtx, cancel := g.callContext(ctx)
	ok, err := call(callCtx, c)
	cancel()
	if err != nil {
		st := statusOf(err)
		return reportFailure(cmd, st.callError("portmapctl"), st.notReached(to.where, to.flags), refusedChange(err))
	}
	if !ok {
		io.WriteString(stdout, "false\n")
		return failed
	}
	io.WriteString(stdout, "true\n")
	return nil
}

// refusedChange explains a change the portmapper refused because of where
// it came from (AUTH_TOOWEAK), or is "".
func refusedChange(err error) string {
	var re *xdr.ReplyError
	if errors.As(err, &re) && re.Header.Stat == xdr.MsgDenied &&
		re.Header.Reject == xdr.AuthError && re.Header.Auth == xdr.AuthTooWeak {
		return "portmapctl: the portmapper refused the change: it accepts SET and UNSET only from 127.0.0.1, ::1 or its local socket (unless it runs with -i)"
	}
	return ""
}
