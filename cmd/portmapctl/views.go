package main

// rpcinfo's version 3 and 4 views: plain rpcinfo (table), -s (summary),
// -m (stats), -l (addrlist) and -d (delete).

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

const contactPrefix = "portmapctl: can't contact rpcbind"

const viewHostHelp = `Without HOST it asks the portmapper on this machine over its local socket
(--socket, /run/rpcbind.sock, tried first as the abstract socket of that
name), as rpcinfo does. With HOST it uses the netid given with -T (udp,
tcp, udp6 or tcp6), or else TCP and, when TCP cannot connect, UDP.`

// newDumpViewCmd completes cmd, given its Use, Short and Long, as one of
// rpcinfo's views of a version 3 DUMP, printed by write.
func newDumpViewCmd(g *globals, cmd *cobra.Command, write func(io.Writer, []xdr.RPCB, nameFunc) error) *cobra.Command {
	var netid string
	cmd.Args = positional("[HOST]")
	cmd.SilenceUsage = true
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return g.rpcbDumpView(cmd, netid, args, write)
	}
	cmd.Flags().StringVarP(&netid, "netid", "T", "", "transport to HOST: udp, tcp, udp6 or tcp6")
	return cmd
}

func newTableCmd(g *globals) *cobra.Command {
	return newDumpViewCmd(g, &cobra.Command{
		Use:   "table [-T NETID] [HOST]",
		Short: "List the portmapper's registrations with a v3 DUMP, as plain rpcinfo",
		Long: `table prints every registration of the portmapper, with its netid,
universal address and owner, in plain rpcinfo's table. It asks with
rpcbind version 3's DUMP, and falls back to version 4 or to version 2's
DUMP as rpcinfo does for a portmapper that speaks only those.

` + viewHostHelp,
	}, writeRpcbDump)
}

func newSummaryCmd(g *globals) *cobra.Command {
	return newDumpViewCmd(g, &cobra.Command{
		Use:   "summary [-T NETID] [HOST]",
		Short: "Summarise the registrations by program, as rpcinfo -s",
		Long: `summary prints one line per registered program, with its versions, netids
and owner, as rpcinfo -s does, from the same DUMP as table.

` + viewHostHelp,
	}, writeRpcbSummary)
}

// connectView connects as rpcinfo's views do: the local socket without a
// host, else dialRpcbind. It reports a failure itself.
func (g *globals) connectView(cmd *cobra.Command, netid string, args []string) (*rpcbind.Client, string, error) {
	ctx := cmd.Context()
	if netid != "" && ipNetwork(netid) == "" {
		return nil, "", &argError{fmt.Sprintf("netid %s not supported here (use udp, tcp, udp6 or tcp6)", netid)}
	}
	var (
		c    *rpcbind.Client
		used string
		st   rpcStatus
	)
	if len(args) == 0 {
		var err error
		c, used, err = g.dialLocal(ctx)
		st = statusOf(err)
	} else {
		c, used, st = g.dialRpcbind(ctx, args[0], netid)
	}
	if st.Stat != rpcSuccess {
		return nil, "", reportFailure(cmd, st.createError(contactPrefix))
	}
	return c, used, nil
}

// viewCallError is how rpcinfo's views report a call that failed.
func viewCallError(err error) string {
	return statusOf(err).callError(contactPrefix + ": ")
}

// rpcbDumpView is rpcinfo's rpcbdump.
func (g *globals) rpcbDumpView(cmd *cobra.Command, netid string, args []string, write func(io.Writer, []xdr.RPCB, nameFunc) error) error {
	ctx := cmd.Context()
	c, _, err := g.connectView(cmd, netid, args)
	if err != nil {
		return err
	}
	defer c.Close()
	rpcbDump := func(v uint32) func(context.Context) ([]xdr.RPCB, error) {
		return func(ctx context.Context) ([]xdr.RPCB, error) { return c.RpcbDump(ctx, v) }
	}
	rows, err := timed(ctx, g, rpcbDump(xdr.RpcbVers))
	if m, notSpoken := versionNotSpoken(err); notSpoken {
		switch {
		case m.Low == xdr.RpcbVers4:
			rows, err = timed(ctx, g, rpcbDump(xdr.RpcbVers4))
		case m.High == xdr.PmapVers:
			var list []xdr.Mapping
			list, err = timed(ctx, g, c.Dump)
			rows = pmapRows(list)
		default:
			// rpcinfo tries nothing else and lists nothing.
			err = nil
		}
	}
	if err != nil {
		return reportFailure(cmd, viewCallError(err))
	}
	return write(cmd.OutOrStdout(), rows, g.programName)
}

func newStatsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "stats [HOST]",
		Short: "Print the portmapper's call statistics (v4 GETSTAT), as rpcinfo -m",
		Long: `stats prints the portmapper's counters of versions 2, 3 and 4, and its
per-program lookup and remote-call statistics, in rpcinfo -m's layout.

Without HOST it asks the portmapper on this machine over its local socket
(--socket), as rpcinfo does; with HOST, over TCP and, when TCP cannot
connect, UDP.`,
		Args:         positional("[HOST]"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := g.connectView(cmd, "", args)
			if err != nil {
				return err
			}
			defer c.Close()
			st, err := timed(cmd.Context(), g, c.GetStat)
			if err != nil {
				return reportFailure(cmd, viewCallError(err))
			}
			return writeStats(cmd.OutOrStdout(), &st, g.programName)
		},
	}
}

func newAddrlistCmd(g *globals) *cobra.Command {
	var netid string
	cmd := &cobra.Command{
		Use:   "addrlist [-T NETID] HOST PROG VERS",
		Short: "List a program's addresses on every transport (v4 GETADDRLIST), as rpcinfo -l",
		Long: `addrlist asks HOST's portmapper, with version 4's GETADDRLIST, for the
addresses of program PROG (a number or a name from the RPC program
database), version VERS, on each transport of the family it was reached
over, and prints them as rpcinfo -l does.

The portmapper is reached over the netid given with -T (udp, tcp, udp6 or
tcp6), or else over TCP and, when TCP cannot connect, UDP; the call names
that netid and the address used to reach the portmapper, so that it can
answer with addresses this side can reach.`,
		Args:         positional("HOST", "PROG", "VERS"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, used, err := g.connectView(cmd, netid, args[:1])
			if err != nil {
				return err
			}
			defer c.Close()
			prog, vers, err := g.parseProgVers(args[1], args[2])
			if err != nil {
				return err
			}
			query := xdr.RPCB{Prog: prog, Vers: vers, Netid: used, Addr: serverUaddr(c)}
			list, err := timed(cmd.Context(), g, func(ctx context.Context) ([]xdr.RPCBEntry, error) { return c.GetAddrList(ctx, query) })
			if err != nil {
				return reportFailure(cmd, viewCallError(err))
			}
			return writeAddrList(cmd.OutOrStdout(), prog, vers, list, g.programName)
		},
	}
	cmd.Flags().StringVarP(&netid, "netid", "T", "", "transport to HOST: udp, tcp, udp6 or tcp6")
	return cmd
}

func newDeleteCmd(g *globals) *cobra.Command {
	var netid string
	cmd := &cobra.Command{
		Use:   "delete [-T NETID] PROG VERS",
		Short: "Remove a program's registrations with rpcb_unset, as rpcinfo -d",
		Long: `delete removes program PROG (a number or a name from the RPC program
database), version VERS, from the local portmapper as rpcinfo -d does:
a version 3 UNSET over the local socket (--socket; TCP to the loopback
portmapper when the socket cannot be reached), on the netid given with -T
or on every netid without it. Only the owner of a registration, or root,
may remove it.

Prints nothing on success; on failure prints rpcinfo's message and exits 1.
Use unset for a true/false answer.`,
		Args:         positional("PROG", "VERS"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if netid != "" && !isKnownNetid(netid) {
				fmt.Fprintf(cmd.ErrOrStderr(), "portmapctl: netid %s not supported\n", netid)
				return failed
			}
			prog, vers, err := g.parseProgVers(args[0], args[1])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			ok := false
			if c, err := g.dialLocalRpcb(ctx); err == nil {
				callCtx, cancel := g.callContext(ctx)
				ok, _ = c.RpcbUnset(callCtx, xdr.RpcbVers, xdr.RPCB{Prog: prog, Vers: vers, Netid: netid, Owner: euidOwner()})
				cancel()
				c.Close()
			}
			if e := interrupted(ctx); e != nil {
				return e
			}
			if !ok {
				fmt.Fprintf(cmd.ErrOrStderr(), "portmapctl: Could not delete registration for prog %s version %s\n", args[0], args[1])
				return failed
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&netid, "netid", "T", "", "netid to remove the registration from (default: every netid)")
	return cmd
}
