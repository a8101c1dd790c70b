package main

import (
	"context"
	"fmt"
	"io"
	"math"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/rpcbind"
)

func newPingCmd(g *globals) *cobra.Command {
	var netid string
	cmd := &cobra.Command{
		Use:   "ping [-T NETID] HOST PROG [VERS]",
		Short: "Call a program's NULL procedure, as rpcinfo -T",
		Long: `ping asks HOST's portmapper where program PROG (a number or a name from
the RPC program database), version VERS, is served over the netid given
with -T (udp, tcp, udp6, tcp6, or local: the portmapper's local socket,
whatever HOST), then calls its NULL procedure there and prints rpcinfo
-T's messages. The lookup is libtirpc's rpcb_getaddr: version 4's GETADDR,
then version 3's, then (udp and tcp only) version 2's GETPORT, each for a
portmapper that does not speak the one before.

Without VERS it calls version 0 and pings every version in the range of
the PROG_MISMATCH answer (when version 0 answers, the range comes from a
call to version 4294967295), as rpcinfo does.

Exits 1 when any call fails.`,
		Args:         positional("HOST", "PROG", "[VERS]"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog, err := g.parseProg(args[1])
			if err != nil {
				return err
			}
			vers, known := uint32(0), len(args) == 3
			if known {
				if vers, err = parseVers(args[2]); err != nil {
					return err
				}
			}
			if _, err := netidNetwork(netid); err != nil {
				return err
			}
			return g.ping(cmd, netid, args[0], prog, vers, known)
		},
	}
	cmd.Flags().StringVarP(&netid, "netid", "T", "udp", "transport: udp, tcp, udp6, tcp6 or local")
	return cmd
}

// ping is rpcinfo's progping.
func (g *globals) ping(cmd *cobra.Command, netid, host string, prog, vers uint32, known bool) error {
	ctx := cmd.Context()
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	c, st := g.findService(ctx, host, prog, vers, netid)
	if st.Stat != rpcSuccess {
		return reportFailure(cmd, st.createError("portmapctl"))
	}
	defer c.Close()
	first := g.null(ctx, c, prog, vers)
	if e := interrupted(ctx); e != nil {
		return e
	}
	if known {
		if !pstatus(stdout, stderr, prog, vers, first) {
			return failed
		}
		return nil
	}
	var low, high uint32
	switch st := statusOf(first); st.Stat {
	case rpcProgVersMismatch:
		low, high = st.Vers.Low, st.Vers.High
	case rpcSuccess:
		// Version 0 exists: ask the highest version for the range.
		err := g.null(ctx, c, prog, math.MaxUint32)
		if e := interrupted(ctx); e != nil {
			return e
		}
		switch st := statusOf(err); st.Stat {
		case rpcProgVersMismatch:
			low, high = st.Vers.Low, st.Vers.High
		case rpcSuccess:
			low, high = 0, math.MaxUint32
		default:
			pstatus(stdout, stderr, prog, math.MaxUint32, err)
			return failed
		}
	default:
		pstatus(stdout, stderr, prog, 0, first)
		return failed
	}
	return g.pingRange(ctx, c, stdout, stderr, prog, low, high)
}

// pingRange calls every version from low to high.
func (g *globals) pingRange(ctx context.Context, c *rpcbind.Client, stdout, stderr io.Writer, prog, low, high uint32) error {
	ok := true
	for v := uint64(low); v <= uint64(high); v++ {
		err := g.null(ctx, c, prog, uint32(v))
		if e := interrupted(ctx); e != nil {
			return e
		}
		if !pstatus(stdout, stderr, prog, uint32(v), err) {
			ok = false
		}
	}
	if !ok {
		return failed
	}
	return nil
}

// pstatus is rpcinfo's pstatus: the outcome of one NULL call.
func pstatus(stdout, stderr io.Writer, prog, vers uint32, err error) bool {
	if err != nil {
		fmt.Fprintln(stderr, statusOf(err).callError("portmapctl"))
		io.WriteString(stdout, pingLine(prog, vers, false))
		return false
	}
	io.WriteString(stdout, pingLine(prog, vers, true))
	return true
}
