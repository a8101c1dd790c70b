package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

const changeHelp = `The call goes over UDP to the local portmapper, 127.0.0.1 port 111, or to
--server. Run as root, portmapctl sends it from a reserved port, so that
the portmapper records the superuser as the owner.

Prints the portmapper's answer, true or false, and exits 1 on false. A
portmapper that refuses the caller (AUTH_TOOWEAK: SET and UNSET are only
accepted from 127.0.0.1 or ::1 unless it runs with -i) is reported as such.`

func newSetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "set PROG VERS tcp|udp PORT",
		Short: "Register a program with a v2 SET",
		Long: `set registers program PROG (a number or a name from the RPC program
database), version VERS, at PORT over tcp or udp, with a portmap version 2
SET.

` + changeHelp,
		Args:         cobra.ExactArgs(4),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog, err := g.parseProg(args[0])
			if err != nil {
				return err
			}
			vers, err := parseVers(args[1])
			if err != nil {
				return err
			}
			prot, err := parseProto(args[2])
			if err != nil {
				return err
			}
			port, err := parsePort(args[3])
			if err != nil {
				return err
			}
			m := xdr.Mapping{Prog: prog, Vers: vers, Prot: prot, Port: port}
			return g.change(cmd, func(c *rpcbind.Client) (bool, error) {
				ctx, cancel := g.callContext(cmd.Context())
				defer cancel()
				return c.PmapSet(ctx, m)
			})
		},
	}
}

func newUnsetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unset PROG VERS",
		Short: "Remove a program's registrations with a v2 UNSET",
		Long: `unset removes program PROG (a number or a name from the RPC program
database), version VERS, with a portmap version 2 UNSET: both its tcp and
its udp registrations go, whatever their ports.

` + changeHelp,
		Args:         cobra.ExactArgs(2),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog, err := g.parseProg(args[0])
			if err != nil {
				return err
			}
			vers, err := parseVers(args[1])
			if err != nil {
				return err
			}
			return g.change(cmd, func(c *rpcbind.Client) (bool, error) {
				ctx, cancel := g.callContext(cmd.Context())
				defer cancel()
				return c.PmapUnset(ctx, prog, vers)
			})
		},
	}
}

// change makes a SET or UNSET call and reports its result.
func (g *globals) change(cmd *cobra.Command, call func(*rpcbind.Client) (bool, error)) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	c, err := g.dialLocalPortmapper(ctx)
	if err != nil {
		if e := interrupted(ctx); e != nil {
			return e
		}
		fmt.Fprintln(stderr, statusOf(err).createError("portmapctl"))
		return failed
	}
	defer c.Close()
	ok, err := call(c)
	if err != nil {
		if e := interrupted(ctx); e != nil {
			return e
		}
		fmt.Fprintln(stderr, statusOf(err).callError("portmapctl"))
		var re *xdr.ReplyError
		if errors.As(err, &re) && re.Header.Stat == xdr.MsgDenied &&
			re.Header.Reject == xdr.AuthError && re.Header.Auth == xdr.AuthTooWeak {
			fmt.Fprintln(stderr, "portmapctl: the portmapper refused the change: it accepts SET and UNSET only from 127.0.0.1 or ::1 (unless it runs with -i)")
		}
		return failed
	}
	if !ok {
		io.WriteString(stdout, "false\n")
		return failed
	}
	io.WriteString(stdout, "true\n")
	return nil
}
