package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/fleet"
	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/buildinfo"
	"github.com/portmapd/portmapd/internal/clidoc"
	"github.com/portmapd/portmapd/internal/daemon"
	"github.com/portmapd/portmapd/internal/systemd"
	"github.com/portmapd/portmapd/netlimit"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/health"
	"github.com/portmapd/portmapd/registry/journal"
	"github.com/portmapd/portmapd/registry/lifetime"
	"github.com/portmapd/portmapd/registry/warmstart"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/tcpmux"
	"github.com/portmapd/portmapd/xdr"
)

// options are the command line's values before they become a
// daemon.Config.
type options struct {
	abort      bool
	debug      bool
	foreground bool
	udpAddrs   []string
	insecure   bool
	logCalls   bool
	dropRoot   bool
	showConfig bool
	warmStart  bool
	rmtCalls   bool

	rmtRate       float64
	rmtBurst      int
	rmtMaxPending int
	rmtTimeout    time.Duration
	rmtReplyRatio int

	// gcPercent is the collector's GOGC; gcPercentSet says the flag
	// was given, which GOGC in the environment does not override.
	gcPercent    int
	gcPercentSet bool

	user          string
	port          int
	lockFile      string
	socket        string
	abstract      bool
	maxMessage    int
	idle          time.Duration
	recordTimeout time.Duration
	maxConns      int
	maxPerSource  int
	replyRate     int
	replyBurst    int
	fdReserve     int

	httpAddr       string
	httpSocket     string
	trustedProxies []string
	maxPerProcess  int
	httpMaxConns   int
	httpPerSource  int
	httpIdle       time.Duration
	maxRPCPerUID   int
	maxRPCBytes    int
	maxProcsPerUID int
	maxPidfds      int
	procPoll       time.Duration

	muxAddr      string
	muxMaxConns  int
	muxPerSource int
	muxTimeout   time.Duration
	muxIdle      time.Duration

	stateDir      string
	compactBytes  int64
	warmStartDir  string
	pruneGrace    time.Duration
	pruneInterval time.Duration
	noPrune       bool
	logFile       string
	metrics       []string
	logBurst      int
	logRate       int

	dnsAddr          string
	watchHistory     int
	watchMax         int
	watchPerSource   int
	watchMaxWait     time.Duration
	checkConcurrency int
	checkTimeout     time.Duration
	checkInterval    time.Duration
	rpcCheckInterval time.Duration

	etcd fleetOptions
}

// fleetOptions are the --etcd flags (package fleet).
type fleetOptions struct {
	endpoints             []string
	prefix, host          string
	ttl, timeout          time.Duration
	ca, cert, key         string
	maxTxnOps, maxListing int
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
	var o options
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
			if o.showConfig {
				printConfig(stderr, prog, o)
				return nil
			}
			o.gcPercentSet = cmd.Flags().Changed("gc-percent")
			return serve(cmd.Context(), o, stderr)
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
	f.BoolVarP(&o.abort, "abort", "a", false, "with -d, crash on an internal error instead of answering SYSTEM_ERR")
	f.BoolVarP(&o.debug, "debug", "d", false, "log debugging messages and stay in the foreground")
	f.BoolVarP(&o.foreground, "foreground", "f", false, "stay in the foreground instead of detaching")
	f.StringArrayVarP(&o.udpAddrs, "host", "h", nil, "serve UDP only on this address (repeatable; 127.0.0.1 and ::1 are always added; TCP is unaffected)")
	f.BoolVarP(&o.insecure, "insecure", "i", false, "accept SET and UNSET from any host, not only from this one")
	f.BoolVarP(&o.logCalls, "log-calls", "l", false, "log every call")
	f.BoolVarP(&o.rmtCalls, "enable-rmtcalls", "r", false, "forward remote calls (CALLIT, BCAST, INDIRECT) to the services they name, as rpcbind -r")
	f.BoolVarP(&o.dropRoot, "run-as-daemon", "s", false, "become the --user user once the sockets are open")
	f.BoolVarP(&o.showConfig, "version", "v", false, "print the version and configuration, then exit")
	f.BoolVarP(&o.warmStart, "warm-start", "w", false, "read rpcbind's warm-start files at start and write them on exit, to switch from rpcbind and back")
	// Long options for everything rpcbind has no letter for.
	f.StringVar(&o.user, "user", "", "user that -s runs as (default: the one rpcbind runs as here, _rpc or rpc, else daemon)")
	f.IntVar(&o.port, "port", xdr.PmapPort, "UDP and TCP port to serve")
	f.StringVar(&o.lockFile, "lock-file", daemon.DefaultLockFile, `lock file that keeps a second portmapper from starting; "off" disables`)
	f.StringVar(&o.socket, "socket", rpcbind.DefaultLocalSocket, `local socket serving versions 2, 3 and 4; "off" disables`)
	f.BoolVar(&o.abstract, "abstract-socket", true, "also serve the local socket's name in the abstract namespace")
	f.IntVar(&o.maxMessage, "max-message", xdr.DefaultMaxMessage, "largest call accepted, in bytes")
	f.DurationVar(&o.idle, "idle-timeout", oncrpc.DefaultIdleTimeout, "close TCP connections idle for this long")
	f.DurationVar(&o.recordTimeout, "record-timeout", oncrpc.DefaultRecordTimeout, "close TCP connections that have not sent a whole call this long after connecting, or take this long to finish one or to take a reply")
	f.IntVar(&o.maxConns, "max-conns", oncrpc.DefaultMaxConns, "most open TCP connections per listener; when full, the one idle longest is closed")
	f.IntVar(&o.maxPerSource, "max-conns-per-source", oncrpc.DefaultMaxConnsPerSource, "most open TCP connections per listener from one address (IPv6: one /64); loopback is not capped")
	f.IntVar(&o.replyRate, "udp-reply-rate", oncrpc.DefaultUDPReplyRate, "bytes per second by which UDP replies to one remote address may exceed its calls (0: no limit)")
	f.IntVar(&o.replyBurst, "udp-reply-burst", oncrpc.DefaultUDPReplyBurst, "bytes of such excess one remote address may use at once (at least --max-message)")
	f.IntVar(&o.fdReserve, "fd-reserve", netlimit.DefaultReserve, "file descriptors that TCP connections leave for the local sockets and the daemon itself")
	f.Float64Var(&o.rmtRate, "rmtcall-rate", rpcbind.DefaultForwardRate, "with -r, remote calls a second one remote address (IPv6: one /64) may have forwarded (0: no limit)")
	f.IntVar(&o.rmtBurst, "rmtcall-burst", rpcbind.DefaultForwardBurst, "with -r, remote calls one remote address may have forwarded at once")
	f.IntVar(&o.rmtMaxPending, "rmtcall-max-pending", rpcbind.DefaultMaxForwards, "with -r, most forwarded calls waiting for their answers; past it the one waiting longest is given up")
	f.DurationVar(&o.rmtTimeout, "rmtcall-timeout", rpcbind.DefaultForwardTimeout, "with -r, how long a forwarded call waits for its answer")
	f.IntVar(&o.rmtReplyRatio, "rmtcall-reply-ratio", rpcbind.DefaultForwardReplyRatio, "with -r, how many times larger than its call an answer relayed to a remote address may be (0: no limit)")
	f.StringVar(&o.httpAddr, "http", httpmap.DefaultHTTPAddr, `HTTP listing address; "off" disables`)
	f.StringVar(&o.httpSocket, "http-socket", httpmap.DefaultSocketPath, `local HTTP socket where services register by name (mode 0666); "off" disables`)
	f.StringArrayVar(&o.trustedProxies, "trusted-proxy", nil, "CIDR of a reverse proxy whose X-Forwarded-For is believed (repeatable)")
	f.IntVar(&o.httpMaxConns, "http-max-conns", httpmap.DefaultMaxConns, "most open HTTP connections over TCP (--http and port 111 together), and on the HTTP socket; when full, the one idle longest is closed")
	f.IntVar(&o.httpPerSource, "http-max-conns-per-source", httpmap.DefaultMaxConnsPerSource, "most open HTTP connections over TCP from one address (IPv6: one /64); loopback and --trusted-proxy addresses are not capped")
	f.DurationVar(&o.httpIdle, "http-idle-timeout", httpmap.DefaultIdleTimeout, "close HTTP keep-alive connections idle for this long")
	f.StringVar(&o.muxAddr, "tcpmux", tcpmux.Off, `TCPMUX (RFC 1078) address, such as :1, where clients reach services registered with tcpmux by name; "off" disables`)
	f.IntVar(&o.muxMaxConns, "tcpmux-max-conns", tcpmux.DefaultMaxConns, "most open TCPMUX connections; when full, the one waiting longest for its name is closed")
	f.IntVar(&o.muxPerSource, "tcpmux-max-conns-per-source", tcpmux.DefaultMaxConnsPerSource, "most open TCPMUX connections from one address (IPv6: one /64); loopback is not capped")
	f.DurationVar(&o.muxTimeout, "tcpmux-timeout", tcpmux.DefaultTimeout, "time a TCPMUX client has to send a service name, and portmapd to reach the service")
	f.DurationVar(&o.muxIdle, "tcpmux-idle-timeout", tcpmux.DefaultIdleTimeout, "close a spliced TCPMUX connection over which nothing passes either way for this long")
	f.IntVar(&o.maxPerProcess, "max-per-process", registry.DefaultMaxNamedPerProcess, "named services one process may hold")
	f.IntVar(&o.maxRPCPerUID, "max-rpc-per-uid", registry.DefaultMaxRPCPerUID, "RPC registrations one uid may hold (root is not capped; unprivileged loopback UDP and TCP callers share one count)")
	f.IntVar(&o.maxRPCBytes, "max-rpc-bytes-per-uid", registry.DefaultMaxRPCBytesPerUID, "bytes of netid and address one uid's RPC registrations may hold")
	f.IntVar(&o.maxProcsPerUID, "max-processes-per-uid", registry.DefaultMaxProcessesPerUID, "processes of one uid other than root that may hold named services")
	f.IntVar(&o.maxPidfds, "max-pidfds", 0, "processes with named services watched through a descriptor each; the others are polled (0: a quarter of RLIMIT_NOFILE)")
	f.DurationVar(&o.procPoll, "proc-poll-interval", lifetime.DefaultPollInterval, "how often processes watched without a descriptor are checked")
	f.StringVar(&o.stateDir, "state-dir", daemon.DefaultStateDir, `directory where registrations are saved so that they survive a restart of the daemon (owner-only); "off" disables`)
	f.Int64Var(&o.compactBytes, "state-compact-bytes", journal.DefaultCompactBytes, "journal size in bytes that triggers rewriting the saved state as a snapshot, once the journal is also larger than the last snapshot")
	f.StringVar(&o.warmStartDir, "warm-start-dir", warmstart.DefaultDir, "where -w reads and writes rpcbind's rpcbind.xdr and portmap.xdr")
	f.DurationVar(&o.pruneGrace, "prune-grace", lifetime.DefaultPruneGrace, "how long after registering a service may take to bind its port before its registration can be pruned")
	f.DurationVar(&o.pruneInterval, "prune-interval", lifetime.DefaultPruneInterval, "how often registrations of services that are gone are looked for")
	f.BoolVar(&o.noPrune, "no-prune", false, "never remove registrations whose service is gone")
	f.StringVar(&o.logFile, "log-file", daemon.DefaultLogFile, "where portmapd logs once detached (without -f) if there is no syslog (/dev/log)")
	f.StringVar(&o.dnsAddr, "dns", httpmap.Off, `DNS address (UDP and TCP) answering SRV and A/AAAA for every name with a port, e.g. 127.0.0.1:8553; "off" disables`)
	f.IntVar(&o.watchHistory, "watch-history", registry.DefaultFeedSize, "latest changes kept, and saved, for event streams to resume from")
	f.IntVar(&o.watchMax, "watch-max", httpmap.DefaultMaxWatchers, "most blocking queries and event streams at once")
	f.IntVar(&o.watchPerSource, "watch-max-per-source", httpmap.DefaultMaxWatchersPerSource, "most blocking queries and event streams from one address (IPv6: one /64); loopback, the local socket and --trusted-proxy addresses are not capped")
	f.DurationVar(&o.watchMaxWait, "watch-max-wait", httpmap.DefaultMaxWait, "longest a blocking query waits (?wait= longer is cut to it, and none waits this long)")
	f.IntVar(&o.checkConcurrency, "check-concurrency", health.DefaultConcurrency, "most health checks running at once")
	f.DurationVar(&o.checkTimeout, "check-timeout", health.DefaultTimeout, "longest a health check may take, unless its registration asks for less")
	f.DurationVar(&o.checkInterval, "check-interval", health.DefaultInterval, "time between active health checks of a registration that gives none")
	f.DurationVar(&o.rpcCheckInterval, "rpc-check-interval", 0, "check every RPC registration on this host with a NULL call this often (0: never)")
	f.IntVar(&o.gcPercent, "gc-percent", defaultGCPercent, "heap growth, in percent of the live heap, that starts a garbage collection (Go's GOGC, which overrides the default when set)")
	f.IntVar(&o.logBurst, "log-burst", netlimit.DefaultLineBurst, "audit lines (and, with -l, call lines) one source (a uid, an address) may cause at once")
	f.IntVar(&o.logRate, "log-rate", netlimit.DefaultLinesPerMinute, "audit lines (and, with -l, call lines) one source may cause a minute after the burst; the rest are counted in one line")
	f.StringSliceVar(&o.etcd.endpoints, "etcd", nil, `etcd client URLs (comma-separated or repeated) to publish this host's registrations to and look services up across the fleet in; none: off`)
	f.StringVar(&o.etcd.prefix, "etcd-prefix", fleet.DefaultPrefix, "etcd key prefix of the fleet's keys")
	f.StringVar(&o.etcd.host, "etcd-host", "", "name this host publishes under (default: its host name)")
	f.DurationVar(&o.etcd.ttl, "etcd-ttl", fleet.DefaultTTL, "TTL of the etcd lease: how long this host's entries outlive it (whole seconds)")
	f.DurationVar(&o.etcd.timeout, "etcd-timeout", fleet.DefaultTimeout, "longest one request to etcd may take")
	f.StringVar(&o.etcd.ca, "etcd-ca", "", "CA certificate (PEM) that etcd's certificate is verified with, for https:// endpoints (default: the system's)")
	f.StringVar(&o.etcd.cert, "etcd-cert", "", "client certificate (PEM) for etcd's --client-cert-auth, with --etcd-key")
	f.StringVar(&o.etcd.key, "etcd-key", "", "client certificate's key (PEM), read before -s gives root up")
	f.IntVar(&o.etcd.maxTxnOps, "etcd-max-txn-ops", fleet.DefaultMaxTxnOps, "most operations in one etcd transaction, as etcd's --max-txn-ops allows")
	f.IntVar(&o.etcd.maxListing, "fleet-max-listing", fleet.DefaultMaxListing, "most instances a fleet listing or lookup (scope=fleet) returns")
	f.StringArrayVar(&o.metrics, "metrics", []string{metricsLocal}, `who may read /metrics on the HTTP face: "local" (this host: loopback and the HTTP socket), "all", a CIDR allowed besides this host (repeatable), or "off" (no metrics are kept)`)
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
func printConfig(w io.Writer, prog string, o options) {
	fmt.Fprintf(w, "%s %s\n", prog, buildinfo.Version)
	user := "root"
	if o.dropRoot {
		user = o.user
		if user == "" {
			user = daemon.DefaultRunAs()
		}
	}
	rmtCalls := "no"
	if o.rmtCalls {
		rmtCalls = "yes"
	}
	fmt.Fprintf(w, "debug: no, libset debug: no, libwrap: no, nss modules: files, remote calls: %s, statedir: %s, systemd: yes, user: %s, warm start: yes\n", rmtCalls, o.stateDir, user)
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

func (o options) validate() error {
	// The first rule broken, in this order, is the one reported. Limits
	// that go together share a line.
	for _, c := range []flagCheck{
		{"--port", o.port, o.port < 0 || o.port > 65535, "not a port number"},
		{"--max-message", o.maxMessage, o.maxMessage < 64, "too small to hold a call"},
		atLeastOne("--max-conns", o.maxConns),
		positive("--idle-timeout", o.idle), positive("--record-timeout", o.recordTimeout),
		atLeastOne("--max-conns-per-source", o.maxPerSource),
		notNegative("--udp-reply-rate", o.replyRate),
		{"--udp-reply-burst", o.replyBurst, o.replyRate > 0 && o.replyBurst < o.maxMessage,
			fmt.Sprintf("must be at least --max-message (%d), or no reply that large could be sent", o.maxMessage)},
		atLeastOne("--fd-reserve", o.fdReserve),
		notNegative("--rmtcall-rate", o.rmtRate),
		atLeastOne("--rmtcall-burst", o.rmtBurst), atLeastOne("--rmtcall-max-pending", o.rmtMaxPending),
		positive("--rmtcall-timeout", o.rmtTimeout), notNegative("--rmtcall-reply-ratio", o.rmtReplyRatio),
		atLeastOne("--http-max-conns", o.httpMaxConns), atLeastOne("--http-max-conns-per-source", o.httpPerSource),
		positive("--http-idle-timeout", o.httpIdle),
		atLeastOne("--tcpmux-max-conns", o.muxMaxConns), atLeastOne("--tcpmux-max-conns-per-source", o.muxPerSource),
		positive("--tcpmux-timeout", o.muxTimeout), positive("--tcpmux-idle-timeout", o.muxIdle),
		atLeastOne("--max-per-process", o.maxPerProcess),
		atLeastOne("--max-rpc-per-uid", o.maxRPCPerUID), atLeastOne("--max-rpc-bytes-per-uid", o.maxRPCBytes),
		atLeastOne("--max-processes-per-uid", o.maxProcsPerUID),
		notNegative("--max-pidfds", o.maxPidfds), positive("--proc-poll-interval", o.procPoll),
		notNegative("--prune-grace", o.pruneGrace), positive("--prune-interval", o.pruneInterval),
		notNegative("--state-compact-bytes", o.compactBytes),
		atLeastOne("--watch-history", o.watchHistory), atLeastOne("--watch-max", o.watchMax),
		atLeastOne("--watch-max-per-source", o.watchPerSource), positive("--watch-max-wait", o.watchMaxWait),
		atLeastOne("--check-concurrency", o.checkConcurrency), positive("--check-timeout", o.checkTimeout),
		positive("--check-interval", o.checkInterval), notNegative("--rpc-check-interval", o.rpcCheckInterval),
		atLeastOne("--log-burst", o.logBurst), atLeastOne("--log-rate", o.logRate),
		{"--etcd-ttl", o.etcd.ttl, o.etcd.ttl < time.Second, "must be at least 1s, etcd's unit"},
		positive("--etcd-timeout", o.etcd.timeout),
		{"--etcd-max-txn-ops", o.etcd.maxTxnOps, o.etcd.maxTxnOps < 3, "must be at least 3"},
		atLeastOne("--fleet-max-listing", o.etcd.maxListing),
		atLeastOne("--gc-percent", o.gcPercent),
	} {
		if c.bad {
			return fmt.Errorf("%s %v: %s", c.flag, c.value, c.rule)
		}
	}
	// An empty value is more likely a variable that was not set than a
	// wish to do without: "off" says that. --socket and --lock-file took
	// empty for none before "off", and still do (offAlias).
	for _, f := range []struct{ name, value string }{
		{"--http", o.httpAddr}, {"--http-socket", o.httpSocket}, {"--state-dir", o.stateDir}, {"--dns", o.dnsAddr}, {"--tcpmux", o.muxAddr},
	} {
		if f.value == "" {
			return fmt.Errorf(`%s: empty (use "off" to disable it)`, f.name)
		}
	}
	return nil
}

// config is the fleet's configuration; without endpoints (or with
// "off"), no fleet.
func (o fleetOptions) config() fleet.Config {
	var eps []string
	for _, e := range o.endpoints {
		if e = strings.TrimSpace(e); e != "" && e != httpmap.Off {
			eps = append(eps, e)
		}
	}
	return fleet.Config{
		Endpoints: eps, Prefix: o.prefix, Host: o.host, TTL: o.ttl, Timeout: o.timeout,
		CAFile: o.ca, CertFile: o.cert, KeyFile: o.key, MaxTxnOps: o.maxTxnOps, MaxListing: o.maxListing,
	}
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
func (o options) metricsFrom() (on bool, from []netip.Prefix, err error) {
	for _, v := range o.metrics {
		switch v {
		case httpmap.Off:
			if len(o.metrics) > 1 {
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

func (o options) proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range o.trustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxy %q: %w", p, err)
		}
		out = append(out, pfx)
	}
	return out, nil
}

func serve(ctx context.Context, o options, stderr io.Writer) error {
	if err := o.validate(); err != nil {
		return usageError{err}
	}
	proxies, err := o.proxies()
	if err != nil {
		return usageError{err}
	}
	metricsOn, metricsFrom, err := o.metricsFrom()
	if err != nil {
		return usageError{err}
	}
	// Like rpcbind, detach unless told to stay or debugging.
	reporter := daemon.NewReporter()
	if !o.foreground && !o.debug && !reporter.Detached() {
		return daemon.Detach(ctx, os.Args[1:], stderr)
	}
	level := slog.LevelInfo
	if o.debug {
		level = slog.LevelDebug
	}
	log := daemon.NewLogger(stderr, level, reporter, o.logFile)
	var activated []systemd.Socket
	for _, f := range systemd.Files() {
		s, err := systemd.Classify(f)
		if err != nil {
			return reporter.Failed(err)
		}
		activated = append(activated, s)
	}
	cfg := daemon.Config{
		Logger:      log,
		Port:        o.port,
		UDPAddrs:    o.udpAddrs,
		Insecure:    o.insecure,
		RemoteCalls: o.rmtCalls,
		RemoteCallLimits: daemon.RemoteCallLimits{
			Rate: o.rmtRate, Burst: o.rmtBurst, MaxPending: o.rmtMaxPending, Timeout: o.rmtTimeout, ReplyRatio: o.rmtReplyRatio,
		},
		LogCalls:          o.logCalls,
		LockFile:          offAlias(o.lockFile),
		Socket:            offAlias(o.socket),
		AbstractSocket:    o.abstract,
		MaxMessage:        o.maxMessage,
		IdleTimeout:       o.idle,
		RecordTimeout:     o.recordTimeout,
		MaxConns:          o.maxConns,
		MaxConnsPerSource: o.maxPerSource,
		UDPReplyRate:      o.replyRate,
		UDPReplyBurst:     o.replyBurst,
		FDReserve:         o.fdReserve,
		Activated:         activated,
		AbortOnError:      o.abort && o.debug,
		HTTP: httpmap.Config{
			HTTPAddr:             o.httpAddr,
			SocketPath:           o.httpSocket,
			TrustedProxies:       proxies,
			Limits:               netlimit.Limits{MaxConns: o.httpMaxConns, MaxConnsPerSource: o.httpPerSource, IdleTimeout: o.httpIdle},
			MaxWatchers:          o.watchMax,
			MaxWatchersPerSource: o.watchPerSource,
			MaxWait:              o.watchMaxWait,
		},
		TCPMux: tcpmux.Config{
			Addr:    o.muxAddr,
			Limits:  netlimit.Limits{MaxConns: o.muxMaxConns, MaxConnsPerSource: o.muxPerSource, IdleTimeout: o.muxIdle},
			Timeout: o.muxTimeout,
		},
		MaxNamedPerProcess: o.maxPerProcess,
		MaxRPCPerUID:       o.maxRPCPerUID,
		MaxRPCBytesPerUID:  o.maxRPCBytes,
		MaxProcessesPerUID: o.maxProcsPerUID,
		StateDir:           o.stateDir,
		StateCompactBytes:  o.compactBytes,
		WarmStart:          o.warmStart,
		WarmStartDir:       o.warmStartDir,
		PruneGrace:         o.pruneGrace,
		PruneInterval:      o.pruneInterval,
		NoPrune:            o.noPrune,
		Ready: func() {
			setGCPercent(o)
			reporter.Ready()
			if err := systemd.Notify("READY=1"); err != nil {
				log.Warn("cannot notify systemd", "err", err)
			}
		},
	}
	cfg.DropRoot, cfg.User = o.dropRoot, o.user
	cfg.MaxPidfds, cfg.ProcPollInterval = o.maxPidfds, o.procPoll
	cfg.DNSAddr, cfg.WatchHistory = o.dnsAddr, o.watchHistory
	cfg.Checks = health.Config{Concurrency: o.checkConcurrency, Timeout: o.checkTimeout, Interval: o.checkInterval, RPCInterval: o.rpcCheckInterval}
	cfg.Metrics, cfg.MetricsFrom = metricsOn, metricsFrom
	cfg.LogBurst, cfg.LogPerMinute = o.logBurst, o.logRate
	cfg.Fleet = o.etcd.config()
	if err := daemon.Run(ctx, cfg); err != nil {
		return reporter.Failed(err)
	}
	return nil
}
