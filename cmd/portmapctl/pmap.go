package main

// Portmap version 2's queries: dump (rpcinfo -p) and getport
// (pmap_getport).

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

func newDumpCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "dump [HOST]",
		Short: "List the portmapper's v2 registrations, as rpcinfo -p",
		Long: `dump prints the portmapper's version 2 list in rpcinfo -p's table, with
program names from the RPC program database.

Like rpcinfo -p HOST, it first asks the portmapper for its own version 2
TCP port (GETPORT 100000 2 tcp) and fails as rpcinfo does when it has none;
the DUMP itself is then sent over TCP to the portmapper it asked. HOST
defaults to 127.0.0.1 (rpcinfo -p without a host uses the local socket).`,
		Args:         positional("[HOST]"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			host := defaultHost
			if len(args) == 1 {
				host = args[0]
			}
			return g.dump(cmd, host)
		},
	}
}

func (g *globals) dump(cmd *cobra.Command, host string) error {
	ctx := cmd.Context()
	pm, err := g.dialPortmapper(ctx, host, string(netid.TCP))
	if err != nil {
		return reportFailure(cmd, statusOf(err).createError(host))
	}
	defer pm.Close()
	if _, st := g.getport(ctx, pm, xdr.PmapProg, xdr.PmapVers, string(netid.TCP)); st.Stat != rpcSuccess {
		return reportFailure(cmd, st.createError(host))
	}
	list, err := timed(ctx, g, pm.Dump)
	if err != nil {
		msg := statusOf(err).callError("portmapctl: can't contact portmapper")
		if m, notSpoken := versionNotSpoken(err); notSpoken {
			// A portmapper past version 2 gets rpcinfo's advice; one
			// that speaks no version at all, nothing.
			msg = ""
			if m.Low > xdr.PmapVers {
				msg = fmt.Sprintf("%s does not support portmapper.  Try rpcinfo %s instead", host, host)
			}
		}
		return reportFailure(cmd, msg)
	}
	return writePmapDump(cmd.OutOrStdout(), list, g.programName)
}

func newGetportCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "getport HOST PROG VERS tcp|udp",
		Short: "Print the port of a program, as pmap_getport",
		Long: `getport asks HOST's portmapper (v2 GETPORT, sent over the protocol named)
for the port of program PROG (a number or a name from the RPC program
database), version VERS, and prints it.

A program that is not registered prints 0 on standard output, the error
"RPC: Program not registered" on standard error, and exits 1, so that
both $(portmapctl getport ...) and the exit status tell.`,
		Args:         positional("HOST", "PROG", "VERS", "PROTO"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog, vers, err := g.parseProgVers(args[1], args[2])
			if err != nil {
				return err
			}
			prot, err := parseProto(args[3])
			if err != nil {
				return err
			}
			netid := protoName(prot)
			ctx := cmd.Context()
			where, flags := netid+" "+g.portmapper(args[0]), "--server HOST:PORT or --port PORT asks another"
			failure := func(st rpcStatus) error {
				return reportFailure(cmd, st.createError("portmapctl"), st.notReached(where, flags))
			}
			pm, err := g.dialPortmapper(ctx, args[0], netid)
			if err != nil {
				return failure(statusOf(err))
			}
			defer pm.Close()
			port, st := g.getport(ctx, pm, prog, vers, netid)
			switch st.Stat {
			case rpcSuccess:
				fmt.Fprintln(cmd.OutOrStdout(), port)
				return nil
			case rpcProgNotRegistered:
				fmt.Fprintln(cmd.OutOrStdout(), 0)
			}
			return failure(st)
		},
	}
}
