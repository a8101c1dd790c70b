package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

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
