// Package health runs the checks of registrations and records what they
// find in the registry: each instance is passing, warning or critical, and
// listings, lookups that ask for passing instances and the DNS face go by
// it. A Checker does all of it: New starts nothing, Run works until its
// context ends, Close ends Run.
//
// A named registration may carry checks (registry.Checks), each usable
// without the others: a TTL the service refreshes itself (Refresh, which
// the HTTP face's PUT on a registration calls), and active checks the
// Checker makes every interval: a TCP connect, an HTTP GET, an RPC NULL
// call. RPC registrations, which carry no checks of their own, get a NULL
// call every Config.RPCInterval when that is set; an RPC registration not
// checked (the interval is not set, or it cannot be probed from here) is
// passing, whatever checks under other settings found before. The status of an
// instance is the worst of its checks'; a registration that stays
// critical for its DeregisterAfter is removed, as the daemon's own
// removal, with the reason.
//
// Health and life are separate questions. registry/lifetime decides
// whether a registration exists at all (its process runs); this package
// only judges whether a living registration answers. So a registration
// whose process exits goes at once, whatever its checks said, and one
// removed here for being critical is handed to Config.Removed, which the
// daemon points at the lifetime keeper's Deregistered, so that it stops
// watching a process left with no services.
//
// The checks' traffic never leaves the host: a named service is probed
// on a loopback address (or at its AF_UNIX path), since it was registered
// by a port on this host, an HTTP check GETs a path (never another host)
// and follows no redirect, and an RPC registration is probed only when
// its address is a loopback, wildcard or local socket address, or one of
// the host's own.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/portmapd/portmapd/internal/lifecycle"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// Defaults of Config.
const (
	DefaultConcurrency = 16
	DefaultTimeout     = 5 * time.Second
	DefaultInterval    = 10 * time.Second
)

// tick is how often due checks and expired TTLs are looked for, and so
// how late either may be seen.
const tick = 250 * time.Millisecond

// Errors of Run and Refresh.
var (
	ErrClosed  = errors.New("health: closed")
	ErrRunning = errors.New("health: already running")
	// ErrNoTTL reports a refresh of registrations none of which has a
	// TTL to refresh.
	ErrNoTTL = errors.New("no ttl check to refresh")
)

// Config configures a Checker, as the daemon's flags give it.
type Config struct {
	// Logger receives the log; nothing is logged when nil.
	Logger *slog.Logger
	// Concurrency is how many checks may run at once;
	// DefaultConcurrency when zero. A check that finds no room waits
	// for the next tick.
	Concurrency int
	// Timeout is the longest a check may take, unless the registration
	// asks for less; DefaultTimeout when zero. A check never takes
	// longer than its interval.
	Timeout time.Duration
	// Interval is the time between active checks of a registration that
	// does not give its own; DefaultInterval when zero.
	Interval time.Duration
	// RPCInterval, when non-zero, checks every RPC registration that can
	// be reached on this host with a NULL call this often. The
	// portmapper's own registrations are not checked.
	RPCInterval time.Duration
	// Interfaces lists this host's addresses, for telling which RPC
	// registrations may be probed; ifaddrs.ReadSource when nil.
	Interfaces ifaddrs.Source
	// Removed is told the services removed for staying critical, after
	// they are removed; the daemon points it at the lifetime keeper's
	// Deregistered.
	Removed func([]registry.Service)
	// Observer, when set, is told of each registration removed for
	// staying critical, for metrics.
	Observer Observer
	// Now returns the time; time.Now when nil.
	Now func() time.Time
}

// CauseCritical is the cause an Observer is told of a removal for
// staying critical longer than its DeregisterAfter, beside
// registry/lifetime's causes of the daemon's own removals.
const CauseCritical = "critical"

// An Observer is told of the registrations a Checker removes, for
// counting (the daemon's metrics); lifetime.Observer's Removed is the
// same, so one counter serves both. It must only count and return.
type Observer interface {
	// Removed is told of each registration removed: kind "named",
	// cause CauseCritical.
	Removed(kind, cause string)
}

// A Checker runs the checks of a registry's registrations. Its methods
// are safe for concurrent use.
type Checker struct {
	reg *registry.Registry
	cfg Config
	log *slog.Logger
	// sem holds a token for each check under way.
	sem chan struct{}
	// started is when the Checker was made: a TTL runs from then at the
	// earliest, so that a restart gives every restored registration one
	// whole TTL to refresh in.
	started time.Time

	// mu guards the targets and orders each change of their status with
	// its record in the registry.
	mu      sync.Mutex
	targets map[targetKey]*target
	// synced is the registry's index when the targets were last read
	// from it.
	synced uint64

	// life is Run and Close; the checks under way are its goroutines.
	life lifecycle.Guard
}

// New returns a Checker of reg's registrations. It starts nothing.
func New(reg *registry.Registry, cfg Config) *Checker {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Interfaces == nil {
		cfg.Interfaces = ifaddrs.ReadSource
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Checker{
		reg:     reg,
		cfg:     cfg,
		log:     cfg.Logger,
		sem:     make(chan struct{}, cfg.Concurrency),
		started: cfg.Now(),
		targets: map[targetKey]*target{},
		synced:  ^uint64(0),
	}
}

// targetKey names a registration for as long as it exists: a named
// service by its registry.ServiceKey, an RPC entry by its key, address,
// pid and registration time.
type targetKey struct {
	service registry.ServiceKey
	network netid.ID
	prog    uint32
	vers    uint32
	addr    string
	pid     int32
	at      int64
}

func serviceKey(s registry.Service) targetKey {
	return targetKey{service: s.Key()}
}

func entryKey(e registry.Entry) targetKey {
	return targetKey{network: e.Netid.Lower(), prog: e.Prog, vers: e.Vers, addr: e.Addr, pid: e.PID, at: e.Registered.UnixNano()}
}

// A target is one registration being checked, and what its checks last
// found.
type target struct {
	svc   registry.Service
	entry *registry.Entry
	// checks are the service's, or for an entry its NULL call.
	checks registry.Checks
	// where the active checks go; empty when the registration cannot be
	// probed from here.
	eps []endpoint

	// health is what the registry holds; criticalSince is when it
	// became critical, zero when it is not.
	health        registry.Health
	criticalSince time.Time
	// ttl and active are the TTL's and the active checks' last
	// findings; deadline is when the TTL runs out.
	ttl, active registry.Health
	deadline    time.Time
	// next is when the active checks are next due; running is set
	// while they run.
	next    time.Time
	running bool
}

// Run checks until ctx is done or Close is called, and returns nil then,
// once every check under way has ended. It fails at once with ErrClosed
// after Close and with ErrRunning while another Run is under way.
func (c *Checker) Run(ctx context.Context) error {
	ctx, end, err := c.life.Start(ctx, ErrClosed, ErrRunning)
	if err != nil {
		return err
	}
	defer end()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		c.step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Close ends Run and waits for it, and for the checks under way, to
// return.
func (c *Checker) Close() error {
	c.life.Close()
	return nil
}

// step brings the targets up to date with the registry, runs the checks
// that are due, marks expired TTLs and removes what stayed critical too
// long.
func (c *Checker) step(ctx context.Context) {
	var removed []registry.Service
	c.mu.Lock()
	c.sync()
	now := c.cfg.Now()
	for k, t := range c.targets {
		if t.checks.TTL > 0 && t.ttl.Status != registry.Critical && !now.Before(t.deadline) {
			t.ttl = registry.Health{Status: registry.Critical, Output: fmt.Sprintf("not refreshed within its ttl of %v", t.checks.TTL)}
			c.report(t, now)
		}
		if t.checks.Active() && len(t.eps) > 0 && !t.running && !now.Before(t.next) {
			c.launch(ctx, k, t, now)
		}
		if after := t.checks.DeregisterAfter; after > 0 && t.entry == nil && t.health.Status == registry.Critical && now.Sub(t.criticalSince) >= after {
			reason := fmt.Sprintf("critical for %v (deregister_after=%v): %s", now.Sub(t.criticalSince).Round(time.Second), after, t.health.Output)
			if gone := c.reg.RemoveUnhealthy(t.svc, reason); len(gone) > 0 {
				removed = append(removed, gone...)
				c.log.Info("deregistered: critical for too long", "service", t.svc.Name, "endpoint", t.svc.Endpoint(), "pid", t.svc.PID, "reason", reason)
			}
			delete(c.targets, k)
		}
	}
	c.mu.Unlock()
	if c.cfg.Observer != nil {
		for range removed {
			c.cfg.Observer.Removed("named", CauseCritical)
		}
	}
	if len(removed) > 0 && c.cfg.Removed != nil {
		c.cfg.Removed(removed)
	}
}

// sync reads the registrations to check from the registry when it has
// changed since the last time; c.mu must be held.
func (c *Checker) sync() {
	index := c.reg.Index()
	if index == c.synced {
		return
	}
	c.synced = index
	seen := make(map[targetKey]bool, len(c.targets))
	for _, s := range c.reg.Checked() {
		k := serviceKey(s)
		seen[k] = true
		if t := c.targets[k]; t != nil {
			t.svc = s
			continue
		}
		c.targets[k] = c.newTarget(s, nil)
	}
	// The walk holds the registry's lock: what it finds is acted on
	// after it.
	var local []netip.Addr
	var unchecked []registry.Entry
	for e := range c.reg.All() {
		k := entryKey(e)
		if c.targets[k] != nil {
			seen[k] = true
			continue
		}
		var eps []endpoint
		checked := c.cfg.RPCInterval > 0 && e.Prog != xdr.PmapProg
		if checked {
			eps, checked = entryEndpoints(e, func() []netip.Addr {
				if local == nil {
					local = c.hostAddrs()
				}
				return local
			})
		}
		if !checked {
			if e.Health.Status != registry.Passing {
				unchecked = append(unchecked, e)
			}
			continue
		}
		seen[k] = true
		t := c.newTarget(registry.Service{}, &e)
		t.eps = eps
		c.targets[k] = t
	}
	// Not checked (any more): a status that checks found under other
	// settings no longer stands.
	for _, e := range unchecked {
		c.reg.SetEntryHealth(e, registry.Health{Output: "not checked"})
	}
	for k := range c.targets {
		if !seen[k] {
			delete(c.targets, k)
		}
	}
}

// hostAddrs lists this host's addresses; none when they cannot be read,
// so that no address is taken for the host's.
func (c *Checker) hostAddrs() []netip.Addr {
	list, err := c.cfg.Interfaces(netip.Addr{})
	if err != nil {
		c.log.Warn("cannot list the interfaces' addresses; only loopback RPC registrations are checked", "err", err)
	}
	out := []netip.Addr{}
	for _, a := range list {
		out = append(out, a.Prefix.Addr())
	}
	return out
}

// newTarget starts checking a service, or the entry e when it is not nil,
// from the health the registry holds.
func (c *Checker) newTarget(s registry.Service, e *registry.Entry) *target {
	now := c.cfg.Now()
	t := &target{svc: s, entry: e, checks: s.Checks, health: s.Health}
	if e != nil {
		t.health = e.Health
		t.checks = registry.Checks{RPC: true, RPCProg: e.Prog, RPCVers: e.Vers, Interval: c.cfg.RPCInterval}
	} else {
		t.eps = serviceEndpoints(s)
	}
	if t.health.Status == registry.Critical {
		t.criticalSince = t.health.Since
		if t.criticalSince.IsZero() {
			t.criticalSince = now
		}
	}
	// What the registry holds stands for each check until it reports
	// anew: a TTL that had run out stays out until the service
	// refreshes, and the active checks run at once.
	t.ttl, t.active = t.health, t.health
	if t.checks.TTL > 0 {
		from := s.Registered
		if from.Before(c.started) {
			from = c.started
		}
		t.deadline = from.Add(t.checks.TTL)
	}
	t.next = now
	return t
}

// interval and timeout are a target's, within the Checker's bounds.
func (c *Checker) interval(t *target) time.Duration {
	if t.checks.Interval > 0 {
		return t.checks.Interval
	}
	return c.cfg.Interval
}

func (c *Checker) timeout(t *target) time.Duration {
	d := c.cfg.Timeout
	if t.checks.Timeout > 0 {
		d = t.checks.Timeout
	}
	return min(d, c.interval(t))
}

// launch runs t's active checks in a goroutine of their own when there is
// room for one; c.mu must be held.
func (c *Checker) launch(ctx context.Context, k targetKey, t *target, now time.Time) {
	select {
	case c.sem <- struct{}{}:
	default:
		return // all busy: at the next tick
	}
	t.running = true
	t.next = now.Add(c.interval(t))
	checks, eps, timeout := t.checks, t.eps, c.timeout(t)
	c.life.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		h := probe(cctx, checks, eps)
		cancel()
		<-c.sem
		if ctx.Err() != nil {
			return // stopping: what a cut-short check found is no finding
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.targets[k] != t {
			return // removed meanwhile
		}
		t.running = false
		t.active = h
		c.report(t, c.cfg.Now())
	})

}

// report records t's status, the worst of its checks', in the registry
// when it changed; c.mu must be held.
func (c *Checker) report(t *target, now time.Time) {
	h := t.active
	if t.checks.TTL > 0 && (!t.checks.Active() || t.ttl.Status > h.Status) {
		h = t.ttl
	}
	if h.Status == t.health.Status {
		if h.Output != t.health.Output {
			// Not a change: the output shown, and nobody woken.
			t.health.Output = h.Output
			if t.entry != nil {
				c.reg.SetEntryHealth(*t.entry, t.health)
			} else {
				c.reg.SetHealth(t.svc, t.health)
			}
		}
		return
	}
	h.Since = now
	var changed bool
	if t.entry != nil {
		changed = c.reg.SetEntryHealth(*t.entry, h)
		t.entry.Health = h
	} else {
		changed = c.reg.SetHealth(t.svc, h)
	}
	if !changed {
		return // gone from the registry; the next sync drops it
	}
	t.health = h
	t.criticalSince = time.Time{}
	if h.Status == registry.Critical {
		t.criticalSince = now
	}
	if t.entry != nil {
		e := t.entry
		c.log.Info("health changed", "prog", e.Prog, "vers", e.Vers, "netid", e.Netid, "addr", e.Addr, "status", h.Status.String(), "output", h.Output)
		return
	}
	c.log.Info("health changed", "service", t.svc.Name, "endpoint", t.svc.Endpoint(), "pid", t.svc.PID, "status", h.Status.String(), "output", h.Output)
}

// Refresh refreshes the TTL of the services named name that c may change
// (its own uid's; root, anyone's), setting their TTL's status to status,
// with note as its output, and returns them as they are now. It fails
// with the registry's errors (ErrNotLocal, ErrNotFound), and with ErrNoTTL
// when none of them has a TTL. A refresh that finds the status it had is
// no change, and wakes no watcher.
func (c *Checker) Refresh(caller registry.Caller, name string, status registry.Status, note string) ([]registry.Service, error) {
	svcs, err := c.reg.NamedFor(caller, name)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	var out []registry.Service
	for _, s := range svcs {
		if s.Checks.TTL <= 0 {
			continue
		}
		k := serviceKey(s)
		t := c.targets[k]
		if t == nil {
			t = c.newTarget(s, nil)
			c.targets[k] = t
		}
		t.ttl = registry.Health{Status: status, Output: note}
		t.deadline = now.Add(s.Checks.TTL)
		c.report(t, now)
		s.Health = t.health
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, &registry.NamedError{Name: name, Err: ErrNoTTL}
	}
	return out, nil
}
