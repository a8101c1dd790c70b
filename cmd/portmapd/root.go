package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/fleet"
	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/buildinfo"
	"github.com/portmapd/portmapd/internal/clidoc"
	"github.com/portmapd/portmapd/internal/daemon"
	"github.com/portmapd/portmapd/internal/rpcent"
	"github.com/portmapd/portmapd/internal/systemd"
)

// A commandLine is what portmapd's flags say: the daemon's Config, to
// whose fields most flags are bound, and the flags that are no field of
// it as they stand.
type commandLine struct {
	cfg daemon.Config

	debug      bool
	foreground bool
	showConfig bool
	logFile    string

	// gcPercent is the collector's GOGC; gcPercentSet says the flag
	// was given, which GOGC in the environment does not override.
	gcPercent    int
	gcPercentSet bool

	// The values of --trusted-proxy, --metrics, --etcd and
	// --rmtcall-deny, which config reads into cfg.
	trustedProxies []string
	metrics        []string
	etcdEndpoints  []string
	rmtcallDeny    []string
}

// A usageError is a command line rpcbind would have refused.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	prog := filepath.Base(os.Args[0])
	cmd := newRootCmd(prog, stdout, stderr)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	var ue usageError
	var reported *daemon.ReportedError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &reported):
		// Already said: by the process that detached this one, or
		// in the log.
	case errors.As(err, &ue):
		// rpcbind's getopt error and usage line, under the name this
		// program was started as (so "rpcbind" when installed as it).
		fmt.Fprintf(stderr, "%s: %v\nusage: %s [-adfhilrsvw]\n", prog, ue.err, prog)
	default:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	}
	return 1
}

func newRootCmd(prog string, stdout, stderr io.Writer) *cobra.Command {
	c := commandLine{cfg: daemon.DefaultConfig()}
	cfg := &c.cfg
	cmd := &cobra.Command{
		Use:   prog + " [-adfhilrsvw]",
		Short: "ONC RPC portmapper, a drop-in replacement for rpcbind",
		Long: `portmapd maps ONC RPC program numbers to the addresses their services
listen on. It answers portmap version 2 and rpcbind versions 3 and 4 on UDP
and TCP port 111 and on the local socket /run/rpcbind.sock, like rpcbind.`,
		Args:          func(_ *cobra.Command, args []string) error { return noArgs(args) },
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.showConfig {
				printConfig(stderr, prog, c.cfg)
				return nil
			}
			c.gcPercentSet = cmd.Flags().Changed("gc-percent")
			return serve(cmd.Context(), c, stderr)
		},
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	// Completion scripts are generated with the man pages (gendocs), not
	// offered as a command of the daemon.
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "print the version and the build information the binary carries",
		Long: `version prints portmapd's version, then what the Go toolchain recorded in
the binary (as "go version -m" prints it): the Go version, the module and
each dependency with its version, and the build settings. -v prints
rpcbind's two lines instead.`,
		Args: cobra.NoArgs,
		Run:  func(cmd *cobra.Command, _ []string) { buildinfo.Write(cmd.OutOrStdout(), prog) },
	}, clidoc.Command(cmd, "8", "System Manager's Manual", buildinfo.Version))
	f := cmd.Flags()
	f.SortFlags = false
	// rpcbind's options, with its meanings.
	f.BoolVarP(&cfg.AbortOnError, "abort", "a", cfg.AbortOnError, "with -d, crash on an internal error instead of answering SYSTEM_ERR")
	f.BoolVarP(&c.debug, "debug", "d", false, "log debugging messages and stay in the foreground")
	f.BoolVarP(&c.foreground, "foreground", "f", false, "stay in the foreground instead of detaching")
	f.StringArrayVarP(&cfg.UDPAddrs, "host", "h", cfg.UDPAddrs, "serve UDP only on this address (repeatable; 127.0.0.1 and ::1 are always added; TCP is unaffected)")
	f.BoolVarP(&cfg.Insecure, "insecure", "i", cfg.Insecure, "accept SET and UNSET from any host, not only from this one")
	f.BoolVarP(&cfg.LogCalls, "log-calls", "l", cfg.LogCalls, "log every call")
	f.BoolVarP(&cfg.RemoteCalls, "enable-rmtcalls", "r", cfg.RemoteCalls, "forward remote calls (CALLIT, BCAST, INDIRECT) to the services they name, as rpcbind -r")
	f.BoolVarP(&cfg.DropRoot, "run-as-daemon", "s", cfg.DropRoot, "become the --user user once the sockets are open")
	f.BoolVarP(&c.showConfig, "version", "v", false, "print the version and configuration, then exit")
	f.BoolVarP(&cfg.WarmStart, "warm-start", "w", cfg.WarmStart, "read rpcbind's warm-start files at start and write them on exit, to switch from rpcbind and back")
	// Long options for everything rpcbind has no letter for.
	f.StringVar(&cfg.User, "user", cfg.User, "user that -s runs as (default: the one rpcbind runs as here, _rpc or rpc, else daemon)")
	f.IntVar(&cfg.Port, "port", cfg.Port, "UDP and TCP port to serve")
	f.StringVar(&cfg.LockFile, "lock-file", cfg.LockFile, `lock file that keeps a second portmapper from starting; "off" disables`)
	f.StringVar(&cfg.Socket, "socket", cfg.Socket, `local socket serving versions 2, 3 and 4; "off" disables`)
	f.BoolVar(&cfg.AbstractSocket, "abstract-socket", cfg.AbstractSocket, "also serve the local socket's name in the abstract namespace")
	f.IntVar(&cfg.MaxMessage, "max-message", cfg.MaxMessage, "largest call accepted, in bytes")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close TCP connections idle for this long")
	f.DurationVar(&cfg.RecordTimeout, "record-timeout", cfg.RecordTimeout, "close TCP connections that have not sent a whole call this long after connecting, or take this long to finish one or to take a reply")
	f.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "most open TCP connections per listener; when full, the one idle longest is closed")
	f.IntVar(&cfg.MaxConnsPerSource, "max-conns-per-source", cfg.MaxConnsPerSource, "most open TCP connections per listener from one address (IPv6: one /64); loopback is not capped")
	f.IntVar(&cfg.UDPReplyRate, "udp-reply-rate", cfg.UDPReplyRate, "bytes per second by which UDP replies to one remote address may exceed its calls (0: no limit)")
	f.IntVar(&cfg.UDPReplyBurst, "udp-reply-burst", cfg.UDPReplyBurst, "bytes of such excess one remote address may use at once (at least --max-message)")
	f.IntVar(&cfg.FDReserve, "fd-reserve", cfg.FDReserve, "file descriptors that TCP connections leave for the local sockets and the daemon itself")
	f.Float64Var(&cfg.RemoteCallLimits.Rate, "rmtcall-rate", cfg.RemoteCallLimits.Rate, "with -r, remote calls a second one remote address (IPv6: one /64) may have forwarded (0: no limit)")
	f.IntVar(&cfg.RemoteCallLimits.Burst, "rmtcall-burst", cfg.RemoteCallLimits.Burst, "with -r, remote calls one remote address may have forwarded at once")
	f.IntVar(&cfg.RemoteCallLimits.MaxPending, "rmtcall-max-pending", cfg.RemoteCallLimits.MaxPending, "with -r, most forwarded calls waiting for their answers; past it the one waiting longest is given up")
	f.DurationVar(&cfg.RemoteCallLimits.Timeout, "rmtcall-timeout", cfg.RemoteCallLimits.Timeout, "with -r, how long a forwarded call waits for its answer")
	f.IntVar(&cfg.RemoteCallLimits.ReplyRatio, "rmtcall-reply-ratio", cfg.RemoteCallLimits.ReplyRatio, "with -r, how many times larger than its call an answer relayed to a remote address may be (0: no limit)")
	f.StringSliceVar(&c.rmtcallDeny, "rmtcall-deny", programNumbers(cfg.RemoteCallLimits.Deny), `with -r, programs (numbers or names from /etc/rpc, comma-separated) never called on a caller's behalf, any procedure but NULL, besides those rpcbind refuses; "none" refuses rpcbind's alone`)
	f.StringVar(&cfg.HTTP.HTTPAddr, "http", cfg.HTTP.HTTPAddr, `HTTP listing address; "off" disables`)
	f.StringVar(&cfg.HTTP.SocketPath, "http-socket", cfg.HTTP.SocketPath, `local HTTP socket where services register by name (mode 0666); "off" disables`)
	f.StringArrayVar(&c.trustedProxies, "trusted-proxy", nil, "CIDR of a reverse proxy whose X-Forwarded-For is believed (repeatable)")
	f.IntVar(&cfg.HTTP.MaxConns, "http-max-conns", cfg.HTTP.MaxConns, "most open HTTP connections over TCP (--http and port 111 together), and on the HTTP socket; when full, the one idle longest is closed")
	f.IntVar(&cfg.HTTP.MaxConnsPerSource, "http-max-conns-per-source", cfg.HTTP.MaxConnsPerSource, "most open HTTP connections over TCP from one address (IPv6: one /64); loopback and --trusted-proxy addresses are not capped")
	f.DurationVar(&cfg.HTTP.IdleTimeout, "http-idle-timeout", cfg.HTTP.IdleTimeout, "close HTTP keep-alive connections idle for this long")
	f.StringVar(&cfg.TCPMux.Addr, "tcpmux", cfg.TCPMux.Addr, `TCPMUX (RFC 1078) address, such as :1, where clients reach services registered with tcpmux by name; "off" disables`)
	f.IntVar(&cfg.TCPMux.MaxConns, "tcpmux-max-conns", cfg.TCPMux.MaxConns, "most open TCPMUX connections; when full, the one waiting longest for its name is closed")
	f.IntVar(&cfg.TCPMux.MaxConnsPerSource, "tcpmux-max-conns-per-source", cfg.TCPMux.MaxConnsPerSource, "most open TCPMUX connections from one address (IPv6: one /64); loopback is not capped")
	f.DurationVar(&cfg.TCPMux.Timeout, "tcpmux-timeout", cfg.TCPMux.Timeout, "time a TCPMUX client has to send a service name, and portmapd to reach the service")
	f.DurationVar(&cfg.TCPMux.IdleTimeout, "tcpmux-idle-timeout", cfg.TCPMux.IdleTimeout, "close a spliced TCPMUX connection over which nothing passes either way for this long")
	f.IntVar(&cfg.MaxNamedPerProcess, "max-per-process", cfg.MaxNamedPerProcess, "named services one process may hold")
	f.IntVar(&cfg.MaxRPCPerUID, "max-rpc-per-uid", cfg.MaxRPCPerUID, "RPC registrations one uid may hold (root is not capped; unprivileged loopback UDP and TCP callers share one count)")
	f.IntVar(&cfg.MaxRPCBytesPerUID, "max-rpc-bytes-per-uid", cfg.MaxRPCBytesPerUID, "bytes of netid and address one uid's RPC registrations may hold")
	f.IntVar(&cfg.MaxProcessesPerUID, "max-processes-per-uid", cfg.MaxProcessesPerUID, "processes of one uid other than root that may hold named services")
	f.IntVar(&cfg.MaxPidfds, "max-pidfds", cfg.MaxPidfds, "processes with named services watched through a descriptor each; the others are polled (0: a quarter of RLIMIT_NOFILE)")
	f.DurationVar(&cfg.ProcPollInterval, "proc-poll-interval", cfg.ProcPollInterval, "how often processes watched without a descriptor are checked")
	f.StringVar(&cfg.StateDir, "state-dir", cfg.StateDir, `directory where registrations are saved so that they survive a restart of the daemon (owner-only); "off" disables`)
	f.Int64Var(&cfg.StateCompactBytes, "state-compact-bytes", cfg.StateCompactBytes, "journal size in bytes that triggers rewriting the saved state as a snapshot, once the journal is also larger than the last snapshot")
	f.StringVar(&cfg.WarmStartDir, "warm-start-dir", cfg.WarmStartDir, "where -w reads and writes rpcbind's rpcbind.xdr and portmap.xdr")
	f.DurationVar(&cfg.PruneGrace, "prune-grace", cfg.PruneGrace, "how long after registering a service may take to bind its port before its registration can be pruned")
	f.DurationVar(&cfg.PruneInterval, "prune-interval", cfg.PruneInterval, "how often registrations of services that are gone are looked for")
	f.BoolVar(&cfg.NoPrune, "no-prune", cfg.NoPrune, "never remove registrations whose service is gone")
	f.StringVar(&c.logFile, "log-file", daemon.DefaultLogFile, "where portmapd logs once detached (without -f) if there is no syslog (/dev/log)")
	f.StringVar(&cfg.DNSAddr, "dns", cfg.DNSAddr, `DNS address (UDP and TCP) answering SRV and A/AAAA for every name with a port, e.g. 127.0.0.1:8553; "off" disables`)
	f.IntVar(&cfg.WatchHistory, "watch-history", cfg.WatchHistory, "latest changes kept, and saved, for event streams to resume from")
	f.IntVar(&cfg.HTTP.MaxWatchers, "watch-max", cfg.HTTP.MaxWatchers, "most blocking queries and event streams at once")
	f.IntVar(&cfg.HTTP.MaxWatchersPerSource, "watch-max-per-source", cfg.HTTP.MaxWatchersPerSource, "most blocking queries and event streams from one address (IPv6: one /64); loopback, the local socket and --trusted-proxy addresses are not capped")
	f.DurationVar(&cfg.HTTP.MaxWait, "watch-max-wait", cfg.HTTP.MaxWait, "longest a blocking query waits (?wait= longer is cut to it, and none waits this long)")
	f.IntVar(&cfg.Checks.Concurrency, "check-concurrency", cfg.Checks.Concurrency, "most health checks running at once")
	f.DurationVar(&cfg.Checks.Timeout, "check-timeout", cfg.Checks.Timeout, "longest a health check may take, unless its registration asks for less")
	f.DurationVar(&cfg.Checks.Interval, "check-interval", cfg.Checks.Interval, "time between active health checks of a registration that gives none")
	f.DurationVar(&cfg.Checks.RPCInterval, "rpc-check-interval", cfg.Checks.RPCInterval, "check every RPC registration on this host with a NULL call this often (0: never)")
	f.IntVar(&c.gcPercent, "gc-percent", defaultGCPercent, "heap growth, in percent of the live heap, that starts a garbage collection (Go's GOGC, which overrides the default when set)")
	f.IntVar(&cfg.LogBurst, "log-burst", cfg.LogBurst, "audit lines (and, with -l, call lines) one source (a uid, an address) may cause at once")
	f.IntVar(&cfg.LogPerMinute, "log-rate", cfg.LogPerMinute, "audit lines (and, with -l, call lines) one source may cause a minute after the burst; the rest are counted in one line")
	f.StringSliceVar(&c.etcdEndpoints, "etcd", nil, `etcd client URLs (comma-separated or repeated) to publish this host's registrations to and look services up across the fleet in; none: off`)
	f.StringVar(&cfg.Fleet.Prefix, "etcd-prefix", cfg.Fleet.Prefix, "etcd key prefix of the fleet's keys")
	f.StringVar(&cfg.Fleet.Host, "etcd-host", cfg.Fleet.Host, "name this host publishes under (default: its host name)")
	f.DurationVar(&cfg.Fleet.TTL, "etcd-ttl", cfg.Fleet.TTL, "TTL of the etcd lease: how long this host's entries outlive it (whole seconds)")
	f.DurationVar(&cfg.Fleet.Timeout, "etcd-timeout", cfg.Fleet.Timeout, "longest one request to etcd may take")
	f.StringVar(&cfg.Fleet.CAFile, "etcd-ca", cfg.Fleet.CAFile, "CA certificate (PEM) that etcd's certificate is verified with, for https:// endpoints (default: the system's)")
	f.StringVar(&cfg.Fleet.CertFile, "etcd-cert", cfg.Fleet.CertFile, "client certificate (PEM) for etcd's --client-cert-auth, with --etcd-key")
	f.StringVar(&cfg.Fleet.KeyFile, "etcd-key", cfg.Fleet.KeyFile, "client certificate's key (PEM), read before -s gives root up")
	f.StringVar(&cfg.Fleet.Username, "etcd-user", cfg.Fleet.Username, "etcd user to log in as (etcd's own auth, roles on key prefixes), with --etcd-password-file")
	f.StringVar(&cfg.Fleet.PasswordFile, "etcd-password-file", cfg.Fleet.PasswordFile, "file holding --etcd-user's password (a trailing newline is dropped), read before -s gives root up; refused when its group or others may read or write it, as ssh refuses such a key")
	f.IntVar(&cfg.Fleet.MaxTxnOps, "etcd-max-txn-ops", cfg.Fleet.MaxTxnOps, "most operations in one etcd transaction, as etcd's --max-txn-ops allows")
	f.IntVar(&cfg.Fleet.MaxListing, "fleet-max-listing", cfg.Fleet.MaxListing, "most instances a fleet listing or lookup (scope=fleet) returns")
	f.StringArrayVar(&c.metrics, "metrics", []string{metricsLocal}, `who may read /metrics on the HTTP face: "local" (this host: loopback and the HTTP socket), "all", a CIDR allowed besides this host (repeatable), or "off" (no metrics are kept)`)
	f.Bool("help", false, "show this help")
	return cmd
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", args[0])}
	}
	return nil
}

// printConfig prints the version and build configuration in rpcbind -v's
// two-line format, which scripts (LTP among them) read.
func printConfig(w io.Writer, prog string, cfg daemon.Config) {
	fmt.Fprintf(w, "%s %s\n", prog, buildinfo.Version)
	user := "root"
	if cfg.DropRoot {
		user = cfg.User
		if user == "" {
			user = daemon.DefaultRunAs()
		}
	}
	rmtCalls := "no"
	if cfg.RemoteCalls {
		rmtCalls = "yes"
	}
	fmt.Fprintf(w, "debug: no, libset debug: no, libwrap: no, nss modules: files, remote calls: %s, statedir: %s, systemd: yes, user: %s, warm start: yes\n", rmtCalls, cfg.StateDir, user)
}

// A flagCheck is a rule the value of one flag must keep: bad when it
// does not, and then reported as "flag value: rule".
type flagCheck struct {
	flag  string
	value any
	bad   bool
	rule  string
}

// atLeastOne is the rule of a count that cannot be zero.
func atLeastOne(flag string, v int) flagCheck {
	return flagCheck{flag, v, v < 1, "must be at least 1"}
}

// positive is the rule of a duration that cannot be zero.
func positive(flag string, d time.Duration) flagCheck {
	return flagCheck{flag, d, d <= 0, "must be positive"}
}

// notNegative is the rule of a value for which zero means none.
func notNegative[T int | int64 | float64 | time.Duration](flag string, v T) flagCheck {
	return flagCheck{flag, v, v < 0, "must not be negative"}
}

// validate reports the first flag whose value breaks its rule.
func (c *commandLine) validate() error {
	cfg := &c.cfg
	rmt, http, mux, checks, etcd := &cfg.RemoteCallLimits, &cfg.HTTP, &cfg.TCPMux, &cfg.Checks, &cfg.Fleet
	// The first rule broken, in this order, is the one reported. Limits
	// that go together share a line.
	for _, check := range []flagCheck{
		{"--port", cfg.Port, cfg.Port < 0 || cfg.Port > 65535, "not a port number"},
		{"--max-message", cfg.MaxMessage, cfg.MaxMessage < 64, "too small to hold a call"},
		atLeastOne("--max-conns", cfg.MaxConns),
		positive("--idle-timeout", cfg.IdleTimeout), positive("--record-timeout", cfg.RecordTimeout),
		atLeastOne("--max-conns-per-source", cfg.MaxConnsPerSource),
		notNegative("--udp-reply-rate", cfg.UDPReplyRate),
		{"--udp-reply-burst", cfg.UDPReplyBurst, cfg.UDPReplyRate > 0 && cfg.UDPReplyBurst < cfg.MaxMessage,
			fmt.Sprintf("must be at least --max-message (%d), or no reply that large could be sent", cfg.MaxMessage)},
		atLeastOne("--fd-reserve", cfg.FDReserve),
		notNegative("--rmtcall-rate", rmt.Rate),
		atLeastOne("--rmtcall-burst", rmt.Burst), atLeastOne("--rmtcall-max-pending", rmt.MaxPending),
		positive("--rmtcall-timeout", rmt.Timeout), notNegative("--rmtcall-reply-ratio", rmt.ReplyRatio),
		atLeastOne("--http-max-conns", http.MaxConns), atLeastOne("--http-max-conns-per-source", http.MaxConnsPerSource),
		positive("--http-idle-timeout", http.IdleTimeout),
		atLeastOne("--tcpmux-max-conns", mux.MaxConns), atLeastOne("--tcpmux-max-conns-per-source", mux.MaxConnsPerSource),
		positive("--tcpmux-timeout", mux.Timeout), positive("--tcpmux-idle-timeout", mux.IdleTimeout),
		atLeastOne("--max-per-process", cfg.MaxNamedPerProcess),
		atLeastOne("--max-rpc-per-uid", cfg.MaxRPCPerUID), atLeastOne("--max-rpc-bytes-per-uid", cfg.MaxRPCBytesPerUID),
		atLeastOne("--max-processes-per-uid", cfg.MaxProcessesPerUID),
		notNegative("--max-pidfds", cfg.MaxPidfds), positive("--proc-poll-interval", cfg.ProcPollInterval),
		notNegative("--prune-grace", cfg.PruneGrace), positive("--prune-interval", cfg.PruneInterval),
		notNegative("--state-compact-bytes", cfg.StateCompactBytes),
		atLeastOne("--watch-history", cfg.WatchHistory), atLeastOne("--watch-max", http.MaxWatchers),
		atLeastOne("--watch-max-per-source", http.MaxWatchersPerSource), positive("--watch-max-wait", http.MaxWait),
		atLeastOne("--check-concurrency", checks.Concurrency), positive("--check-timeout", checks.Timeout),
		positive("--check-interval", checks.Interval), notNegative("--rpc-check-interval", checks.RPCInterval),
		atLeastOne("--log-burst", cfg.LogBurst), atLeastOne("--log-rate", cfg.LogPerMinute),
		{"--etcd-ttl", etcd.TTL, etcd.TTL < time.Second, "must be at least 1s, etcd's unit"},
		positive("--etcd-timeout", etcd.Timeout),
		{"--etcd-max-txn-ops", etcd.MaxTxnOps, etcd.MaxTxnOps < 3, "must be at least 3"},
		atLeastOne("--fleet-max-listing", etcd.MaxListing),
		{"--etcd-user", etcd.Username, etcd.Username != "" && etcd.PasswordFile == "", "needs --etcd-password-file (a password is never given on the command line)"},
		{"--etcd-password-file", etcd.PasswordFile, etcd.PasswordFile != "" && etcd.Username == "", "needs --etcd-user"},
		atLeastOne("--gc-percent", c.gcPercent),
	} {
		if check.bad {
			return fmt.Errorf("%s %v: %s", check.flag, check.value, check.rule)
		}
	}
	// An empty value is more likely a variable that was not set than a
	// wish to do without: "off" says that. --socket and --lock-file took
	// empty for none before "off", and still do (offAlias).
	for _, f := range []struct{ name, value string }{
		{"--http", http.HTTPAddr}, {"--http-socket", http.SocketPath}, {"--state-dir", cfg.StateDir}, {"--dns", cfg.DNSAddr}, {"--tcpmux", mux.Addr},
	} {
		if f.value == "" {
			return fmt.Errorf(`%s: empty (use "off" to disable it)`, f.name)
		}
	}
	return nil
}

// config validates the flags and returns the daemon's Config with the
// values of the flags that are no field of it read in. Logger,
// Activated and Ready are serve's to fill.
func (c *commandLine) config() (daemon.Config, error) {
	if err := c.validate(); err != nil {
		return daemon.Config{}, err
	}
	cfg := c.cfg
	var err error
	if cfg.HTTP.TrustedProxies, err = parsePrefixes(c.trustedProxies); err != nil {
		return daemon.Config{}, err
	}
	if cfg.Metrics, cfg.MetricsFrom, err = metricsFrom(c.metrics); err != nil {
		return daemon.Config{}, err
	}
	if cfg.RemoteCallLimits.Deny, err = denyPrograms(c.rmtcallDeny, rpcent.DefaultPath); err != nil {
		return daemon.Config{}, err
	}
	cfg.Fleet.Endpoints = fleetEndpoints(c.etcdEndpoints)
	if cfg.Fleet.PasswordFile != "" {
		// Read here, as root, for a bad file to be a usage error; the
		// daemon does not read it again.
		if cfg.Fleet.Password, err = fleet.ReadPasswordFile(cfg.Fleet.PasswordFile); err != nil {
			return daemon.Config{}, fmt.Errorf("--etcd-password-file %s: %w", cfg.Fleet.PasswordFile, err)
		}
	}
	cfg.LockFile, cfg.Socket = offAlias(cfg.LockFile), offAlias(cfg.Socket)
	// rpcbind hears -a only with -d.
	cfg.AbortOnError = cfg.AbortOnError && c.debug
	return cfg, nil
}

// fleetEndpoints reads --etcd: without endpoints (or with "off"), no
// fleet.
func fleetEndpoints(values []string) []string {
	var eps []string
	for _, e := range values {
		if e = strings.TrimSpace(e); e != "" && e != httpmap.Off {
			eps = append(eps, e)
		}
	}
	return eps
}

// offAlias reads a flag whose empty value meant none before "off" did.
func offAlias(v string) string {
	if v == "" {
		return httpmap.Off
	}
	return v
}

// Words of --metrics besides a CIDR.
const (
	metricsLocal = "local"
	metricsAll   = "all"
)

// metricsFrom reads --metrics: whether metrics are kept, and which
// network addresses besides this host's may read them.
func metricsFrom(values []string) (on bool, from []netip.Prefix, err error) {
	for _, v := range values {
		switch v {
		case httpmap.Off:
			if len(values) > 1 {
				return false, nil, fmt.Errorf("--metrics off: cannot be given with other values")
			}
			return false, nil, nil
		case metricsLocal:
		case metricsAll:
			from = append(from, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
		default:
			pfx, err := netip.ParsePrefix(v)
			if err != nil {
				return false, nil, fmt.Errorf(`--metrics %q: not "local", "all", "off" or a CIDR`, v)
			}
			from = append(from, pfx.Masked())
		}
	}
	return true, from, nil
}

// rmtcallDenyNone is the --rmtcall-deny of no programs besides rpcbind's.
const rmtcallDenyNone = "none"

// programNumbers is progs as --rmtcall-deny's values.
func programNumbers(progs []uint32) []string {
	values := make([]string, len(progs))
	for i, p := range progs {
		values[i] = strconv.FormatUint(uint64(p), 10)
	}
	return values
}

// denyPrograms reads --rmtcall-deny: decimal program numbers, or names
// (or aliases) that the RPC program database at rpcFile gives numbers,
// read only when a name is given. Names are resolved here, once: a
// mistyped one is a usage error, not a program silently let through.
func denyPrograms(values []string, rpcFile string) ([]uint32, error) {
	var progs []uint32
	var table *rpcent.Table
	for _, v := range values {
		switch v = strings.TrimSpace(v); {
		case v == "":
		case v == rmtcallDenyNone:
			if len(values) > 1 {
				return nil, fmt.Errorf("--rmtcall-deny none: cannot be given with other values")
			}
		case strings.Trim(v, "0123456789") == "":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--rmtcall-deny %s: not a program number (at most %d)", v, uint32(math.MaxUint32))
			}
			progs = append(progs, uint32(n))
		default:
			if table == nil {
				var err error
				if table, err = rpcent.Load(rpcFile); err != nil {
					return nil, fmt.Errorf("--rmtcall-deny %s: %w", v, err)
				}
			}
			e, ok := table.ByName(v)
			if !ok {
				return nil, fmt.Errorf("--rmtcall-deny %q: neither a program number nor a program named in %s", v, rpcFile)
			}
			progs = append(progs, e.Number)
		}
	}
	return progs, nil
}

// parsePrefixes reads --trusted-proxy.
func parsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range values {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxy %q: %w", p, err)
		}
		out = append(out, pfx)
	}
	return out, nil
}

func serve(ctx context.Context, c commandLine, stderr io.Writer) error {
	cfg, err := c.config()
	if err != nil {
		return usageError{err}
	}
	// Like rpcbind, detach unless told to stay or debugging.
	reporter := daemon.NewReporter()
	if !c.foreground && !c.debug && !reporter.Detached() {
		return daemon.Detach(ctx, os.Args[1:], stderr)
	}
	level := slog.LevelInfo
	if c.debug {
		level = slog.LevelDebug
	}
	log := daemon.NewLogger(stderr, level, reporter, c.logFile)
	for _, f := range systemd.Files() {
		s, err := systemd.Classify(f)
		if err != nil {
			return reporter.Failed(err)
		}
		cfg.Activated = append(cfg.Activated, s)
	}
	cfg.Logger = log
	cfg.Ready = func() {
		setGCPercent(c.gcPercent, c.gcPercentSet)
		reporter.Ready()
		if err := systemd.Notify("READY=1"); err != nil {
			log.Warn("cannot notify systemd", "err", err)
		}
	}
	if err := daemon.Run(ctx, cfg); err != nil {
		return reporter.Failed(err)
	}
	return nil
}
