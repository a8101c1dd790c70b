package registry

import (
	"time"
)

// ChangeOp says what a Change did.
type ChangeOp uint8

// Kinds of change.
const (
	// OpSet added Change.Entry.
	OpSet ChangeOp = iota + 1
	// OpUnset removed the entry keyed by Change.Entry's Prog, Vers and
	// Netid.
	OpUnset
	// OpRegister added the named service Change.Service.
	OpRegister
	// OpDeregister removed the named service Change.Service, identified
	// by its name, endpoint, pid and start time.
	OpDeregister
)

// A Change is one alteration of the registry as a Journal sees it.
type Change struct {
	Op      ChangeOp
	Entry   Entry
	Service Service
}

// A Journal makes changes durable. Record is called with the registry
// locked, once per request with all of that request's changes, in the
// order they were made, so it must only queue them; the function it returns
// is called after the lock is released and before the request is answered,
// and returns once the changes are on disk (or the journal has given up
// on them and said so in its log).
type Journal interface {
	Record(changes []Change) (wait func())
}

// record passes changes to the journal; r.mu must be held. The returned
// function waits for them to be durable and is never nil.
func (r *Registry) record(changes []Change) func() {
	if r.journal == nil || len(changes) == 0 {
		return noWait
	}
	return r.journal.Record(changes)
}

func noWait() {}

// SetJournal attaches j (nil detaches), so that every later change is
// recorded. Attach it after Restore, with a journal that already holds the
// registry's state (see Checkpoint).
func (r *Registry) SetJournal(j Journal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.journal = j
}

// Checkpoint calls fn with a copy of the whole state, entries in DUMP order
// and named services in registration order, while no change can happen, so
// that a journal can start a new file exactly at this state. fn must not
// call the registry.
func (r *Registry) Checkpoint(fn func(entries []Entry, svcs []Service)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn(r.entries(), r.named.services())
}

// Restore puts back saved registrations with the owners, pids and times
// they were saved with, without recording them in the journal. Entries
// whose key is already registered (the portmapper's own, registered
// afresh) and named services already present are skipped. It returns how
// many of each it added.
func (r *Registry) Restore(entries []Entry, svcs []Service) (nEntries, nServices int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range entries {
		k := key{e.Prog, e.Vers, e.Netid.Lower()}
		if _, ok := r.byKey[k]; ok {
			continue
		}
		if e.Registered.IsZero() {
			e.Registered = r.opts.Now()
		}
		r.insert(k, e)
		nEntries++
	}
	for _, s := range svcs {
		if r.named.find(s) != nil {
			continue
		}
		if s.Registered.IsZero() {
			s.Registered = r.opts.Now()
		}
		r.named.insert(s)
		nServices++
	}
	return nEntries, nServices
}

// An Event is a registration that the daemon removed on its own, because
// its service was found gone.
type Event struct {
	Time time.Time `json:"time"`
	// Kind is "rpc" for an RPC entry or "named" for a named service.
	Kind string `json:"kind"`
	// What describes the registration: "prog 100003 vers 3 tcp
	// 0.0.0.0.8.1 pid 42" or "name tcp 8080 pid 42".
	What   string `json:"what"`
	Reason string `json:"reason"`
}

// Removals count the registrations the daemon removed on its own since
// it started.
type Removals struct {
	RPC   uint64 `json:"rpc"`
	Named uint64 `json:"named"`
}

// maxEvents is how many recent events the registry keeps.
const maxEvents = 64

// addEvent appends ev to the ring of recent events and counts it; r.mu
// must be held.
func (r *Registry) addEvent(ev Event) {
	if ev.Kind == "rpc" {
		r.removed.RPC++
	} else {
		r.removed.Named++
	}
	if len(r.events) < maxEvents {
		r.events = append(r.events, ev)
		return
	}
	r.events[r.eventNext] = ev
	r.eventNext = (r.eventNext + 1) % maxEvents
}

// RecentEvents returns the latest removals the daemon made on its own,
// oldest first, and how many of each kind there have been since it
// started.
func (r *Registry) RecentEvents() ([]Event, Removals) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Event, 0, len(r.events))
	out = append(out, r.events[r.eventNext:]...)
	out = append(out, r.events[:r.eventNext]...)
	return out, r.removed
}

// Prune removes e, found gone for reason, when it is still registered as
// it was (same key, address, pid and registration time): a service that
// re-registered meanwhile is left alone. It records the removal in the
// journal and as a recent event, and reports whether it removed anything.
func (r *Registry) Prune(e Entry, reason string) bool {
	r.mu.Lock()
	n, ok := r.byKey[key{e.Prog, e.Vers, e.Netid.Lower()}]
	if !ok || n.Addr != e.Addr || n.PID != e.PID || !n.Registered.Equal(e.Registered) {
		r.mu.Unlock()
		return false
	}
	r.remove(n)
	wait := r.record([]Change{{Op: OpUnset, Entry: n.Entry}})
	r.addEvent(Event{Time: r.opts.Now(), Kind: "rpc", What: describeEntry(n.Entry), Reason: reason})
	r.mu.Unlock()
	wait()
	return true
}

func describeEntry(e Entry) string {
	s := "prog " + itoa(uint64(e.Prog)) + " vers " + itoa(uint64(e.Vers)) + " " + string(e.Netid) + " " + e.Addr
	if e.PID != 0 {
		s += " pid " + itoa(uint64(e.PID))
	}
	return s
}

func describeService(s Service) string {
	return s.Name + " " + string(s.Network) + " " + s.Endpoint() + " pid " + itoa(uint64(s.PID))
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// find returns the node holding s (same name, endpoint and process).
func (t *namedTable) find(s Service) *namedNode {
	for _, n := range t.byName[lowerASCII(s.Name)] {
		if n.sameEndpoint(s) && n.Process.same(s.Process) {
			return n
		}
	}
	return nil
}
