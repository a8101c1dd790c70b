package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/httpmap"
)

func newWatchCmd(g *globals) *cobra.Command {
	var hf httpFlags
	var since uint64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "watch [NAME]",
		Short: "Print changes to the services portmapd knows, or to NAME's, as they happen",
		Long: `watch follows portmapd's event stream and prints one line for each
service added, removed (with the reason) or whose health changed, until
interrupted. With NAME, only NAME's changes (NAME.oncrpc.alt for an RPC
program). When portmapd restarts, watch resumes after the last change it
printed, so that none is missed or printed twice; when portmapd no longer
has the changes to resume with, it prints a reset line: list again.

--since INDEX starts after that index (the X-Portmap-Index of a listing)
instead of now; --json prints each event as portmapd sends it.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var f httpmap.Filter
			if len(args) == 1 {
				f.Services = args
			}
			out := cmd.OutOrStdout()
			show := printEvent
			if asJSON {
				show = printEventJSON
			}
			err := hf.client().Watch(cmd.Context(), since, f, func(ev httpmap.Event) error { return show(out, ev) })
			if err != nil {
				return reportHTTP(cmd, err)
			}
			return nil
		},
	}
	hf.add(cmd, true)
	cmd.Flags().Uint64Var(&since, "since", 0, "start after this index instead of now")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print each event as JSON, one a line")
	return cmd
}

// printEvent prints one event as a line: its time, index, type, and the
// instance it concerns with its health, and the reason of a removal or a
// change of health.
func printEvent(w io.Writer, ev httpmap.Event) error {
	when := ev.Time.Local().Format(time.DateTime)
	if ev.Type == httpmap.EventReset {
		_, err := fmt.Fprintf(w, "%s  %-8d %-8s %s\n", when, ev.Index, ev.Type, ev.Reason)
		return err
	}
	in := ev.Instances[0]
	// An RPC program is shown by its name where /etc/rpc has one.
	if len(ev.Instances) > 1 && in.RPC != nil {
		in = ev.Instances[1]
	}
	what := fmt.Sprintf("%s %s %s", in.Service, in.Protocol, in.Port)
	if in.RPC != nil {
		what = fmt.Sprintf("%s v%d %s %s", in.Service, in.RPC.Version, in.RPC.Netid, in.Port)
	}
	if pid := in.PIDString(); pid != "" {
		what += " pid " + pid
	}
	line := fmt.Sprintf("%s  %-8d %-8s %s  %s", when, ev.Index, ev.Type, what, in.Health)
	if ev.Reason != "" {
		line += "  (" + ev.Reason + ")"
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func printEventJSON(w io.Writer, ev httpmap.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// addCheckFlags adds the flags of the checks portmapd runs on a
// registration; spec.Checks is set when any is given.
func addCheckFlags(cmd *cobra.Command, spec *httpmap.ServiceSpec) {
	var c httpmap.CheckSpec
	f := cmd.Flags()
	f.BoolVar(&c.TCP, "check-tcp", false, "portmapd checks that PORT (or PATH) accepts a connection")
	f.StringVar(&c.HTTP, "check-http", "", "portmapd checks that GET of this path there answers 2xx")
	f.StringVar(&c.RPC, "check-rpc", "", "portmapd checks that program PROG[/VERS] there answers a NULL call")
	f.StringVar(&c.Interval, "check-interval", "", "time between checks (portmapd's --check-interval by default)")
	f.StringVar(&c.DeregisterAfter, "deregister-after", "", "portmapd removes the registration once critical this long")
	prev := cmd.PreRunE
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if c != (httpmap.CheckSpec{}) {
			spec.Checks = &c
		}
		if prev != nil {
			return prev(cmd, args)
		}
		return nil
	}
}
