package lifetime

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/registry"
)

// Defaults of the pruner's settings in Config.
const (
	DefaultPruneGrace    = 30 * time.Second
	DefaultPruneInterval = 30 * time.Second
	// UnknownMisses is how many checks in a row the port of a
	// registration with no known process must be found unbound.
	UnknownMisses = 2
)

// pruneConfig configures a pruner.
type pruneConfig struct {
	// Grace is how long after registering a service may take to bind
	// before its registration can be removed.
	Grace time.Duration
	// Interval is the time between checks.
	Interval time.Duration
	// ProcRoot is where /proc is mounted, DefaultProcRoot when empty.
	ProcRoot string
	Logger   *slog.Logger
	// Now returns the time; time.Now when nil.
	Now func() time.Time
	// Table reads the socket table; when nil, ReadKernelTable, or
	// ReadTable(ProcRoot) for a ProcRoot other than /proc.
	Table func() (*Table, error)
	// Interfaces lists this host's addresses; ifaddrs.ReadSource when
	// nil. The daemon passes the ifaddrs.Table the portmapper uses.
	Interfaces ifaddrs.Source
	// NetNS is the cookie of the daemon's network namespace, which
	// registrations carry when they were made over a local socket;
	// the calling process's when 0.
	NetNS uint64
	// Observer, when set, is told of each removal.
	Observer Observer
}

// A pruner removes registrations whose service is gone:
//
//   - The portmapper's own entries (program 100000) are never touched.
//   - Nothing is removed sooner than Grace after it was registered.
//   - An address that is not on this host is never judged by a port
//     check that cannot see it; neither is a registration made from
//     another network namespace.
//   - A registration whose process (recorded through SO_PEERCRED) still
//     runs is kept. Once it has exited (or its pid belongs to a process
//     started after the registration), the registration stays only while
//     something is bound to its port and protocol, as when the daemon
//     forked: the first check that finds the port free removes it.
//   - A registration with no known process (loopback v2 SET, the kernel)
//     is removed when UnknownMisses checks in a row find its port free.
type pruner struct {
	reg *registry.Registry
	cfg pruneConfig
	log *slog.Logger

	mu     sync.Mutex
	misses map[missKey]int
	// netns caches the network namespace of live registering processes
	// whose entries carry no namespace cookie (kernels before 5.14,
	// state saved before cookies were recorded), so that it is still
	// known after they exit.
	netns map[missKey]string
	ownNS string
	boot  bootClock
}

type missKey struct {
	prog, vers uint32
	netid      netid.ID
	pid        int32
	registered int64
}

// newPruner returns a pruner of reg.
func newPruner(reg *registry.Registry, cfg pruneConfig) *pruner {
	if cfg.Grace < 0 {
		cfg.Grace = 0
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultPruneInterval
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = DefaultProcRoot
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Table == nil {
		root := cfg.ProcRoot
		cfg.Table = func() (*Table, error) { return ReadTable(root) }
		if root == DefaultProcRoot {
			cfg.Table = ReadKernelTable
		}
	}
	if cfg.Interfaces == nil {
		cfg.Interfaces = ifaddrs.ReadSource
	}
	if cfg.NetNS == 0 {
		cfg.NetNS, _ = peer.OwnNetNS()
	}
	p := &pruner{reg: reg, cfg: cfg, log: cfg.Logger, misses: map[missKey]int{}, netns: map[missKey]string{}}
	p.ownNS = netNS(cfg.ProcRoot, 0)
	p.boot = readBootClock(cfg.ProcRoot)
	return p
}

// run checks every Interval until ctx is done.
func (p *pruner) run(ctx context.Context) {
	every(ctx, p.cfg.Interval, func() { p.check() })
}

// check reads the socket table once, removes the registrations found gone
// and returns them.
func (p *pruner) check() []registry.Entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	table, err := p.cfg.Table()
	if err != nil {
		p.log.Warn("cannot read the socket table; nothing pruned this time", "err", err)
		return nil
	}
	now := p.cfg.Now()
	var local map[netip.Addr]bool
	seen := make(map[missKey]bool)
	var pruned []registry.Entry
	for _, e := range p.reg.Entries() {
		k := missKey{e.Prog, e.Vers, e.Netid.Lower(), e.PID, e.Registered.UnixNano()}
		seen[k] = true
		if e.Prog == 100000 {
			continue
		}
		if e.NetNS != 0 && p.cfg.NetNS != 0 && e.NetNS != p.cfg.NetNS {
			continue // registered from another network namespace
		}
		bound, ok, where := p.boundCheck(table, e, &local)
		if !ok {
			continue // not something a port check here can judge
		}
		if e.PID != 0 {
			if startedBy(p.cfg.ProcRoot, e.PID, e.Registered, p.boot) {
				if ns := netNS(p.cfg.ProcRoot, e.PID); ns != "" {
					p.netns[k] = ns
				}
				continue
			}
			if ns := p.netns[k]; ns != "" && p.ownNS != "" && ns != p.ownNS {
				continue // registered from another network namespace
			}
		}
		if now.Sub(e.Registered) < p.cfg.Grace {
			continue
		}
		if bound {
			delete(p.misses, k)
			continue
		}
		var reason string
		cause := CauseProcessExited
		if e.PID != 0 {
			reason = fmt.Sprintf("registering process %d has exited and nothing is bound to %s", e.PID, where)
		} else {
			p.misses[k]++
			if p.misses[k] < UnknownMisses {
				continue
			}
			reason = fmt.Sprintf("no registering process is known and nothing has been bound to %s for %d checks", where, UnknownMisses)
			cause = CauseUnbound
		}
		if p.reg.Prune(e, reason) {
			removed(p.cfg.Observer, "rpc", cause, 1)
			pruned = append(pruned, e)
			p.logPruned(e, reason)
		}
	}
	for k := range p.misses {
		if !seen[k] {
			delete(p.misses, k)
		}
	}
	for k := range p.netns {
		if !seen[k] {
			delete(p.netns, k)
		}
	}
	return pruned
}

// logPruned logs a removal. The registering pid is given when one is
// known; the network namespace never is, since only registrations made
// in the daemon's own are pruned.
func (p *pruner) logPruned(e registry.Entry, reason string) {
	attrs := []any{"prog", e.Prog, "vers", e.Vers, "netid", e.Netid, "addr", e.Addr, "owner", e.Owner}
	if e.PID != 0 {
		attrs = append(attrs, "pid", e.PID)
	}
	p.log.Info("pruned registration", append(attrs, "reason", reason)...)
}

// boundCheck says whether e's endpoint is bound; ok is false when the
// check cannot judge it (another host's address, an unknown netid, an
// unparsable address). where describes the endpoint for the log.
func (p *pruner) boundCheck(t *Table, e registry.Entry, local *map[netip.Addr]bool) (bound, ok bool, where string) {
	id := e.Netid.Lower()
	if id.IsLocal() {
		if !strings.HasPrefix(e.Addr, "/") {
			return false, false, ""
		}
		return t.BoundPath(e.Addr), true, "local socket " + e.Addr
	}
	if !id.IsIP() {
		return false, false, ""
	}
	ap, ok := netid.ParseUaddr(e.Addr)
	if !ok {
		return false, false, ""
	}
	host, port := ap.Addr(), ap.Port()
	if !host.IsUnspecified() && !host.IsLoopback() {
		if *local == nil {
			*local = map[netip.Addr]bool{}
			// A list that cannot be read leaves no address local, so
			// that no registration is judged by a check that cannot
			// see it.
			list, err := p.cfg.Interfaces(netip.Addr{})
			if err != nil {
				p.log.Warn("cannot list the interfaces' addresses", "err", err)
			}
			for _, a := range list {
				(*local)[a.Prefix.Addr()] = true
			}
		}
		if !(*local)[host.Unmap()] {
			return false, false, ""
		}
	}
	nc, _ := netid.Lookup(id)
	proto := UDP
	if nc.Proto == "tcp" {
		proto = TCP
	}
	return t.Bound(proto, port), true, nc.Proto + " port " + strconv.Itoa(int(port))
}
