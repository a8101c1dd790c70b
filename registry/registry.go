// Package registry is portmapd's one table of services, shared by the RPC
// and HTTP front ends. It holds the entries, the indexes that make every
// lookup and change independent of the table's size, and the rules that say
// who may change what. It knows no transport: a front end passes the Caller
// it saw.
//
// Every change a request makes takes one path, commit (journal.go): made
// under the lock, numbered in the registry's history, handed to the
// Journal, answered and published to watchers once durable. The files:
// registry.go holds the RPC entries, named.go the named services, chain.go
// the list that keeps both in registration order, quota.go the per-user
// caps, caller.go who asks, events.go the removals the daemon makes on its
// own, feed.go the history that watchers follow and resume from,
// checks.go the checks a registration asks for and the health they find,
// and checkpoint.go the whole state, copied out for a new journal file or
// put back at a restart.
package registry

import (
	"errors"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// ErrNotLocal reports a change asked for by a caller that is not on this
// host. rpcbind answers it with AUTH_TOOWEAK.
var ErrNotLocal = errors.New("changes are only accepted from local callers")

// An Entry is one registration, keyed by program, version and netid, as
// rpcbind keeps them.
type Entry struct {
	Prog, Vers uint32
	// Netid as registered; matched case-insensitively.
	Netid netid.ID
	// Addr is the universal address.
	Addr string
	// Owner is derived from the registering caller, never from a request.
	Owner string
	// PID is the registering process when the kernel told it (local
	// socket), else 0.
	PID int32
	// NetNS is the network namespace cookie (SO_NETNS_COOKIE) of the
	// registering process when it registered over a local socket, which
	// a process in another namespace can reach through a shared /run;
	// 0 for network callers, who are in the daemon's own namespace, and
	// when the kernel did not tell.
	NetNS uint64
	// Registered is when the entry was added.
	Registered time.Time
	// Health is what the checks of RPC registrations, when the daemon
	// runs them, last found (registry/health); passing otherwise.
	Health Health
}

// Options configure a Registry.
type Options struct {
	// Insecure accepts SET and UNSET from any host, like rpcbind -i.
	Insecure bool
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// MaxNamedPerProcess caps the named services one process may hold;
	// DefaultMaxNamedPerProcess when zero.
	MaxNamedPerProcess int
	// MaxRPCPerUID and MaxRPCBytesPerUID cap the RPC entries one owner
	// (a uid; "unknown" for every unprivileged network caller together)
	// may hold, in number and in bytes of netid and address; the
	// superuser is not capped. MaxProcessesPerUID caps the processes of
	// one uid other than root that hold named services. Zero means the
	// Default of each (quota.go).
	MaxRPCPerUID       int
	MaxRPCBytesPerUID  int
	MaxProcessesPerUID int
	// Logger receives the refusals at a cap, rate-limited per user;
	// nothing is logged when nil.
	Logger *slog.Logger
	// FeedSize is how many recent changes are kept for watchers to
	// resume from (feed.go); DefaultFeedSize when zero.
	FeedSize int
	// Observer, when set, is told of every change and every refusal at
	// a cap, for metrics.
	Observer Observer
}

// An Observer is told what changes the registry, for counting (the
// daemon's metrics). It is called with the registry locked, so it must
// only count and return, and never call the registry.
type Observer interface {
	// Changed is told of the changes one request or removal made, in
	// the order made.
	Changed(changes []Change)
	// LimitHit is told of each registration refused at a cap: where is
	// its kind ("rpc" or "named"), limit one of the Limit constants,
	// action "refused".
	LimitHit(where, limit, action string)
}

// A Registry is the table of RPC registrations. Its methods are safe for
// concurrent use. The zero value is not usable; call New.
type Registry struct {
	opts Options

	mu sync.RWMutex
	// rpc holds every entry in registration order, indexed by key and
	// by program (table.go).
	rpc rpcTable
	// named holds the services registered by name (named.go).
	named namedTable
	// journal records changes (journal.go); events and removed are the
	// removals the daemon made on its own (events.go).
	journal   Journal
	events    []Event
	eventNext int
	removed   Removals
	// usage is what each owner's RPC entries hold, for the caps
	// (quota.go); refused counts the registrations the caps refused,
	// and rpcLog and namedLog limit how often refusals are logged.
	usage    map[string]usage
	refused  Refusals
	rpcLog   rateLog
	namedLog rateLog
	log      *slog.Logger
	// feed is the history of changes (feed.go). published is the index
	// of the last change made durable, and wake is closed when it
	// grows (nil while nobody waits); both are guarded by pubMu, so
	// that watchers never wait for mu.
	feed feed
	// scratch holds a request's changes while it holds mu (apply).
	scratch   []Change
	pubMu     sync.Mutex
	published uint64
	wake      chan struct{}
}

// New returns an empty Registry.
func New(opts Options) *Registry {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		opts:     opts,
		named:    newNamedTable(),
		usage:    make(map[string]usage),
		rpcLog:   newRateLog(quotaLogEvery),
		namedLog: newRateLog(quotaLogEvery),
		log:      log,
		feed:     newFeed(opts.FeedSize),
	}
}

func (r *Registry) mayChange(c Caller) error {
	if r.opts.Insecure || c.IsLoopback() {
		return nil
	}
	return ErrNotLocal
}

// Set registers e on behalf of c, as RPCBPROC_SET does. The owner and pid
// come from c. An existing entry with the same program, version and netid
// makes the result true when its address is the same and false otherwise;
// nothing is added in either case. Unlike rpcbind, it refuses (false, with
// an error matching ErrRefused) an entry whose netid no client can reach
// or whose address is not of its netid's form (checkAddr), unless c is
// Internal, and a new entry that would take its owner past a cap
// (quota.go); a refusal at a cap is counted and logged.
func (r *Registry) Set(c Caller, e Entry) (bool, error) {
	if err := r.mayChange(c); err != nil {
		return false, err
	}
	if c.Transport != Internal {
		if err := checkAddr(e.Netid, e.Addr); err != nil {
			return false, err
		}
	}
	e.Owner = c.Owner()
	e.PID = c.PID()
	e.NetNS = c.NetNS()
	k := key{e.Prog, e.Vers, e.Netid.Lower()}
	var ok bool
	var err error
	r.commit(func(cs *changeSet) {
		if old := r.rpc.find(k.prog, k.vers, k.netid); old != 0 {
			ok = r.rpc.addrs.get(r.rpc.at(old).addr) == e.Addr
			return
		}
		var limit string
		if limit, err = r.checkCap(e); err != nil {
			cs.logLater = r.refusedCap("rpc", limit, e.Owner, err)
			return
		}
		e.Registered = r.opts.Now()
		if !r.insert(k, e) {
			err = &refusedError{Err: errTableLimit}
			return
		}
		ok = true
		cs.add(OpSet, e, "")
		return
	})
	return ok, err
}

// SetMapping registers a v2 mapping, as PMAPPROC_SET does: it becomes a tcp
// or udp entry with the wildcard address 0.0.0.0.p1.p2. Another protocol is
// refused with false.
func (r *Registry) SetMapping(c Caller, m xdr.Mapping) (bool, error) {
	if err := r.mayChange(c); err != nil {
		return false, err
	}
	id, ok := netid.FromProto(m.Prot)
	if !ok {
		return false, nil
	}
	return r.Set(c, Entry{Prog: m.Prog, Vers: m.Vers, Netid: id, Addr: netid.WildcardUaddr(id, uint16(m.Port))})
}

// Unset removes the entries of prog and vers on netid id, or on every netid
// when id is empty, as RPCBPROC_UNSET does. Removing nothing is true. The
// first entry owned by somebody other than c (unless c is the superuser)
// stops the removal with false; entries removed before it stay removed.
func (r *Registry) Unset(c Caller, prog, vers uint32, id netid.ID) (bool, error) {
	if err := r.mayChange(c); err != nil {
		return false, err
	}
	owner := c.Owner()
	var ok bool
	r.commit(func(cs *changeSet) {
		ok = r.unset(cs, owner, prog, vers, id)
		return
	})
	return ok, nil
}

// unset does Unset's work with r.mu held, adding the entries it removes
// to cs.
func (r *Registry) unset(cs *changeSet, owner string, prog, vers uint32, id netid.ID) bool {
	if id != "" {
		n := r.rpc.find(prog, vers, id.Lower())
		if n == 0 {
			return true
		}
		if !r.mayRemove(owner, n) {
			return false
		}
		cs.add(OpUnset, r.rpc.entry(n), ReasonUnset)
		r.remove(n)
		return true
	}
	// The program's entries of version vers, in registration order;
	// the next is found before one is removed.
	first := r.rpc.program(prog)
	if first == 0 {
		return true
	}
	n, last := first, r.rpc.at(first).progPrev
	for {
		next, done := r.rpc.at(n).progNext, n == last
		if r.rpc.at(n).vers == vers {
			if !r.mayRemove(owner, n) {
				return false
			}
			cs.add(OpUnset, r.rpc.entry(n), ReasonUnset)
			r.remove(n)
		}
		if done {
			return true
		}
		n = next
	}
}

// UnsetMapping removes prog and vers from tcp and then udp, as
// PMAPPROC_UNSET does, ignoring the protocol and port it was given; it is
// true when either removal is.
func (r *Registry) UnsetMapping(c Caller, prog, vers uint32) (bool, error) {
	tcp, err := r.Unset(c, prog, vers, netid.TCP)
	if err != nil {
		return false, err
	}
	udp, err := r.Unset(c, prog, vers, netid.UDP)
	return tcp || udp, err
}

func (r *Registry) mayRemove(owner string, n nodeID) bool {
	return owner == OwnerSuperuser || owner == r.rpc.owners.vals[r.rpc.at(n).owner]
}

// Lookup finds prog on netid: the entry of version vers if there is one,
// else the last registered entry of another version, the way rpcbind's
// GETADDR and GETPORT fall back so that the caller learns of a version
// mismatch from the service itself.
func (r *Registry) Lookup(prog, vers uint32, id netid.ID) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := r.lookup(prog, vers, id.Lower())
	if n == 0 {
		return Entry{}, false
	}
	return r.rpc.entry(n), true
}

// lookup is Lookup's search, with id in lower case; r.mu must be held.
func (r *Registry) lookup(prog, vers uint32, id netid.ID) nodeID {
	if n := r.rpc.find(prog, vers, id); n != 0 {
		return n
	}
	return r.rpc.lastOn(prog, id)
}

// LookupExact finds prog, vers on netid with no version fallback, as
// GETVERSADDR does.
func (r *Registry) LookupExact(prog, vers uint32, id netid.ID) (Entry, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if n := r.rpc.find(prog, vers, id.Lower()); n != 0 {
		return r.rpc.entry(n), true
	}
	return Entry{}, false
}

// GetPort answers PMAPPROC_GETPORT: the port of prog on the protocol's
// netid, with Lookup's version fallback, or 0.
func (r *Registry) GetPort(prog, vers, prot uint32) uint32 {
	id, ok := netid.FromProto(prot)
	if !ok {
		return 0
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if n := r.lookup(prog, vers, id); n != 0 {
		if m, ok := r.rpc.mapping(n); ok {
			return m.Port
		}
	}
	return 0
}

// Versions yields each entry of exactly prog and vers, on any netid, in
// registration order. The registry is read-locked while the loop runs:
// its body must not change the registry.
func (r *Registry) Versions(prog, vers uint32) iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		r.mu.RLock()
		defer r.mu.RUnlock()
		first := r.rpc.program(prog)
		if first == 0 {
			return
		}
		for n := first; ; {
			if r.rpc.at(n).vers == vers && !yield(r.rpc.entry(n)) {
				return
			}
			if n = r.rpc.at(n).progNext; n == first {
				return
			}
		}
	}
}

// All yields every entry in the stable order DUMP shows. The registry is
// read-locked while the loop runs: its body must not change the registry.
//
// The walks are iter.Seq because that costs nothing per entry: against a
// callback, BenchmarkMappings measured some 5 ns more per walk and the
// same time at 100,000 entries, and rpcbind's BenchmarkDump no difference.
func (r *Registry) All() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		r.mu.RLock()
		defer r.mu.RUnlock()
		for n := r.rpc.head; n != 0; n = r.rpc.at(n).next {
			if !yield(r.rpc.entry(n)) {
				return
			}
		}
	}
}

// Mappings yields the v2 view of every tcp and udp entry, in DUMP order.
// The registry is read-locked while the loop runs: its body must not
// change the registry.
func (r *Registry) Mappings() iter.Seq[xdr.Mapping] {
	return func(yield func(xdr.Mapping) bool) {
		r.mu.RLock()
		defer r.mu.RUnlock()
		for n := r.rpc.head; n != 0; n = r.rpc.at(n).next {
			if m, ok := r.rpc.mapping(n); ok && !yield(m) {
				return
			}
		}
	}
}

// Entries returns a copy of every entry in DUMP order.
func (r *Registry) Entries() []Entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.entries()
}

// entries copies every entry in DUMP order; r.mu must be held.
func (r *Registry) entries() []Entry {
	out := make([]Entry, 0, r.rpc.n)
	for n := r.rpc.head; n != 0; n = r.rpc.at(n).next {
		out = append(out, r.rpc.entry(n))
	}
	return out
}

// Len returns the number of entries.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.rpc.n
}

// insert adds e, whose key k is not registered, and counts it against
// its owner; false when the table cannot take its netid (see
// rpcTable.insert).
func (r *Registry) insert(k key, e Entry) bool {
	if _, ok := r.rpc.insert(k, e); !ok {
		return false
	}
	r.account(e, 1)
	return true
}

// remove removes node n and counts it off its owner.
func (r *Registry) remove(n nodeID) {
	r.account(r.rpc.entry(n), -1)
	r.rpc.remove(n)
}

// VersionRange returns the lowest and highest version of prog registered on
// netid, both 0 when there is none: the range PROG_MISMATCH reports.
func (r *Registry) VersionRange(prog uint32, id netid.ID) (low, high uint32) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	first := r.rpc.program(prog)
	if first == 0 {
		return 0, 0
	}
	lnetid, ok := r.rpc.netids.lookup(string(id.Lower()))
	if !ok {
		return 0, 0
	}
	seen := false
	for n := first; ; {
		if x := r.rpc.at(n); x.lnetid == uint16(lnetid) {
			if !seen || x.vers < low {
				low = x.vers
			}
			high = max(high, x.vers)
			seen = true
		}
		if n = r.rpc.at(n).progNext; n == first {
			return low, high
		}
	}
}
