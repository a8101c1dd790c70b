package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/internal/buildinfo"
	"github.com/portmapd/portmapd/internal/clidoc"
	"github.com/portmapd/portmapd/internal/rpcent"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// Defaults.
const (
	defaultHost    = "127.0.0.1"
	defaultTimeout = 10 * time.Second // rpcinfo's timeout for a NULL call
)

// globals are the persistent flags and what is shared between commands of
// one invocation. Nothing here outlives the command tree it belongs to.
type globals struct {
	server  string
	port    uint16
	socket  string
	timeout time.Duration
	rpcFile string

	tableOnce sync.Once
	table     *rpcent.Table
	tableErr  error
}

// programs returns the /etc/rpc table, loaded on first use.
func (g *globals) programs() (*rpcent.Table, error) {
	g.tableOnce.Do(func() { g.table, g.tableErr = rpcent.Load(g.rpcFile) })
	return g.table, g.tableErr
}

// programName is getrpcbynumber's r_name, or "" when the program has no
// name or the table cannot be read.
func (g *globals) programName(prog uint32) string {
	t, err := g.programs()
	if err != nil {
		return ""
	}
	return t.Name(prog)
}

// portmapper returns the address of the portmapper on host: --server when
// set, else host's --port (111).
func (g *globals) portmapper(host string) string {
	if g.server != "" {
		return g.server
	}
	port := g.port
	if port == 0 {
		port = xdr.PmapPort
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// callContext bounds one RPC call by --timeout.
func (g *globals) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if g.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, g.timeout)
}

// timed makes one call bounded by --timeout.
func timed[T any](ctx context.Context, g *globals, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := g.callContext(ctx)
	defer cancel()
	return call(ctx)
}

// newRootCmd builds the command tree. Each subcommand comes from its own
// constructor; adding a command family is one AddCommand line here.
func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "portmapctl",
		Short: "Query and change a portmapper (portmapd or rpcbind)",
		Long: `portmapctl talks to a portmapper (portmapd or rpcbind) with the RPC
protocol. Its output is rpcinfo's, byte for byte, where rpcinfo has the
same view; error messages are rpcinfo's, prefixed "portmapctl:" instead of
"rpcinfo:".

Exit status: 0 on success, 1 on any failure (as rpcinfo), 130 when
interrupted.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "",
		"portmapper address as host:port (default HOST:111, or 127.0.0.1:111 when no HOST is given)")
	pf.Uint16Var(&g.port, "port", xdr.PmapPort, "port of the portmapper on HOST")
	pf.StringVar(&g.socket, "socket", rpcbind.DefaultLocalSocket,
		"the portmapper's local socket (tried first as the abstract socket of that name), for the views without a HOST and for v3/v4 set and unset")
	pf.DurationVar(&g.timeout, "timeout", defaultTimeout, "time allowed for each RPC call, retransmissions included")
	pf.StringVar(&g.rpcFile, "rpc-file", rpcent.DefaultPath, "RPC program names database")

	root.AddCommand(
		newDumpCmd(g),
		newGetportCmd(g),
		newPingCmd(g),
		newSetCmd(g),
		newUnsetCmd(g),
		newTableCmd(g),
		newSummaryCmd(g),
		newStatsCmd(g),
		newAddrlistCmd(g),
		newDeleteCmd(g),
		newBroadcastCmd(g),
		newCallCmd(g),
	)
	root.AddCommand(newHTTPCmds(g)...)
	root.AddCommand(newMigrateCmd(g))
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version and the build information the binary carries",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { buildinfo.Write(cmd.OutOrStdout(), "portmapctl") },
	}, clidoc.Command(root, "1", "User Commands", buildinfo.Version))
	return root
}

// An exitError ends the program with a status after the command has
// reported the failure itself, as rpcinfo does.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// failed is the error of a command that has printed its own message.
var failed = &exitError{code: 1}

// run executes portmapctl with args, writing to stdout and stderr, and
// returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var ee *exitError
	var ae *argError
	var nf *notFoundError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &nf):
		fmt.Fprintf(stderr, "portmapctl: %v\n", nf)
		return 1
	case errors.As(err, &ae):
		fmt.Fprintf(stderr, "portmapctl: %v\n", ae)
		return 1
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "portmapctl: interrupted")
		return 130
	}
	fmt.Fprintf(stderr, "portmapctl: %v\n", err)
	fmt.Fprintln(stderr, "Run 'portmapctl --help' for usage.")
	return 1
}
