package registry

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portmapd/portmapd/netid"
)

// A Status is how an instance's checks last found it. The zero value is
// Passing, which is what an instance without checks is; a worse status
// is a larger value, so that the worst of several is their maximum.
type Status uint8

// Statuses, from best to worst.
const (
	// Passing: every check answers as it should.
	Passing Status = iota
	// Warning: a check answers, but says it is in trouble (an HTTP check
	// answered 429, or the service reported warning with its refresh).
	Warning
	// Critical: a check got no good answer, or a TTL ran out.
	Critical
)

var statusNames = [...]string{Passing: "passing", Warning: "warning", Critical: "critical"}

// String returns passing, warning or critical.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// ErrBadStatus reports a status word that is not passing, warning or
// critical.
var ErrBadStatus = errors.New("status is not passing, warning or critical")

// ParseStatus reads passing, warning or critical, in any case.
func ParseStatus(s string) (Status, error) {
	for i, n := range statusNames {
		if strings.EqualFold(s, n) {
			return Status(i), nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrBadStatus, s)
}

// Bounds of the durations a registration's checks may ask for.
const (
	MinCheckDuration = time.Second
	MaxCheckDuration = 24 * time.Hour
	// MaxHTTPCheckPath bounds the path an HTTP check GETs.
	MaxHTTPCheckPath = 1024
)

// Checks are what a named registration asks the daemon to verify of its
// service, each usable without the others. The checks' own traffic never
// leaves the host: they go to the registered port on a loopback address,
// or to the registered AF_UNIX path.
type Checks struct {
	// TTL, when non-zero, is how often the service itself must refresh
	// its registration (PUT on it, or a client's KeepAlive); once it has
	// not for that long it is critical.
	TTL time.Duration
	// TCP connects to the registered port (or path).
	TCP bool
	// HTTP, when not empty, is the absolute path GET asks of the
	// registered port (or path): 2xx is passing, 429 warning, anything
	// else critical. Redirects are not followed.
	HTTP string
	// RPC sends a NULL call to program RPCProg version RPCVers at the
	// registered port (or path). RPCVers 0 asks for no version in
	// particular: a version mismatch is then an answer.
	RPC              bool
	RPCProg, RPCVers uint32
	// Interval is the time between active checks (TCP, HTTP, RPC), and
	// Timeout how long one may take; zero takes the checker's defaults.
	Interval, Timeout time.Duration
	// DeregisterAfter, when non-zero, removes the registration once it
	// has been critical that long.
	DeregisterAfter time.Duration
}

// Active reports whether c asks the daemon to probe the service.
func (c Checks) Active() bool { return c.TCP || c.HTTP != "" || c.RPC }

// Any reports whether c holds any check.
func (c Checks) Any() bool { return c.TTL > 0 || c.Active() }

// String lists the checks as a registration's form spells them, for logs
// and the page: "ttl=30s tcp http=/healthz rpc=100003/3 deregister_after=5m0s".
func (c Checks) String() string {
	var f []string
	if c.TTL > 0 {
		f = append(f, "ttl="+c.TTL.String())
	}
	if c.TCP {
		f = append(f, "tcp")
	}
	if c.HTTP != "" {
		f = append(f, "http="+c.HTTP)
	}
	if c.RPC {
		r := fmt.Sprintf("rpc=%d", c.RPCProg)
		if c.RPCVers != 0 {
			r += fmt.Sprintf("/%d", c.RPCVers)
		}
		f = append(f, r)
	}
	if c.Interval > 0 {
		f = append(f, "interval="+c.Interval.String())
	}
	if c.Timeout > 0 {
		f = append(f, "timeout="+c.Timeout.String())
	}
	if c.DeregisterAfter > 0 {
		f = append(f, "deregister_after="+c.DeregisterAfter.String())
	}
	return strings.Join(f, " ")
}

// Health is an instance's status as the checks last found it.
type Health struct {
	Status Status
	// Output says why, in one line: the failure, or what the service
	// reported with its refresh.
	Output string
	// Since is when Status last changed; zero for an instance that has
	// been passing since it registered without checks.
	Since time.Time
}

// checkChecks validates the checks s asks for.
func checkChecks(s Service) error {
	c := s.Checks
	bad := func(d string) error { return &NamedError{Name: s.Name, Err: ErrBadCheck, Detail: d} }
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ttl", c.TTL}, {"interval", c.Interval}, {"timeout", c.Timeout}, {"deregister_after", c.DeregisterAfter}} {
		if d.v != 0 && (d.v < MinCheckDuration || d.v > MaxCheckDuration) {
			return bad(fmt.Sprintf("%s=%v is not from %v to %v", d.name, d.v, MinCheckDuration, MaxCheckDuration))
		}
	}
	if (c.Interval != 0 || c.Timeout != 0) && !c.Active() {
		return bad("interval= and timeout= are for tcp, http and rpc checks")
	}
	if c.Timeout != 0 && c.Interval != 0 && c.Timeout > c.Interval {
		return bad("timeout= is longer than interval=")
	}
	if c.DeregisterAfter != 0 && !c.Any() {
		return bad("deregister_after= needs a check to go by")
	}
	if c.Active() && s.Network == netid.Unix && s.Flags&TCPMux != 0 {
		// The socket takes portmapd's hand-overs (tcpmux/handoff):
		// a probe would be refused there as a bad hand-over, and
		// would say nothing of the service's own protocol.
		return bad("a TCPMUX hand-off socket speaks the hand-off's exchange, not the service's protocol: only ttl= can check it")
	}
	stream := s.Network == netid.TCP || s.Network == netid.Unix
	if c.TCP && !stream {
		return bad("a tcp check needs a tcp or unix service")
	}
	if c.HTTP != "" {
		if !stream {
			return bad("an http check needs a tcp or unix service")
		}
		// Only a path: the host is always this one.
		if !strings.HasPrefix(c.HTTP, "/") || strings.HasPrefix(c.HTTP, "//") || len(c.HTTP) > MaxHTTPCheckPath {
			return bad(fmt.Sprintf("http=%q is not an absolute path of at most %d bytes", c.HTTP, MaxHTTPCheckPath))
		}
		if strings.ContainsFunc(c.HTTP, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '#' }) {
			return bad(fmt.Sprintf("http=%q holds a space, a control character or a fragment", c.HTTP))
		}
	}
	if c.RPC && c.RPCProg == 0 {
		return bad("an rpc check needs a program number")
	}
	if !c.RPC && (c.RPCProg != 0 || c.RPCVers != 0) {
		return bad("an rpc program without the rpc check")
	}
	return nil
}

// initialHealth is a new registration's health: critical until the
// first active check has answered, and passing for a registration that
// only has a TTL (registering is its first refresh) or no checks.
func initialHealth(c Checks, now time.Time) Health {
	if c.Active() {
		return Health{Status: Critical, Output: "not checked yet", Since: now}
	}
	return Health{}
}

// Checked returns the named services that have checks, in registration
// order, for registry/health to run them.
func (r *Registry) Checked() []Service {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Service
	for n := r.named.order.head; n != nil; n = n.next {
		if n.Checks.Any() {
			out = append(out, n.Service)
		}
	}
	return out
}

// NamedFor returns the services named name (in any case) that c may
// change: its own uid's, or every uid's for root and the daemon itself.
// It fails with ErrNotLocal for a caller without credentials and with
// ErrNotFound when there are none.
func (r *Registry) NamedFor(c Caller, name string) ([]Service, error) {
	mine, err := removable(c)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Service
	for _, n := range r.named.byName[lowerASCII(name)] {
		if mine(n) {
			out = append(out, n.Service)
		}
	}
	if len(out) == 0 {
		return nil, &NamedError{Name: name, Err: ErrNotFound}
	}
	return out, nil
}

// SetHealth records h as the health of the service s names (by name,
// endpoint and process) when its status differs from what is recorded,
// as a change of its own, and reports whether it did. The same status
// again is no change: only the output shown is replaced, which is not
// recorded and wakes no watcher, so that watchers wake only for a change
// of status. h.Since is set to now when zero.
func (r *Registry) SetHealth(s Service, h Health) bool {
	changed := false
	r.commit(func(cs *changeSet) {
		if n := r.named.find(s); n != nil && r.updateHealth(&n.Health, h) {
			cs.addService(OpServiceHealth, n.Service, h.Output)
			changed = true
		}
		return
	})
	return changed
}

// SetEntryHealth is SetHealth for the RPC entry e, found by its key,
// address, pid and registration time.
func (r *Registry) SetEntryHealth(e Entry, h Health) bool {
	return r.commitToRegistration(e, func(cs *changeSet, n nodeID) bool {
		held := r.rpc.health[n]
		changed := r.updateHealth(&held, h)
		// Kept aside only when it is not the zero Health of an
		// entry never checked.
		switch {
		case held == Health{}:
			delete(r.rpc.health, n)
		case r.rpc.health == nil:
			r.rpc.health = map[nodeID]Health{n: held}
		default:
			r.rpc.health[n] = held
		}
		if changed {
			cs.add(OpEntryHealth, r.rpc.entry(n), h.Output)
		}
		return changed
	})
}

// commitToRegistration runs change, within r.commit, on the node of the
// entry e when e is still registered as it was (findRegistration), and
// reports what change reports; false when e is gone or was registered
// again. It is how the daemon acts on an entry it looked at earlier
// without the lock (to check it, or to prune it).
func (r *Registry) commitToRegistration(e Entry, change func(cs *changeSet, n nodeID) bool) bool {
	changed := false
	r.commit(func(cs *changeSet) {
		if n := r.rpc.findRegistration(e); n != 0 {
			changed = change(cs, n)
		}
	})
	return changed
}

// updateHealth sets *held to h, with Since now when h has none, and
// reports whether the status changed; when it did not, only the output
// is replaced. r.mu must be held.
func (r *Registry) updateHealth(held *Health, h Health) bool {
	if held.Status == h.Status {
		held.Output = h.Output
		return false
	}
	if h.Since.IsZero() {
		h.Since = r.opts.Now()
	}
	*held = h
	return true
}

// RemoveUnhealthy removes the service s names, as the daemon's own
// removal for reason (its checks found it critical for too long), and
// returns it; nothing when it is no longer registered or no longer
// critical.
func (r *Registry) RemoveUnhealthy(s Service, reason string) []Service {
	var removed []Service
	r.commit(func(cs *changeSet) {
		if n := r.named.find(s); n != nil && n.Health.Status == Critical {
			removed = r.removeServices(cs, []*namedNode{n}, reason)
		}
		return
	})
	return removed
}
