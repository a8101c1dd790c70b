package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

func newBroadcastCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "broadcast PROG VERS",
		Short: "Find the hosts of the local networks that serve a program, as rpcinfo -b",
		Long: `broadcast calls the NULL procedure of program PROG (a number or a name from
the RPC program database), version VERS, on every host of the networks
this host is on, through their portmappers' remote calls, as rpcinfo -b
does (libtirpc's rpc_broadcast): a version 3 and a version 2 CALLIT to the
broadcast address of each IPv4 network, and to the group ff02::202 on
each interface that can multicast. A portmapper answers only when it
forwards remote calls (portmapd -r, rpcbind -r) and the program is
registered with it.

Each answer prints a line: the program's universal address and the name
of its host, or "unknown" when its name cannot be looked up. It sends in
two rounds, waiting 4 then 8 seconds after the last answer, and a host
usually answers more than once: pipe through sort -u for one line each.
--port names the portmappers' port; --server and --timeout do not apply.`,
		Args:         positional("PROG", "VERS"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog, vers, err := g.parseProgVers(args[0], args[1])
			if err != nil {
				return err
			}
			return g.broadcast(cmd, prog, vers)
		},
	}
}

// broadcast is rpcinfo's brdcst.
func (g *globals) broadcast(cmd *cobra.Command, prog, vers uint32) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	cfg := rpcbind.BroadcastConfig{
		Port: g.port,
		Cred: processCred(),
		Warn: func(msg string) { fmt.Fprintln(stderr, "portmapctl: "+msg) },
	}
	names := hostNames{}
	err := rpcbind.Broadcast(cmd.Context(), cfg, xdr.CallArgs{Prog: prog, Vers: vers}, func(r rpcbind.BroadcastReply) bool {
		fmt.Fprintf(stdout, "%s\t%s\n", netid.FormatUaddr(r.Service), names.lookup(cmd.Context(), r.Service.Addr()))
		return false
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpcbind.ErrNoBroadcast):
		return reportFailure(cmd, "portmapctl: broadcast failed: "+rpcUnknownProto.String())
	}
	if e := interrupted(cmd.Context()); e != nil {
		return e
	}
	return reportFailure(cmd, rpcStatus{Stat: rpcFailed, Detail: err}.callError("portmapctl: broadcast failed"))
}

// hostNames caches what getnameinfo would say of addresses: the host's
// name, the address itself when it has none, "unknown" when the lookup
// cannot be made (no name server answers), as rpcinfo's reply_proc prints.
type hostNames map[netip.Addr]string

func (n hostNames) lookup(ctx context.Context, a netip.Addr) string {
	if name, ok := n[a]; ok {
		return name
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	name := "unknown"
	names, err := net.DefaultResolver.LookupAddr(ctx, a.String())
	var dnsErr *net.DNSError
	switch {
	case err == nil && len(names) > 0:
		name = strings.TrimSuffix(names[0], ".")
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		name = a.String()
	}
	n[a] = name
	return name
}

// processCred is libtirpc's authunix_create_default: an AUTH_SYS
// credential for this host's name and the process's effective uid and
// gid and first 16 supplementary groups.
func processCred() xdr.OpaqueAuth {
	host, _ := os.Hostname()
	if len(host) > xdr.MaxMachineName {
		host = host[:xdr.MaxMachineName]
	}
	p := xdr.AuthSysParms{Stamp: uint32(time.Now().Unix()), MachineName: host, UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	groups, _ := os.Getgroups()
	for _, gid := range groups {
		if len(p.GIDs) == xdr.MaxGroups {
			break
		}
		p.GIDs = append(p.GIDs, uint32(gid))
	}
	return p.OpaqueAuth()
}

func newCallCmd(g *globals) *cobra.Command {
	var (
		netidName string
		version   uint32
		indirect  bool
	)
	cmd := &cobra.Command{
		Use:   "call [-T udp|udp6] [--version 2|3|4] [--indirect] HOST PROG VERS PROC [ARGS]",
		Short: "Call a program through HOST's portmapper (CALLIT, BCAST, INDIRECT)",
		Long: `call asks HOST's portmapper to call procedure PROC of program PROG (a number
or a name from the RPC program database), version VERS, on its behalf,
with ARGS, the procedure's XDR-encoded arguments in hexadecimal (none when
left out), and prints where the program is and its encoded results:

  address 10.0.0.2.160.41     (version 2: port 41001)
  results 0000002a

The call is version 3's CALLIT by default, version 2's CALLIT or version
4's BCAST with --version, version 4's INDIRECT with --indirect. Remote
calls go over udp or udp6 only, and the portmapper makes them only when it
forwards remote calls (portmapd -r, rpcbind -r). CALLIT and BCAST answer
nothing when the call fails, so that every failure is a time-out
(--timeout); INDIRECT says why.

Exits 1 when the call fails.`,
		Args:         positional("HOST", "PROG", "VERS", "PROC", "[ARGS]"),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			prog, vers, err := g.parseProgVers(args[1], args[2])
			if err != nil {
				return err
			}
			proc, err := parseProc(args[3])
			if err != nil {
				return err
			}
			a := xdr.CallArgs{Prog: prog, Vers: vers, Proc: proc}
			if len(args) == 5 {
				if a.Args, err = hex.DecodeString(args[4]); err != nil {
					return &argError{args[4] + " is not hexadecimal arguments"}
				}
			}
			if netidName != string(netid.UDP) && netidName != string(netid.UDP6) {
				return &argError{fmt.Sprintf("netid %s cannot carry remote calls (use udp or udp6)", netidName)}
			}
			switch {
			case indirect && cmd.Flags().Changed("version") && version != xdr.RpcbVers4:
				return &argError{"--indirect is a version 4 call"}
			case version < xdr.PmapVers || version > xdr.RpcbVers4:
				return &argError{fmt.Sprintf("version %d has no remote calls (use 2, 3 or 4)", version)}
			}
			return g.remoteCall(cmd, args[0], netidName, version, indirect, a)
		},
	}
	cmd.Flags().StringVarP(&netidName, "netid", "T", "udp", "transport: udp or udp6")
	cmd.Flags().Uint32Var(&version, "version", xdr.RpcbVers, "portmapper version: 2 or 3 (CALLIT), 4 (BCAST)")
	cmd.Flags().BoolVar(&indirect, "indirect", false, "make version 4's INDIRECT, which reports failures")
	return cmd
}

// parseProc reads a procedure number.
func parseProc(arg string) (uint32, error) {
	n, err := parseVers(arg)
	if err != nil {
		return 0, &argError{arg + " is illegal procedure number"}
	}
	return n, nil
}

// remoteCall makes one remote call through host's portmapper and prints
// what it answered.
func (g *globals) remoteCall(cmd *cobra.Command, host, id string, vers uint32, indirect bool, a xdr.CallArgs) error {
	ctx := cmd.Context()
	pm, err := g.dialAnySource(ctx, id, g.portmapper(host))
	if err != nil {
		return reportFailure(cmd, statusOf(err).createError("portmapctl"))
	}
	defer pm.Close()
	out := cmd.OutOrStdout()
	_, err = timed(ctx, g, func(ctx context.Context) (struct{}, error) {
		switch {
		case indirect:
			r, err := pm.Indirect(ctx, a)
			if err == nil {
				printRemoteResult(out, "address "+r.Addr, r.Results)
			}
			return struct{}{}, err
		case vers == xdr.PmapVers:
			r, err := pm.PmapCallit(ctx, a)
			if err == nil {
				printRemoteResult(out, fmt.Sprintf("port %d", r.Port), r.Res)
			}
			return struct{}{}, err
		}
		r, err := pm.RpcbCallit(ctx, vers, a)
		if err == nil {
			printRemoteResult(out, "address "+r.Addr, r.Results)
		}
		return struct{}{}, err
	})
	if err != nil {
		return reportFailure(cmd, statusOf(err).callError("portmapctl"))
	}
	return nil
}

// dialAnySource returns a client that calls the portmapper at addr over
// network (udp or udp6) from a socket that takes answers from any source,
// as libtirpc's clnt_dg does: rpcbind answers a remote call from the
// socket it forwarded the call from, not from its port.
func (g *globals) dialAnySource(ctx context.Context, network, addr string) (*rpcbind.Client, error) {
	ctx, cancel := g.callContext(ctx)
	defer cancel()
	family := "ip4"
	if network == string(netid.UDP6) {
		family = "ip6"
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, family, hostOf(addr))
	if err != nil {
		return nil, err
	}
	port, err := net.LookupPort(network, portOf(addr))
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, err
	}
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(ips[0], uint16(port)))
	return rpcbind.NewClient(anySourceConn{conn, to}), nil
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// anySourceConn is a UDP socket that sends to one address and reads
// datagrams from any.
type anySourceConn struct {
	*net.UDPConn
	to *net.UDPAddr
}

func (c anySourceConn) Write(b []byte) (int, error) { return c.WriteToUDP(b, c.to) }

func (c anySourceConn) Read(b []byte) (int, error) {
	n, _, err := c.ReadFromUDP(b)
	return n, err
}

func (c anySourceConn) RemoteAddr() net.Addr { return c.to }

func printRemoteResult(w io.Writer, where string, results []byte) {
	fmt.Fprintf(w, "%s\nresults %s\n", where, hex.EncodeToString(results))
}
