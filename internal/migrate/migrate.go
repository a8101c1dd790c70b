// Package migrate switches a host's portmapper from rpcbind to portmapd
// and back without losing a registration, so that no RPC service (NFS,
// rpc.statd, NIS) has to be restarted: it carries out the steps README's
// "Switching a host from rpcbind to portmapd, and back" lists.
//
// Both portmappers keep their registrations across a stop and a start
// with -w: the one stopped writes rpcbind's warm-start files
// (/run/rpcbind/rpcbind.xdr and portmap.xdr), the one started reads
// them. So a switch is: check that the options the daemons read carry -w,
// list the registrations, stop the running portmapper, start the other,
// and check that every registration is still there.
//
// On a host booted with systemd, the portmappers are its units, and a
// switch disables one pair of units and enables the other, as the README
// says: this is the path a real host takes. Without systemd (a host
// without it, or a test's private namespace), the daemons are processes:
// the running one is found among the processes of this network namespace,
// stopped with SIGTERM, and the other is started with the options the
// units would give it (RPCBIND_OPTIONS and OPTIONS from rpcbind's option
// files). The tests exercise that plain path; the systemd path differs
// only in how a daemon is stopped and started.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portmapd/portmapd/registry/warmstart"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// DefaultOptionsFiles are the files whose RPCBIND_OPTIONS and OPTIONS
// rpcbind's units and portmapd's read, in their order.
var DefaultOptionsFiles = []string{"/etc/rpcbind.conf", "/etc/default/rpcbind", "/etc/sysconfig/rpcbind"}

// Daemons a switch goes between.
const (
	RPCBind  = "rpcbind"
	Portmapd = "portmapd"
)

// Config says how to switch.
type Config struct {
	// To is the portmapper to switch to: Portmapd or RPCBind.
	To string
	// DryRun prints the steps without doing anything.
	DryRun bool
	// Out receives the steps, one line each, and the outcome.
	Out io.Writer
	// Systemd switches units with systemctl; otherwise processes are
	// stopped and started. HasSystemd says which a host wants.
	Systemd bool
	// OptionsFiles are read for the daemons' options
	// (DefaultOptionsFiles when nil).
	OptionsFiles []string
	// Portmapd and RPCBind are the binaries started without systemd.
	Portmapd, RPCBind string
	// PortmapdArgs are added to portmapd's options without systemd,
	// for what only portmapd understands (rpcbind refuses options it
	// does not know, and reads the same files).
	PortmapdArgs []string
	// Socket is the portmapper's local socket, for listing
	// registrations; rpcbind.DefaultLocalSocket when empty.
	Socket string
	// WarmStartDir is where the warm-start files are written;
	// warmstart.DefaultDir when empty.
	WarmStartDir string
	// Timeout bounds each wait (a daemon's exit, its start);
	// 30s when 0.
	Timeout time.Duration
}

// HasSystemd reports whether the host was booted with systemd, as
// sd_booted(3) tells: /run/systemd/system exists.
func HasSystemd() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

func (c *Config) setDefaults() {
	if c.OptionsFiles == nil {
		c.OptionsFiles = DefaultOptionsFiles
	}
	if c.Socket == "" {
		c.Socket = rpcbind.DefaultLocalSocket
	}
	if c.WarmStartDir == "" {
		c.WarmStartDir = warmstart.DefaultDir
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// A step is one thing a switch does.
type step struct {
	what string
	do   func(context.Context) error
}

// A plan is the steps of a switch, and what it found before them.
type plan struct {
	cfg   Config
	from  string
	steps []step
	// before are the registrations listed before the switch; nil when
	// no portmapper answered.
	before []xdr.RPCB
}

// Run switches the host's portmapper to cfg.To, or with DryRun says how
// it would.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	p := &plan{cfg: cfg, from: RPCBind}
	switch cfg.To {
	case Portmapd:
	case RPCBind:
		p.from = Portmapd
	default:
		return fmt.Errorf("migrate: no such portmapper %q (%s or %s)", cfg.To, Portmapd, RPCBind)
	}
	opts, err := readOptions(cfg.OptionsFiles)
	if err != nil {
		return err
	}
	if !hasWarmStart(opts) {
		return fmt.Errorf("migrate: the options in %s do not carry -w, so the registrations would not survive the switch: add -w to OPTIONS (Debian's default: OPTIONS=\"-w\")", strings.Join(cfg.OptionsFiles, ", "))
	}
	if cfg.Systemd {
		err = p.planUnits()
	} else {
		err = p.planProcesses(opts)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "switching from %s to %s (%s):\n", p.from, cfg.To, map[bool]string{true: "systemd units", false: "processes, no systemd"}[cfg.Systemd])
	for i, s := range p.steps {
		fmt.Fprintf(cfg.Out, "%d. %s\n", i+1, s.what)
		if cfg.DryRun {
			continue
		}
		if err := s.do(ctx); err != nil {
			return fmt.Errorf("migrate: %s: %w", s.what, err)
		}
	}
	if cfg.DryRun {
		fmt.Fprintln(cfg.Out, "dry run: nothing was done")
	}
	return nil
}

// listStep lists the registrations before the switch, so that the last
// step can check that none was lost.
func (p *plan) listStep() step {
	return step{"list the registrations over " + p.cfg.Socket, func(ctx context.Context) error {
		list, err := p.dump(ctx)
		if err != nil {
			return fmt.Errorf("%s does not answer: %w", p.from, err)
		}
		p.before = list
		return nil
	}}
}

// checkStep waits for the new portmapper to answer and checks that it
// holds every registration listed before, but the portmapper's own.
func (p *plan) checkStep() step {
	return step{"wait for " + p.cfg.To + " to answer, and check that every registration listed before is there", func(ctx context.Context) error {
		var after []xdr.RPCB
		err := p.poll(ctx, func() error {
			var err error
			after, err = p.dump(ctx)
			return err
		})
		if err != nil {
			return fmt.Errorf("%s does not answer: %w", p.cfg.To, err)
		}
		var lost []string
		kept := 0
		for _, r := range p.before {
			if r.Prog == xdr.PmapProg {
				continue
			}
			if !slices.ContainsFunc(after, func(a xdr.RPCB) bool { return sameRegistration(a, r) }) {
				lost = append(lost, fmt.Sprintf("%d %d %s %s %s", r.Prog, r.Vers, r.Netid, r.Addr, r.Owner))
			} else {
				kept++
			}
		}
		if len(lost) > 0 {
			return fmt.Errorf("registrations lost: %s", strings.Join(lost, "; "))
		}
		fmt.Fprintf(p.cfg.Out, "%s serves; all %d registrations kept\n", p.cfg.To, kept)
		return nil
	}}
}

func sameRegistration(a, b xdr.RPCB) bool {
	return a.Prog == b.Prog && a.Vers == b.Vers && strings.EqualFold(a.Netid, b.Netid) && a.Addr == b.Addr && a.Owner == b.Owner
}

// dump lists the registrations over the local socket (v3 DUMP).
func (p *plan) dump(ctx context.Context) ([]xdr.RPCB, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := rpcbind.DialLocal(ctx, p.cfg.Socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.RpcbDump(ctx, xdr.RpcbVers)
}

// poll calls try until it succeeds or the timeout passes.
func (p *plan) poll(ctx context.Context, try func() error) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	for {
		err := try()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// planUnits plans the switch of systemd units: the README's commands.
func (p *plan) planUnits() error {
	units := map[string][]string{
		RPCBind:  {"rpcbind.socket", "rpcbind.service"},
		Portmapd: {"portmapd.socket", "portmapd.service"},
	}
	stop := units[p.from]
	if p.from == Portmapd {
		// The service first, so that the socket does not start it
		// again.
		stop = []string{"portmapd.service", "portmapd.socket"}
	}
	p.steps = append(p.steps, p.listStep(),
		systemctl(append([]string{"disable", "--now"}, stop...),
			"stop "+p.from+" (with -w it writes "+filepath.Join(p.cfg.WarmStartDir, warmstart.RpcbindFile)+") and keep it from starting at boot"),
		systemctl(append([]string{"enable", "--now"}, units[p.cfg.To]...),
			"start "+p.cfg.To+" (with -w it reads the warm-start files) and at every boot"),
		p.checkStep())
	return nil
}

func systemctl(args []string, why string) step {
	return step{"systemctl " + strings.Join(args, " ") + ": " + why, func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, "systemctl", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}}
}

// planProcesses plans the switch of processes: find the running
// portmapper, stop it, start the other with the options files' options.
func (p *plan) planProcesses(opts []string) error {
	pid, cmdline, err := findDaemon(p.from)
	if err != nil {
		return err
	}
	if pid == 0 {
		return fmt.Errorf("migrate: no %s runs in this network namespace; start the one you want directly", p.from)
	}
	if !hasWarmStart(cmdline[1:]) {
		return fmt.Errorf("migrate: %s (pid %d) runs without -w (%s), so it would not write its registrations when stopped; restart it with -w first", p.from, pid, strings.Join(cmdline, " "))
	}
	bin, args := p.cfg.RPCBind, opts
	if p.cfg.To == Portmapd {
		bin, args = p.cfg.Portmapd, append(slices.Clone(opts), p.cfg.PortmapdArgs...)
	}
	if bin == "" {
		return fmt.Errorf("migrate: no %s binary given", p.cfg.To)
	}
	argv := append([]string{bin}, args...)
	p.steps = append(p.steps, p.listStep(),
		step{fmt.Sprintf("stop %s (pid %d) with SIGTERM; with -w it writes %s", p.from, pid, filepath.Join(p.cfg.WarmStartDir, warmstart.RpcbindFile)),
			func(ctx context.Context) error { return p.stop(ctx, pid) }},
		step{"start " + strings.Join(argv, " ") + " (it detaches once it serves, and with -w reads the warm-start files)",
			func(ctx context.Context) error { return p.start(ctx, argv) }},
		p.checkStep())
	return nil
}

// stop sends SIGTERM to pid and waits for it to exit, then for the
// warm-start files it wrote.
func (p *plan) stop(ctx context.Context, pid int) error {
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	err := p.poll(ctx, func() error {
		if err := syscall.Kill(pid, 0); err == nil {
			return fmt.Errorf("pid %d still runs", pid)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return p.poll(ctx, func() error {
		_, err := os.Stat(filepath.Join(p.cfg.WarmStartDir, warmstart.RpcbindFile))
		return err
	})
}

// start runs argv, which detaches (both portmappers do without -f) and
// exits once serving, or fails saying why.
func (p *plan) start(ctx context.Context, argv []string) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// findDaemon returns the pid and command line of the process of name
// (its executable's base name) in this network namespace, or 0.
func findDaemon(name string) (int, []string, error) {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return 0, nil, fmt.Errorf("migrate: %w", err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, fmt.Errorf("migrate: %w", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		dir := "/proc/" + e.Name()
		exe, err := os.Readlink(dir + "/exe")
		if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != name {
			continue
		}
		if ns, err := os.Readlink(dir + "/ns/net"); err != nil || ns != self {
			continue
		}
		raw, err := os.ReadFile(dir + "/cmdline")
		if err != nil {
			continue
		}
		return pid, strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00"), nil
	}
	return 0, nil, nil
}

// hasWarmStart reports whether args hold -w, alone, in a group of
// letters (-fw) or as --warm-start.
func hasWarmStart(args []string) bool {
	for _, a := range args {
		switch {
		case a == "--warm-start" || a == "--warm-start=true":
			return true
		case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.ContainsRune(a[1:], 'w') && !strings.ContainsAny(a[1:], "h="):
			return true
		}
	}
	return false
}

// readOptions reads RPCBIND_OPTIONS and OPTIONS from the files that
// exist, as systemd's EnvironmentFile reads them (later files override
// earlier ones), and splits them into words as the units' $VAR does.
func readOptions(files []string) ([]string, error) {
	vars := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' || line[0] == ';' {
				continue
			}
			k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
				v = v[1 : len(v)-1]
			}
			vars[strings.TrimSpace(k)] = v
		}
	}
	return append(strings.Fields(vars["RPCBIND_OPTIONS"]), strings.Fields(vars["OPTIONS"])...), nil
}
