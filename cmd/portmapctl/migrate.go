package main

import (
	"os"
	"os/exec"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/internal/migrate"
)

// newMigrateCmd is "migrate from-rpcbind" and "migrate to-rpcbind".
func newMigrateCmd(g *globals) *cobra.Command {
	cfg := migrate.Config{}
	var plain bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Switch this host's portmapper from rpcbind to portmapd, or back, keeping every registration",
		Long: `migrate switches this host's portmapper between rpcbind and portmapd without
losing a registration, so that no RPC service (NFS, rpc.statd, NIS) needs a
restart: it checks that the daemons' options (RPCBIND_OPTIONS and OPTIONS in
/etc/rpcbind.conf, /etc/default/rpcbind, /etc/sysconfig/rpcbind) carry -w,
lists the registrations, stops the running portmapper (which with -w writes
rpcbind's warm-start files), starts the other (which reads them) and checks
that every registration is there. Run it as root.

On a host booted with systemd it disables one pair of units and enables the
other (systemctl disable --now rpcbind.socket rpcbind.service, systemctl
enable --now portmapd.socket portmapd.service, or the reverse). Without
systemd (or with --no-systemd) it stops the running daemon of this network
namespace with SIGTERM and starts the other's binary with those options.
--dry-run prints the steps and does nothing.`,
	}
	f := cmd.PersistentFlags()
	f.BoolVar(&cfg.DryRun, "dry-run", false, "print the steps without doing them")
	f.BoolVar(&plain, "no-systemd", false, "stop and start processes even on a host with systemd")
	f.StringArrayVar(&cfg.OptionsFiles, "options-file", migrate.DefaultOptionsFiles, "file whose RPCBIND_OPTIONS and OPTIONS the daemons take (repeatable)")
	f.StringVar(&cfg.Portmapd, "portmapd", defaultPortmapd(), "portmapd binary started without systemd")
	f.StringVar(&cfg.RPCBind, "rpcbind", defaultBinary("rpcbind", "/usr/sbin/rpcbind", "/sbin/rpcbind"), "rpcbind binary started without systemd")
	f.StringArrayVar(&cfg.PortmapdArgs, "portmapd-arg", nil, "option given to portmapd alone when started without systemd (repeatable), such as --log-file=PATH")
	f.StringVar(&cfg.WarmStartDir, "warm-start-dir", "", "where the warm-start files are written (default /run/rpcbind)")
	for _, to := range []struct{ use, daemon, short string }{
		{"from-rpcbind", migrate.Portmapd, "Stop rpcbind and start portmapd in its place"},
		{"to-rpcbind", migrate.RPCBind, "Stop portmapd and start rpcbind in its place"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   to.use,
			Short: to.short,
			Args:  cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				run := cfg
				run.To, run.Out, run.Socket = to.daemon, c.OutOrStdout(), g.socket
				run.Systemd = !plain && migrate.HasSystemd()
				return migrate.Run(c.Context(), run)
			},
		})
	}
	return cmd
}

// defaultPortmapd is the portmapd installed with this portmapctl
// (PREFIX/sbin beside PREFIX/bin), else the one on the PATH, else
// /usr/sbin/portmapd.
func defaultPortmapd() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "..", "sbin", "portmapd")
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p)
		}
		if p := filepath.Join(filepath.Dir(exe), "portmapd"); fileExists(p) {
			return p
		}
	}
	return defaultBinary("portmapd", "/usr/sbin/portmapd")
}

// defaultBinary is name on the PATH, else the first of paths that exists,
// else the first of paths.
func defaultBinary(name string, paths ...string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, p := range paths {
		if fileExists(p) {
			return p
		}
	}
	return paths[0]
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
