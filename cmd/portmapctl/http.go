package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/httpmap"
)

// httpFlags choose how the HTTP face is reached: the local socket (which
// sees AF_UNIX paths and is the only place to register) or --http HOST.
type httpFlags struct {
	socket string
	http   string
}

func (f *httpFlags) add(cmd *cobra.Command, remote bool) {
	cmd.Flags().StringVar(&f.socket, "http-socket", httpmap.DefaultSocketPath, "portmapd's local HTTP socket")
	if remote {
		cmd.Flags().StringVar(&f.http, "http", "", "ask portmapd's HTTP face at HOST[:PORT] (port "+httpmap.DefaultHTTPPort+") instead of the local socket")
	}
}

func (f *httpFlags) client() *httpmap.Client {
	if f.http != "" {
		return httpmap.NewClient(f.http)
	}
	return httpmap.NewLocalClient(f.socket)
}

// newHTTPCmds returns the commands that use portmapd's named services.
func newHTTPCmds(g *globals) []*cobra.Command {
	return []*cobra.Command{newListCmd(g), newLookupCmd(g), newRegisterCmd(g), newRemovalsCmd(g), newWatchCmd(g)}
}

// reportHTTP prints err as the server's reason, or as where portmapd
// could not be reached and which flags look elsewhere, and fails the
// command.
func reportHTTP(cmd *cobra.Command, err error) error {
	var he *httpmap.Error
	var ue *httpmap.UnreachableError
	switch {
	case errors.As(err, &he):
		fmt.Fprintf(cmd.ErrOrStderr(), "portmapctl: %s\n", he.Message)
	case errors.As(err, &ue):
		hint := "--http-socket PATH looks at another socket"
		if !ue.Local {
			hint = "--http HOST[:PORT] asks another"
		} else if cmd.Flags().Lookup("http") != nil {
			hint += ", --http HOST asks over TCP"
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "portmapctl: %v; %s\n", ue, hint)
	default:
		fmt.Fprintf(cmd.ErrOrStderr(), "portmapctl: %v\n", err)
	}
	return failed
}

// askHTTP makes one call to portmapd's HTTP face within --timeout, and
// prints its answer with show or reports its failure.
func askHTTP[T any](cmd *cobra.Command, g *globals, call func(context.Context) (T, error), show func(io.Writer, T)) error {
	answer, err := timed(cmd.Context(), g, call)
	if err != nil {
		return reportHTTP(cmd, err)
	}
	show(cmd.OutOrStdout(), answer)
	return nil
}

func printInstances(w io.Writer, ins []httpmap.Instance) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tUSER\tPID\tPROTO\tPORT\tHEALTH\tPROGRAM")
	for _, in := range ins {
		user := in.User()
		if in.UserName != "" {
			user = in.UserName
		}
		if user == "" {
			user = "-"
		}
		pid := in.PIDString()
		if pid == "" {
			pid = "-"
		}
		prog := in.Prog
		if prog == "" && in.RPC != nil {
			prog = fmt.Sprintf("rpc %d v%d %s", in.RPC.Program, in.RPC.Version, in.RPC.Netid)
		}
		service := in.Service
		if u := httpmap.UnicodeName(service); u != "" {
			service = u + " (" + service + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", service, user, pid, in.Protocol, in.Port, in.Health, prog)
	}
	tw.Flush()
}

func newListCmd(g *globals) *cobra.Command {
	var hf httpFlags
	var f httpmap.Filter
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the services portmapd knows by name, RPC programs included",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return askHTTP(cmd, g, func(ctx context.Context) ([]httpmap.Instance, error) {
				return hf.client().List(ctx, f)
			}, printInstances)
		},
	}
	hf.add(cmd, true)
	cmd.Flags().StringArrayVar(&f.Services, "service", nil, "only this service name (repeatable)")
	cmd.Flags().StringArrayVar(&f.Users, "user", nil, "only this uid or user name (repeatable)")
	cmd.Flags().Int32SliceVar(&f.PIDs, "pid", nil, "only this process id (repeatable)")
	cmd.Flags().StringArrayVar(&f.Progs, "prog", nil, "only this executable, RPC program number or name (repeatable)")
	return cmd
}

func newRemovalsCmd(g *globals) *cobra.Command {
	var hf httpFlags
	cmd := &cobra.Command{
		Use:   "removals",
		Short: "Show the registrations portmapd removed because their service was gone, and how many",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return askHTTP(cmd, g, func(ctx context.Context) (removals, error) {
				events, n, err := hf.client().Removals(ctx)
				return removals{events, n}, err
			}, printRemovals)
		},
	}
	hf.add(cmd, true)
	return cmd
}

// removals is portmapd's answer to the removals command: the recent
// removals, and how many of each kind since it started.
type removals struct {
	events []httpmap.Removal
	counts httpmap.KindCounts
}

func printRemovals(w io.Writer, r removals) {
	if len(r.events) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tKIND\tREGISTRATION\tREASON")
		for _, ev := range r.events {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", ev.Time.Local().Format(time.DateTime), ev.Kind, ev.What, ev.Reason)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "removed since portmapd started: %d rpc, %d named\n", r.counts.RPC, r.counts.Named)
}

func newLookupCmd(g *globals) *cobra.Command {
	var hf httpFlags
	var owner string
	var fleet, passing bool
	cmd := &cobra.Command{
		Use:   "lookup [--owner UID|USER] [--fleet] NAME",
		Short: "Show where the service NAME listens (NAME.oncrpc.alt for RPC programs)",
		Long: `lookup shows every instance of NAME: all the processes, of any user, that
registered it. A name is exclusive only among the processes of one uid, so
any user may register a name another user holds; --owner shows only the
instances of one user (a uid, or a user name as the daemon's host knows
it), such as --owner root for a system service.

With --fleet, lookup asks across every host that publishes to the etcd
the daemon publishes to (portmapd --etcd), and shows each instance's host
and the addresses it published; --owner then takes a uid only, and no
pid is shown, as other hosts see none.`,
		Args: positional("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := hf.client().WithOwner(owner)
			if passing {
				c = c.WithPassing()
			}
			if fleet {
				return askHTTP(cmd, g, func(ctx context.Context) ([]httpmap.FleetInstance, error) {
					return c.LookupFleet(ctx, args[0])
				}, printFleetInstances)
			}
			return askHTTP(cmd, g, func(ctx context.Context) ([]httpmap.Instance, error) {
				return c.Lookup(ctx, args[0])
			}, printInstances)
		},
	}
	hf.add(cmd, true)
	cmd.Flags().StringVar(&owner, "owner", "", "only the instances of this uid or user name")
	cmd.Flags().BoolVar(&fleet, "fleet", false, "look NAME up on every host of the fleet (portmapd --etcd), not on this one alone")
	cmd.Flags().BoolVar(&passing, "passing", false, "only the instances whose health checks pass")
	return cmd
}

// printFleetInstances prints a fleet lookup's instances, each with its
// host and the host's addresses.
func printFleetInstances(w io.Writer, ins []httpmap.FleetInstance) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSERVICE\tPROTO\tPORT\tHEALTH\tADDRESSES")
	for _, in := range ins {
		addrs := strings.Join(in.Addresses, ",")
		if addrs == "" {
			addrs = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.Host, in.Service, in.Protocol, in.Port, in.Health, addrs)
	}
	tw.Flush()
}

func newRegisterCmd(g *globals) *cobra.Command {
	var hf httpFlags
	var spec httpmap.ServiceSpec
	var listen bool
	var maxChildren int
	cmd := &cobra.Command{
		Use:   "register NAME {PORT|PATH|--listen} [--exclusive] [--public] [--tcpmux [--muxhelp]] -- COMMAND [ARGS...]",
		Short: "Run COMMAND with NAME registered for exactly as long as it runs",
		Long: `register starts COMMAND, registers NAME at PORT (or the absolute AF_UNIX
PATH) on its behalf through portmapd's local socket, and waits for it.

The registration lasts as long as COMMAND runs, and no longer: it belongs
to COMMAND's process, and portmapd removes it the moment the process exits,
however it exits. So a COMMAND that is over before portmapd has
registered NAME for it (true, or any command that ends at once) leaves
nothing registered: portmapctl says so and exits with COMMAND's status,
as it does when COMMAND ends after being registered.

When portmapd is not running COMMAND is not started; when it refuses the
registration, the reason is printed, COMMAND is stopped and the exit
status is 1. Otherwise the exit status is COMMAND's (128+N when killed by
signal N). SIGINT, SIGTERM and SIGHUP are passed on to COMMAND.

--tcpmux also makes NAME reachable through portmapd's TCPMUX listener
(portmapd --tcpmux), which splices its clients to PORT; --muxhelp lists
NAME in that listener's HELP.

--listen, instead of a PORT or PATH, registers NAME for TCPMUX for as long
as portmapctl runs, and runs COMMAND once for each connection portmapd
hands over, with the connection as its standard input and output, as
inetd runs a "+" service: portmapd has answered the client "+", so
COMMAND's first byte is its protocol's. At most --max-children COMMANDs
run at once; further connections wait. SIGINT, SIGTERM or SIGHUP ends the
registration and is passed on to the COMMANDs running; portmapctl exits
0 once they are done.`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			before := args
			if dash >= 0 {
				before = args[:dash]
			}
			names := []string{"NAME", "PORT|PATH"}
			if listen {
				names = names[:1]
			}
			if err := positional(names...)(cmd, before); err != nil {
				return err
			}
			switch {
			case spec.MuxHelp && !spec.TCPMux && !listen:
				return usageError(cmd, "--muxhelp lists NAME in TCPMUX's HELP, so it needs --tcpmux")
			case maxChildren < 1:
				return usageError(cmd, "--max-children must be at least 1")
			case dash < 0:
				return usageError(cmd, "missing -- COMMAND")
			case len(args) == dash:
				return usageError(cmd, "missing COMMAND after --")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if listen {
				spec.Service = args[0]
				return listening{cmd: cmd, g: g, client: hf.client(), spec: spec, argv: args[1:], maxChildren: maxChildren}.run()
			}
			spec.Service, spec.Port = args[0], httpmap.Port(args[1])
			return runRegistered(cmd, g, hf.client(), spec, args[2:])
		},
	}
	hf.add(cmd, false)
	cmd.Flags().BoolVar(&spec.Exclusive, "exclusive", false, "no other process of this uid may hold NAME meanwhile")
	cmd.Flags().BoolVar(&spec.Public, "public", false, "advertise COMMAND's executable path")
	cmd.Flags().StringVar(&spec.Protocol, "protocol", "", "tcp or udp for a PORT (default tcp)")
	addCheckFlags(cmd, &spec)
	cmd.Flags().BoolVar(&spec.TCPMux, "tcpmux", false, "make NAME reachable through portmapd's TCPMUX listener")
	cmd.Flags().BoolVar(&spec.MuxHelp, "muxhelp", false, "list NAME in the TCPMUX listener's HELP")
	cmd.Flags().BoolVar(&listen, "listen", false, "take TCPMUX connections for NAME and run COMMAND on each, as its standard input and output")
	cmd.Flags().IntVar(&maxChildren, "max-children", 64, "with --listen, most COMMANDs running at once")
	return cmd
}

func runRegistered(cmd *cobra.Command, g *globals, c *httpmap.Client, spec httpmap.ServiceSpec, argv []string) error {
	return registered{cmd: cmd, g: g, client: c, spec: spec, argv: argv}.run()
}

// registered runs a command with a name registered for it.
type registered struct {
	cmd    *cobra.Command
	g      *globals
	client *httpmap.Client
	spec   httpmap.ServiceSpec
	argv   []string
	// started, when set, is called with the command's process once it
	// has started, before the registration: tests use it to make the
	// command end first.
	started func(*os.Process)
}

func (r registered) run() error {
	stderr := r.cmd.ErrOrStderr()
	// Do not start a command only to stop it: see first that portmapd
	// is there to register it.
	ctx, cancel := r.g.callContext(context.WithoutCancel(r.cmd.Context()))
	err := r.client.Ping(ctx)
	cancel()
	if err != nil {
		return reportHTTP(r.cmd, err)
	}
	child := exec.Command(r.argv[0], r.argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, r.cmd.OutOrStdout(), stderr
	// Signals are relayed below; the terminal's go to the child directly
	// too, as for any foreground command.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := child.Start(); err != nil {
		fmt.Fprintf(stderr, "portmapctl: %v\n", err)
		return failed
	}
	if r.started != nil {
		r.started(child.Process)
	}
	// The child cannot be reaped, so its pid cannot be reused, until Wait:
	// registering for it after Start names it even if it has exited.
	ctx, cancel = r.g.callContext(context.WithoutCancel(r.cmd.Context()))
	_, err = r.client.Register(ctx, httpmap.Registration{PID: int32(child.Process.Pid), Services: []httpmap.ServiceSpec{r.spec}})
	cancel()
	if err != nil {
		var he *httpmap.Error
		if errors.As(err, &he) && he.Status == http.StatusGone && exited(child.Process.Pid) {
			// Over before portmapd could look at it: nothing was
			// registered, and nothing is left to remove.
			werr := child.Wait()
			fmt.Fprintf(stderr, "portmapctl: %s ended (%s) before %s could be registered for it: nothing is registered\n",
				strings.Join(r.argv, " "), child.ProcessState, r.spec.Service)
			return exitStatus(r.cmd, r.argv, werr)
		}
		child.Process.Kill()
		child.Wait()
		return reportHTTP(r.cmd, err)
	}
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	for {
		select {
		case s := <-sigs:
			child.Process.Signal(s)
		case err := <-done:
			return exitStatus(r.cmd, r.argv, err)
		}
	}
}

// exited reports whether the child pid has exited (and is a zombie, not
// yet reaped), without reaping it.
func exited(pid int) bool {
	// With WNOHANG and nothing to report, Linux leaves the siginfo
	// zeroed; an exited child fills it in as SIGCHLD.
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err == nil && info.Signo == int32(unix.SIGCHLD)
}

// exitStatus is portmapctl's exit for the command's end, as Wait reported
// it: the command's status, or 128+N for signal N.
func exitStatus(cmd *cobra.Command, argv []string, err error) error {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &exitError{code: 128 + int(ws.Signal())}
		}
		return &exitError{code: ee.ExitCode()}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "portmapctl: %s: %v\n", strings.Join(argv, " "), err)
	return failed
}
