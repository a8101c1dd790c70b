// Package daemon assembles portmapd from its parts: it opens the sockets,
// fills the registry with the portmapper's own entries and serves until
// its context ends. cmd/portmapd only turns flags into a Config.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portmapd/portmapd/audit"
	"github.com/portmapd/portmapd/dnsmap"
	"github.com/portmapd/portmapd/fleet"
	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/buildinfo"
	"github.com/portmapd/portmapd/internal/metrics"
	"github.com/portmapd/portmapd/internal/systemd"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
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
	"golang.org/x/sys/unix"
)

// Config is everything the daemon needs to know, as plain values. A path
// left empty takes its default; httpmap.Off, the command line's "off",
// does without it (LockFile, Socket, StateDir, and HTTP's HTTPAddr and
// SocketPath).
type Config struct {
	// Logger receives the daemon's log; nothing is logged when nil.
	Logger *slog.Logger
	// Port is the RPC port for UDP and TCP (111).
	Port int
	// UDPAddrs, when not empty, restricts UDP to these addresses, with
	// 127.0.0.1 and ::1 always added (rpcbind -h). TCP always listens on
	// the wildcard addresses.
	UDPAddrs []string
	// Insecure accepts SET and UNSET from any host (rpcbind -i).
	Insecure bool
	// RemoteCalls forwards CALLIT, BCAST and INDIRECT to the services
	// they name (rpcbind -r, --enable-rmtcalls), within
	// RemoteCallLimits; without it they are dropped as by stock rpcbind.
	RemoteCalls      bool
	RemoteCallLimits RemoteCallLimits
	// LogCalls logs every call (rpcbind -l).
	LogCalls bool
	// LockFile keeps a second instance from starting; DefaultLockFile
	// when empty.
	LockFile string
	// Socket is the local stream socket's path; rpcbind.DefaultLocalSocket
	// when empty. AbstractSocket also serves it in the abstract namespace,
	// where the kernel and recent libtirpc look first.
	Socket         string
	AbstractSocket bool
	// MaxMessage, IdleTimeout, RecordTimeout, MaxConns and
	// MaxConnsPerSource bound the RPC server; zero values take the
	// rpcbind package's defaults.
	MaxMessage        int
	IdleTimeout       time.Duration
	RecordTimeout     time.Duration
	MaxConns          int
	MaxConnsPerSource int
	// UDPReplyRate and UDPReplyBurst are each remote source's UDP
	// reply-byte bucket (bytes per second and bytes, counting what
	// replies exceed their calls by); no limit when UDPReplyRate is 0.
	UDPReplyRate  int
	UDPReplyBurst int
	// FDReserve is how many file descriptors network connections (RPC
	// and HTTP over TCP) leave for the local sockets and the daemon's
	// own files: together they may hold RLIMIT_NOFILE less this and less
	// the watched processes' pidfds (MaxPidfds), and at least half
	// of it; netlimit.DefaultReserve when 0.
	FDReserve int
	// Activated are sockets inherited from systemd. When there are any,
	// they are served instead of opening sockets, and Port, UDPAddrs and
	// Socket are ignored, as rpcbind ignores -h under activation.
	Activated []systemd.Socket
	// DropRoot makes the daemon become User once everything that needs
	// root is open (rpcbind -s); an empty User is DefaultRunAs(), looked
	// up then, so that a hung user database cannot hold up anything but
	// a start that a stop may abandon.
	DropRoot bool
	User     string
	// AbortOnError makes a failing request crash the daemon instead of
	// being answered SYSTEM_ERR, for debugging (rpcbind -a).
	AbortOnError bool
	// HTTP configures the HTTP face. HTTP is also answered on the RPC TCP
	// port.
	HTTP httpmap.Config
	// TCPMux configures the TCPMUX face (RFC 1078); off unless its Addr
	// is set.
	TCPMux tcpmux.Config
	// MaxNamedPerProcess caps the named services one process may hold.
	MaxNamedPerProcess int
	// MaxRPCPerUID, MaxRPCBytesPerUID and MaxProcessesPerUID cap what
	// one user may make the daemon hold (registry.Options); zero takes
	// the registry's defaults.
	MaxRPCPerUID       int
	MaxRPCBytesPerUID  int
	MaxProcessesPerUID int
	// Ready, when set, is called once every socket is open and the
	// registry holds the portmapper's entries.
	Ready func()
	// StateDir is where registrations are saved so that they survive
	// the daemon; DefaultStateDir when empty.
	StateDir string
	// StateCompactBytes is the journal size in StateDir past which the
	// state is rewritten as a snapshot and the journal started afresh
	// (when it is also larger than the last snapshot);
	// journal.DefaultCompactBytes when 0.
	StateCompactBytes int64
	// ProcRoot is where /proc is mounted, lifetime.DefaultProcRoot when
	// empty.
	ProcRoot string
	// WarmStart reads rpcbind's warm-start files from WarmStartDir at
	// start (then removes them, as rpcbind does) and writes them there
	// on a clean exit, so that a host can switch between rpcbind and
	// portmapd either way (rpcbind -w). WarmStartDir is
	// warmstart.DefaultDir when empty.
	WarmStart    bool
	WarmStartDir string
	// PruneGrace, PruneInterval and NoPrune steer the removal of
	// registrations whose service is gone (registry/lifetime).
	PruneGrace    time.Duration
	PruneInterval time.Duration
	NoPrune       bool
	// MaxPidfds and ProcPollInterval bound the watch of processes with
	// named services: how many are watched through a pidfd, and how often
	// the others are polled (lifetime.Config's defaults when zero).
	MaxPidfds        int
	ProcPollInterval time.Duration
	// WatchHistory is how many of the latest changes are kept, and
	// saved, for watchers to resume from (registry.Options.FeedSize).
	WatchHistory int
	// Checks configures the health checks of registrations
	// (registry/health); the daemon gives it its logger, the host's
	// addresses and the lifetime keeper to tell of removals.
	Checks health.Config
	// DNSAddr is where the DNS face answers, over UDP and TCP
	// (dnsmap); httpmap.Off or empty for none. Like the HTTP face, it
	// is optional: an address that cannot be had is said once and
	// served without.
	DNSAddr string
	// LogBurst and LogPerMinute bound the lines of the audit trail and
	// of LogCalls that each source (a uid, an address) may cause: a
	// burst, then so many a minute (netlimit.LineLimiter's defaults
	// when 0).
	LogBurst     int
	LogPerMinute int
	// Fleet, when it has endpoints, publishes the registry to etcd and
	// answers scope=fleet from it (package fleet); the daemon gives it
	// its logger, the host's addresses and its version. Its TLS files
	// are read before root is given up.
	Fleet fleet.Config
	// Metrics counts what the daemon does and serves it at /metrics on
	// the HTTP face, to this host and to the network addresses in
	// MetricsFrom (internal/metrics). Without it nothing is counted.
	Metrics     bool
	MetricsFrom []netip.Prefix
}

// DefaultStateDir is where registrations are saved: under /run, so that
// they survive the daemon but not a reboot, which ends every process they
// belonged to.
const DefaultStateDir = "/run/portmapd"

// setDefaults fills in the logger and the paths left empty.
func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	for _, p := range []struct {
		v   *string
		def string
	}{
		{&c.LockFile, DefaultLockFile},
		{&c.Socket, rpcbind.DefaultLocalSocket},
		{&c.StateDir, DefaultStateDir},
		{&c.WarmStartDir, warmstart.DefaultDir},
	} {
		if *p.v == "" {
			*p.v = p.def
		}
	}
}

// DefaultConfig returns the Config of a daemon started without options,
// every default stated: the command line binds its flags to its fields,
// so that each flag's default is the one its package defines. Zero
// values that already mean "the default" or "none" (MaxPidfds,
// Checks.RPCInterval, User, Fleet.Host) stay zero.
func DefaultConfig() Config {
	return Config{
		Port: xdr.PmapPort,
		RemoteCallLimits: RemoteCallLimits{
			Rate:       rpcbind.DefaultForwardRate,
			Burst:      rpcbind.DefaultForwardBurst,
			MaxPending: rpcbind.DefaultMaxForwards,
			Timeout:    rpcbind.DefaultForwardTimeout,
			ReplyRatio: rpcbind.DefaultForwardReplyRatio,
			Deny:       rpcbind.DefaultForwardDeny(),
		},
		LockFile:          DefaultLockFile,
		Socket:            rpcbind.DefaultLocalSocket,
		AbstractSocket:    true,
		MaxMessage:        xdr.DefaultMaxMessage,
		IdleTimeout:       oncrpc.DefaultIdleTimeout,
		RecordTimeout:     oncrpc.DefaultRecordTimeout,
		MaxConns:          oncrpc.DefaultMaxConns,
		MaxConnsPerSource: oncrpc.DefaultMaxConnsPerSource,
		UDPReplyRate:      oncrpc.DefaultUDPReplyRate,
		UDPReplyBurst:     oncrpc.DefaultUDPReplyBurst,
		FDReserve:         netlimit.DefaultReserve,
		HTTP: httpmap.Config{
			HTTPAddr:   httpmap.DefaultHTTPAddr,
			SocketPath: httpmap.DefaultSocketPath,
			Limits: netlimit.Limits{
				MaxConns:          httpmap.DefaultMaxConns,
				MaxConnsPerSource: httpmap.DefaultMaxConnsPerSource,
				IdleTimeout:       httpmap.DefaultIdleTimeout,
			},
			MaxWatchers:          httpmap.DefaultMaxWatchers,
			MaxWatchersPerSource: httpmap.DefaultMaxWatchersPerSource,
			MaxWait:              httpmap.DefaultMaxWait,
		},
		TCPMux: tcpmux.Config{
			Addr: tcpmux.Off,
			Limits: netlimit.Limits{
				MaxConns:          tcpmux.DefaultMaxConns,
				MaxConnsPerSource: tcpmux.DefaultMaxConnsPerSource,
				IdleTimeout:       tcpmux.DefaultIdleTimeout,
			},
			Timeout: tcpmux.DefaultTimeout,
		},
		MaxNamedPerProcess: registry.DefaultMaxNamedPerProcess,
		MaxRPCPerUID:       registry.DefaultMaxRPCPerUID,
		MaxRPCBytesPerUID:  registry.DefaultMaxRPCBytesPerUID,
		MaxProcessesPerUID: registry.DefaultMaxProcessesPerUID,
		StateDir:           DefaultStateDir,
		StateCompactBytes:  journal.DefaultCompactBytes,
		WarmStartDir:       warmstart.DefaultDir,
		PruneGrace:         lifetime.DefaultPruneGrace,
		PruneInterval:      lifetime.DefaultPruneInterval,
		ProcPollInterval:   lifetime.DefaultPollInterval,
		WatchHistory:       registry.DefaultFeedSize,
		Checks: health.Config{
			Concurrency: health.DefaultConcurrency,
			Timeout:     health.DefaultTimeout,
			Interval:    health.DefaultInterval,
		},
		DNSAddr:      httpmap.Off,
		LogBurst:     netlimit.DefaultLineBurst,
		LogPerMinute: netlimit.DefaultLinesPerMinute,
		Fleet: fleet.Config{
			Prefix:     fleet.DefaultPrefix,
			TTL:        fleet.DefaultTTL,
			Timeout:    fleet.DefaultTimeout,
			MaxTxnOps:  fleet.DefaultMaxTxnOps,
			MaxListing: fleet.DefaultMaxListing,
		},
		Metrics: true,
	}
}

// Run serves until ctx is done or a listener fails.
//
// A stop (ctx done) is obeyed in every state. Before the daemon serves,
// some steps of its start can block for as long as something outside
// says (a user lookup through a user database that does not answer, a
// state directory on a hung disk): Run then returns at once, leaving
// those steps to end with the process. Each of them is safe to cut short,
// as a crash is: the saved state is written crash-safely, and rpcbind's
// warm-start files are removed only once nothing can interrupt the start
// any more.
func Run(ctx context.Context, cfg Config) error {
	cfg.setDefaults()
	log := cfg.Logger
	var (
		d    *daemon
		err  error
		done = make(chan struct{})
		gate startGate
	)
	go func() {
		defer close(done)
		d, err = start(ctx, cfg, log, &gate)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		if gate.abandon() {
			log.Info("portmapd stopped before serving")
			return nil
		}
		// Past the point of no return: what is left of the start
		// cannot block.
		<-done
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		log.Info("portmapd stopped before serving")
		return nil
	}
	if err != nil {
		return err
	}
	return d.serve(ctx, log)
}

// A startGate decides, once, between a start that goes on to serve and
// one abandoned by a stop.
type startGate struct {
	mu        sync.Mutex
	decided   bool
	abandoned bool
}

// commit reports whether the start may go on; after it, abandon fails.
func (g *startGate) commit() bool { return g.decide(false) }

// abandon reports whether the start was abandoned before it committed.
func (g *startGate) abandon() bool { return g.decide(true) }

func (g *startGate) decide(abandon bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.decided {
		g.decided, g.abandoned = true, abandon
	}
	return g.abandoned == abandon
}

// errAbandoned ends a start that a stop abandoned; nobody reads it.
var errAbandoned = errors.New("daemon: start abandoned")

// A daemon is everything a start opened and filled, ready to serve.
type daemon struct {
	cfg     Config
	release []func()
	ls      *listeners
	web     *httpmap.Server
	webLs   []net.Listener
	reg     *registry.Registry
	life    *lifetime.Keeper
	// journal records changes once serving starts; nil without a state
	// directory.
	journal *journal.Journal
	// checks runs the registrations' health checks; dns is the DNS
	// face, with its sockets, nil without --dns.
	checks *health.Checker
	dns    *dnsmap.Server
	dnsUDP net.PacketConn
	dnsTCP net.Listener
	srv    *oncrpc.Server
	// addrs lists the host's addresses, for address merging and the
	// pruner.
	addrs ifaddrs.Source
	// metrics is nil unless Config.Metrics.
	metrics *metrics.Metrics
	// audit writes the audit trail; callLog bounds LogCalls' lines.
	audit   *audit.Logger
	callLog *netlimit.LineLimiter
	// multicast keeps the udp6 sockets in the group of udp6 broadcasts,
	// with remote calls on.
	multicast *multicastMember
	// mux and muxLn are the TCPMUX face and its listener; nil when off.
	mux   *tcpmux.Server
	muxLn net.Listener
	// fleet publishes to etcd; nil without Config.Fleet's endpoints.
	fleet *fleet.Mirror
}

// close releases what the start took, in reverse order.
func (d *daemon) close() {
	for i := len(d.release) - 1; i >= 0; i-- {
		d.release[i]()
	}
}

// start opens everything that needs root, becomes cfg.User, restores
// the saved registrations and builds the servers. It gives up, releasing
// what it took, at the first error, when ctx ends while the state is read
// (with ctx's error), or when gate says it was abandoned.
func start(ctx context.Context, cfg Config, log *slog.Logger, gate *startGate) (_ *daemon, err error) {
	d := &daemon{cfg: cfg}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	var user runAs
	if cfg.DropRoot {
		name := cfg.User
		if name == "" {
			name = DefaultRunAs()
		}
		if user, err = lookupUser(name); err != nil {
			return nil, err
		}
	}
	if cfg.LockFile != httpmap.Off {
		unlock, err := acquireLock(cfg.LockFile)
		if err != nil {
			return nil, err
		}
		d.release = append(d.release, unlock)
	}
	budget, err := descriptorBudget(cfg.FDReserve, cfg.MaxPidfds, log)
	if err != nil {
		return nil, err
	}
	if len(cfg.Activated) > 0 {
		d.ls, err = inherit(cfg.Activated)
	} else {
		d.ls, err = listen(cfg, log)
	}
	if err != nil {
		return nil, err
	}
	if why := probeIPv6(cfg.ProcRoot).reason; why != "" {
		log.Warn("no IPv6 on this host; serving IPv4", "reason", why, "skipped", d.ls.skipped)
	}
	d.release = append(d.release, d.ls.close)
	// The HTTP face is optional: a listener of it that cannot be opened
	// is said once and served without.
	webLs, failed := httpmap.Listen(cfg.HTTP)
	for _, e := range failed {
		logHTTPUnavailable(log, e)
	}
	d.webLs = webLs
	d.release = append(d.release, func() { closeAll(webLs) })
	if cfg.DNSAddr != "" && cfg.DNSAddr != httpmap.Off {
		if pc, ln, err := dnsmap.Listen(cfg.DNSAddr); err != nil {
			log.Error("DNS address unavailable; serving without it", "addr", cfg.DNSAddr, "err", err,
				"fix", "choose another with --dns ADDR, or disable it with --dns off")
		} else {
			d.dnsUDP, d.dnsTCP = pc, ln
			d.release = append(d.release, func() { pc.Close(); ln.Close() })
		}
	}
	// Port 1, TCPMUX's, needs root: open it now. It is optional too.
	if ln, err := tcpmux.Listen(cfg.TCPMux); err != nil {
		log.Error("TCPMUX address unavailable; serving without it", "addr", cfg.TCPMux.Addr, "err", err,
			"fix", "choose another with --tcpmux ADDR, or disable it with --tcpmux off")
	} else if ln != nil {
		d.muxLn = ln
		d.release = append(d.release, func() { _ = ln.Close() })
	}
	if os.Geteuid() == 0 && cfg.StateDir != httpmap.Off {
		// With -s, the state goes to the user the daemon becomes; as
		// root, it comes back from -s's default user.
		to, from := user, user
		if !cfg.DropRoot {
			to = runAs{name: "root"}
			from, _ = lookupUser(DefaultRunAs())
		}
		if err := handOverStateDir(cfg.StateDir, from.uid, to.uid, to.gid); err != nil {
			log.Warn("cannot prepare the state directory for the daemon's user", "dir", cfg.StateDir, "user", to.name, "err", err)
		}
	}
	if len(cfg.Fleet.Endpoints) > 0 {
		// The key and the password file may be root's alone.
		if err := fleet.LoadSecrets(&cfg.Fleet); err != nil {
			return nil, err
		}
	}
	if cfg.DropRoot {
		if cfg.WarmStart {
			if err := prepareWarmStartDir(cfg.WarmStartDir, user); err != nil {
				log.Warn("cannot create rpcbind's state directory; warm-start files will not be written on exit", "err", err)
			}
		}
		if err := user.become(); err != nil {
			return nil, err
		}
		if cfg.WarmStart {
			if err := unix.Access(cfg.WarmStartDir, unix.W_OK|unix.X_OK); err != nil {
				log.Warn("warm-start files cannot be written on exit as this user; run as the directory's owner (--user)", "dir", cfg.WarmStartDir, "user", user.name, "err", err)
			}
		}
	}

	obs := d.observers(cfg)
	d.audit = audit.New(log, audit.Options{Burst: cfg.LogBurst, PerMinute: cfg.LogPerMinute, ProcRoot: cfg.ProcRoot})
	d.release = append(d.release, d.audit.Close)
	if cfg.LogCalls {
		d.callLog = netlimit.NewLineLimiter(cfg.LogBurst, cfg.LogPerMinute, func(source string, n uint64) {
			log.Info("calls not logged", "source", source, "not_logged", n, "why", "each source's call lines are rate-limited")
		})
		d.release = append(d.release, d.callLog.Flush)
	}
	d.reg = registry.New(registry.Options{
		Insecure:           cfg.Insecure,
		MaxNamedPerProcess: cfg.MaxNamedPerProcess,
		MaxRPCPerUID:       cfg.MaxRPCPerUID,
		MaxRPCBytesPerUID:  cfg.MaxRPCBytesPerUID,
		MaxProcessesPerUID: cfg.MaxProcessesPerUID,
		Logger:             log.With("part", "registry"),
		FeedSize:           cfg.WatchHistory,
		Observer:           obs.registry,
	})
	if d.metrics != nil {
		d.metrics.WatchRegistry(d.reg)
	}
	// One list of the host's addresses, kept fresh by the kernel's
	// announcements, serves address merging and the pruner alike.
	d.addrs = ifaddrs.ReadSource
	if table, err := ifaddrs.Open(); err != nil {
		log.Warn("cannot follow address changes; reading the interfaces on every call", "err", err)
	} else {
		d.release = append(d.release, func() { table.Close() })
		d.addrs = table.Addrs
	}
	d.life, err = lifetime.New(d.reg, lifetime.Config{
		Logger:        log.With("part", "lifetime"),
		ProcRoot:      cfg.ProcRoot,
		MaxPidfds:     cfg.MaxPidfds,
		PollInterval:  cfg.ProcPollInterval,
		NoPrune:       cfg.NoPrune,
		PruneGrace:    cfg.PruneGrace,
		PruneInterval: cfg.PruneInterval,
		Interfaces:    d.addrs,
		Observer:      obs.lifetime,
	})
	if err != nil {
		return nil, err
	}
	d.release = append(d.release, func() { _ = d.life.Close() })
	ccfg := cfg.Checks
	ccfg.Logger, ccfg.Interfaces, ccfg.Removed = log.With("part", "health"), d.addrs, d.life.Deregistered
	ccfg.Observer = obs.health
	d.checks = health.New(d.reg, ccfg)
	d.release = append(d.release, func() { _ = d.checks.Close() })
	// One remote source has one budget of reply bytes, over RPC and DNS
	// together, against reflection.
	replies := netlimit.NewReplyBuckets(cfg.UDPReplyRate, cfg.UDPReplyBurst)
	if d.dnsUDP != nil {
		d.dns = dnsmap.NewServer(d.reg, dnsmap.Config{
			Hostname:   cfg.HTTP.Hostname,
			RPCNames:   cfg.HTTP.RPCNames,
			Interfaces: d.addrs,
			ReplyLimit: replies,
			Budget:     budget,
			Observer:   obs.limits,
			Logger:     log.With("face", "dns"),
		})
	}
	hcfg := cfg.HTTP
	hcfg.Logger = log.With("face", "http")
	hcfg.Budget = budget
	hcfg.Checks = d.checks
	hcfg.Observer = obs.http
	hcfg.Audit = d.audit
	if d.metrics != nil {
		hcfg.Metrics, hcfg.MetricsFrom = d.metrics.Handler(), cfg.MetricsFrom
	}
	if len(cfg.Fleet.Endpoints) > 0 {
		fcfg := cfg.Fleet
		fcfg.Logger, fcfg.Interfaces, fcfg.Version = log.With("part", "fleet"), d.addrs, buildinfo.Version
		if d.fleet, err = fleet.New(d.reg, fcfg); err != nil {
			return nil, err
		}
		hcfg.Fleet = d.fleet
	}
	d.web, err = httpmap.NewServer(d.reg, d.life, hcfg)
	if err != nil {
		return nil, err
	}
	d.release = append(d.release, func() { _ = d.web.Close() })
	if d.muxLn != nil {
		mcfg := cfg.TCPMux
		mcfg.Logger = log.With("face", "tcpmux")
		mcfg.Budget = budget
		mcfg.Observer = obs.limits
		d.mux = tcpmux.NewServer(d.reg, mcfg)
	}
	var mux oncrpc.ServeMux
	eps := d.ls.endpoints()
	pm := &rpcbind.Portmapper{Registry: d.reg, Insecure: cfg.Insecure, Interfaces: d.addrs, Audit: d.audit}
	if cfg.RemoteCalls {
		if pm.Forwarder, err = openForwarder(cfg.RemoteCallLimits, log); err != nil {
			return nil, err
		}
		d.release = append(d.release, func() { _ = pm.Forwarder.Close() })
		if d.multicast = newMulticastMember(d.ls, log); d.multicast != nil {
			d.multicast.join()
		}
	}
	for _, ep := range eps {
		pm.Netids = append(pm.Netids, ep.Netid)
	}
	pm.Register(&mux)
	for _, e := range pm.SelfEntries(eps) {
		if _, err := d.reg.Set(registry.Caller{Transport: registry.Internal}, e); err != nil {
			return nil, fmt.Errorf("daemon: registering the portmapper: %w", err)
		}
	}
	// Saved registrations are back before the first request is read:
	// portmapd's own state and what rpcbind left with -w.
	var warm warmstart.Saved
	if cfg.WarmStart {
		warm = readWarmStart(cfg.WarmStartDir, log)
	}
	d.journal, err = restoreState(ctx, cfg, d.reg, d.life, warm, obs.journal, log)
	if err != nil {
		// Stopped while reading the state: nothing was written, so
		// that the next start finds everything as it was.
		return nil, err
	}
	if d.journal != nil {
		d.release = append(d.release, func() { _ = d.journal.Close() })
	}
	if !gate.commit() {
		return nil, errAbandoned
	}
	if cfg.WarmStart {
		// As rpcbind does, so that a later start does not bring
		// them back; they are in the state directory now.
		if err := warmstart.Remove(cfg.WarmStartDir); err != nil {
			log.Warn("cannot remove rpcbind's warm-start files", "err", err)
		}
	}
	d.srv = &oncrpc.Server{
		Handler:           &mux,
		Logger:            log,
		LogCalls:          cfg.LogCalls,
		CallLog:           d.callLog,
		MaxMessage:        cfg.MaxMessage,
		IdleTimeout:       cfg.IdleTimeout,
		RecordTimeout:     cfg.RecordTimeout,
		MaxConns:          cfg.MaxConns,
		MaxConnsPerSource: cfg.MaxConnsPerSource,
		Budget:            budget,
		ReplyLimit:        replies,
		Abort:             cfg.AbortOnError,
		Divert:            d.web.Divert,
		Observer:          obs.rpc,
	}
	return d, nil
}

// observers are the observer of each part, all d.metrics or all nil.
type observers struct {
	registry registry.Observer
	lifetime lifetime.Observer
	health   health.Observer
	journal  journal.Observer
	http     httpmap.Observer
	rpc      oncrpc.Observer
	limits   netlimit.Observer
}

// observers makes d.metrics when cfg asks for it, and returns it as each
// part's observer; without it they are nil interfaces, not interfaces
// holding a nil pointer.
func (d *daemon) observers(cfg Config) observers {
	if !cfg.Metrics {
		return observers{}
	}
	d.metrics = metrics.New()
	m := d.metrics
	return observers{registry: m, lifetime: m, health: m, journal: m, http: m, rpc: m, limits: m}
}

// serve serves until ctx is done or a listener fails, then writes the
// warm-start files when asked to and releases everything.
func (d *daemon) serve(ctx context.Context, log *slog.Logger) error {
	defer d.close()
	cfg := d.cfg
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	serve := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil {
				cancel(fmt.Errorf("%s: %w", name, err))
			}
		}()
	}
	// Changes are saved from now on, before the first that the
	// lifetime keeper makes: the removal of restored services whose
	// process exited since the start.
	if d.journal != nil {
		d.journal.Start()
	}
	serve("lifetime", func() error { return d.life.Run(ctx) })
	serve("health", func() error { return d.checks.Run(ctx) })
	if d.dns != nil {
		serve("dns", func() error { return d.dns.Serve(ctx, d.dnsUDP, d.dnsTCP) })
	}
	if d.multicast != nil {
		serve("multicast", func() error { d.multicast.follow(ctx); return nil })
	}
	for _, u := range d.ls.udp {
		serve(string(u.netid), func() error { return d.srv.ServeUDP(ctx, u.conn, string(u.netid)) })
	}
	for _, t := range d.ls.stream {
		serve(string(t.netid), func() error { return d.srv.ServeStream(ctx, t.ln, string(t.netid)) })
	}
	serve("http", func() error { return d.web.ServeListeners(ctx, d.webLs) })
	if d.fleet != nil {
		serve("fleet", func() error { return d.fleet.Run(ctx) })
	}
	log.Info("portmapd serving", "port", d.ls.port, "transports", d.ls.describe())
	logHTTPServing(log, d.webLs, d.ls)
	if d.dns != nil {
		log.Info("serving DNS", "addr", d.dnsUDP.LocalAddr().String())
	}
	if d.mux != nil {
		serve("tcpmux", func() error { return d.mux.Serve(ctx, d.muxLn) })
		log.Info("serving TCPMUX", "addr", d.muxLn.Addr().String())
	}
	if cfg.Ready != nil {
		cfg.Ready()
	}
	<-ctx.Done()
	wg.Wait()
	if cfg.WarmStart {
		writeWarmStart(cfg.WarmStartDir, d.reg, log)
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("portmapd stopped", "err", err)
		return &ReportedError{err}
	}
	log.Info("portmapd stopped")
	return nil
}

// logHTTPUnavailable says, in one line, which listener of the HTTP face
// could not be opened, that RPC is served regardless, and how to change
// or silence it.
func logHTTPUnavailable(log *slog.Logger, e *httpmap.ListenError) {
	if e.Socket {
		log.Error("HTTP registration socket unavailable; serving RPC without it", "socket", e.Addr, "err", e.Err,
			"fix", "choose another with --http-socket PATH, or disable it with --http-socket off")
		return
	}
	log.Error("HTTP listing address unavailable; serving RPC without it", "addr", e.Addr, "err", e.Err,
		"fix", "choose another with --http ADDR, or disable it with --http off")
}

// logHTTPServing says where the HTTP face is served: its own listeners,
// and the RPC port's TCP connections that are not RPC.
func logHTTPServing(log *slog.Logger, webLs []net.Listener, ls *listeners) {
	var attrs []any
	for _, l := range webLs {
		if l.Addr().Network() == "unix" {
			attrs = append(attrs, "socket", l.Addr().String())
		} else {
			attrs = append(attrs, "addr", l.Addr().String())
		}
	}
	for _, t := range ls.stream {
		if t.netid == netid.TCP || t.netid == netid.TCP6 {
			attrs = append(attrs, "rpc_tcp_port", ls.port)
			break
		}
	}
	log.Info("serving HTTP", attrs...)
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		_ = l.Close()
	}
}

// descriptorBudget raises the soft RLIMIT_NOFILE to the hard limit and
// returns the budget of descriptors that network connections share: the
// limit less the reserve and less the pidfds of watched processes
// (maxPidfds, or the watcher's default for the raised limit).
func descriptorBudget(reserve, maxPidfds int, log *slog.Logger) (*netlimit.Budget, error) {
	if reserve <= 0 {
		reserve = netlimit.DefaultReserve
	}
	if _, err := netlimit.RaiseDescriptorLimit(); err != nil {
		// Serve within the limit there is.
		log.Warn("cannot raise the descriptor limit", "err", err)
	}
	if maxPidfds <= 0 {
		maxPidfds = lifetime.DefaultMaxPidfds()
	}
	b, limit, err := netlimit.DescriptorBudget(reserve + maxPidfds)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	log.Debug("descriptor budget", "rlimit_nofile", limit, "network_connections", b.Max())
	return b, nil
}

type udpSocket struct {
	netid netid.ID
	conn  *net.UDPConn
}

type streamSocket struct {
	netid netid.ID
	ln    net.Listener
}

type listeners struct {
	port   int
	udp    []udpSocket
	stream []streamSocket
	// skipped names the IPv6 sockets not opened on a host without IPv6.
	skipped []string
	// socket is the local socket's path, removed on close.
	socket string
}

func (ls *listeners) close() {
	for _, u := range ls.udp {
		_ = u.conn.Close()
	}
	for _, t := range ls.stream {
		_ = t.ln.Close()
	}
}

func (ls *listeners) describe() []string {
	var out []string
	for _, t := range ls.stream {
		out = append(out, string(t.netid)+" "+t.ln.Addr().String())
	}
	for _, u := range ls.udp {
		out = append(out, string(u.netid)+" "+u.conn.LocalAddr().String())
	}
	return out
}

// endpoints lists each served netid once with the universal address the
// portmapper registers itself under.
func (ls *listeners) endpoints() []rpcbind.Endpoint {
	seen := map[netid.ID]bool{}
	var eps []rpcbind.Endpoint
	add := func(id netid.ID) {
		if seen[id] {
			return
		}
		seen[id] = true
		addr := ls.socket
		if id != netid.Local {
			addr = netid.WildcardUaddr(id, uint16(ls.port))
		}
		eps = append(eps, rpcbind.Endpoint{Netid: id, Addr: addr})
	}
	for _, t := range ls.stream {
		add(t.netid)
	}
	for _, u := range ls.udp {
		add(u.netid)
	}
	return eps
}

// listen opens UDP and TCP on IPv4 and IPv6. IPv6 sockets are v6-only, as
// rpcbind's are, so that an IPv4 caller is always seen as IPv4.
//
// A host without IPv6 is served on IPv4, and Run says so in one line (also
// under socket activation, where systemd, on a kernel without IPv6, leaves
// the IPv6 listen addresses out). Where the kernel has no IPv6
// (socket(AF_INET6) fails: ipv6.disable=1, or a sandbox that forbids the
// family), no IPv6 socket is opened. Where IPv6 is switched off
// (net.ipv6.conf.all.disable_ipv6=1), the wildcard sockets still open, as
// rpcbind's do, so that IPv6 is served as soon as it is switched on and the
// transports services register on stay known; only the addresses UDP
// would bind that do not exist then (::1, IPv6 -h addresses) are left out,
// where rpcbind aborts.
func listen(cfg Config, log *slog.Logger) (*listeners, error) {
	ls := &listeners{port: cfg.Port}
	if cfg.Socket != httpmap.Off {
		if err := ls.listenLocal(cfg.Socket, cfg.AbstractSocket, log); err != nil {
			return nil, err
		}
	}
	port := strconv.Itoa(cfg.Port)
	noIPv6 := probeIPv6(cfg.ProcRoot)
	// Go's "tcp" and "udp" would open dual-stack sockets on a wildcard
	// address; name the family.
	for _, fam := range []struct {
		tcp, udp                    netid.ID
		goTCP, goUDP, any, loopback string
	}{
		{netid.TCP, netid.UDP, "tcp4", "udp4", "0.0.0.0", "127.0.0.1"},
		{netid.TCP6, netid.UDP6, "tcp6", "udp6", "::", "::1"},
	} {
		v6 := fam.tcp == netid.TCP6
		if v6 && noIPv6.absent {
			ls.skipped = append(ls.skipped, string(fam.tcp), string(fam.udp))
			continue
		}
		ln, err := net.Listen(fam.goTCP, net.JoinHostPort(fam.any, port))
		if err != nil {
			ls.close()
			return nil, fmt.Errorf("daemon: listen %s: %w", fam.tcp, err)
		}
		if ls.port == 0 {
			ls.port = ln.Addr().(*net.TCPAddr).Port
			port = strconv.Itoa(ls.port)
		}
		ls.stream = append(ls.stream, streamSocket{netid: fam.tcp, ln: ln})
		for _, host := range udpHosts(cfg.UDPAddrs, fam.any, fam.loopback, v6) {
			conn, err := net.ListenPacket(fam.goUDP, net.JoinHostPort(host, port))
			if err != nil {
				if v6 && noIPv6.reason != "" {
					ls.skipped = append(ls.skipped, string(fam.udp)+" "+host)
					continue
				}
				ls.close()
				return nil, fmt.Errorf("daemon: listen %s %s: %w", fam.udp, host, err)
			}
			ls.udp = append(ls.udp, udpSocket{netid: fam.udp, conn: conn.(*net.UDPConn)})
		}
	}
	return ls, nil
}

// ipv6State is what probeIPv6 found: absent when the kernel opens no IPv6
// socket at all, and why IPv6 cannot be used ("" when it can).
type ipv6State struct {
	absent bool
	reason string
}

// probeIPv6 looks for IPv6 in the calling thread's network namespace.
func probeIPv6(procRoot string) ipv6State {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return ipv6State{absent: true, reason: "socket(AF_INET6): " + err.Error()}
	}
	unix.Close(fd)
	if procRoot == "" {
		procRoot = lifetime.DefaultProcRoot
	}
	b, err := os.ReadFile(procRoot + "/sys/net/ipv6/conf/all/disable_ipv6")
	if err == nil && strings.TrimSpace(string(b)) == "1" {
		return ipv6State{reason: "net.ipv6.conf.all.disable_ipv6=1"}
	}
	return ipv6State{}
}

// inherit serves the sockets systemd passed.
func inherit(socks []systemd.Socket) (*listeners, error) {
	ls := &listeners{}
	for _, s := range socks {
		switch {
		case s.PacketConn != nil:
			ls.udp = append(ls.udp, udpSocket{netid: s.Netid, conn: s.PacketConn})
			if ls.port == 0 {
				ls.port = s.PacketConn.LocalAddr().(*net.UDPAddr).Port
			}
		case s.Netid == netid.Local:
			name := s.Listener.Addr().String()
			if ls.socket == "" && !strings.HasPrefix(name, "@") {
				ls.socket = name
			}
			ls.stream = append(ls.stream, streamSocket{netid: s.Netid, ln: s.Listener})
		default:
			ls.stream = append(ls.stream, streamSocket{netid: s.Netid, ln: s.Listener})
			if ls.port == 0 {
				ls.port = s.Listener.Addr().(*net.TCPAddr).Port
			}
		}
	}
	return ls, nil
}

// udpHosts returns the addresses of one family that UDP binds: the
// wildcard, or the -h addresses of that family plus its loopback.
func udpHosts(addrs []string, any, loopback string, v6 bool) []string {
	if len(addrs) == 0 {
		return []string{any}
	}
	hosts := []string{loopback}
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.Is6() != v6 || ip.String() == loopback {
			continue
		}
		hosts = append(hosts, ip.String())
	}
	return hosts
}
