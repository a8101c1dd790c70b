package registry

import "time"

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
	// OpServiceHealth changed the health of the named service
	// Change.Service, identified as for OpDeregister, to its Health.
	OpServiceHealth
	// OpEntryHealth changed the health of the entry Change.Entry,
	// identified by its key, to its Health.
	OpEntryHealth
)

// A Change is one alteration of the registry, as a Journal records it and
// as watchers of the registry's history see it (feed.go).
type Change struct {
	Op ChangeOp
	// Entry or Service is what was added, removed or changed, whole.
	Entry   Entry
	Service Service
	// Index is the change's place in the registry's history, one more
	// than the change before it; Time is when it was made. The registry
	// sets both as it makes the change.
	Index uint64
	Time  time.Time
	// Reason says why a registration was removed or its health changed.
	Reason string
}

// A Journal makes changes durable. Record is called with the registry
// locked, once per request with all of that request's changes, in the
// order they were made, so it must only queue them (changes is the
// registry's, reused once Record returns: what a Journal keeps, it
// copies); the function it returns is called after the lock is released
// and before the request is answered, and returns once the changes are
// on disk (or the journal has given up on them and said so in its log).
type Journal interface {
	Record(changes []Change) (wait func())
}

// A changeSet is what one request did while it held the registry's lock:
// the changes, in the order made, for the journal, and a log line to
// write once the lock is released.
type changeSet struct {
	changes []Change
	// logLater, when set, writes a log line; commit calls it after
	// unlocking, so that a slow log never holds up the registry.
	logLater func()
}

func (cs *changeSet) add(op ChangeOp, e Entry, reason string) {
	cs.changes = append(cs.changes, Change{Op: op, Entry: e, Reason: reason})
}

func (cs *changeSet) addService(op ChangeOp, s Service, reason string) {
	cs.changes = append(cs.changes, Change{Op: op, Service: s, Reason: reason})
}

// commit is how every request changes the registry: it runs mutate with
// r.mu held, numbers the changes mutate adds to the changeSet in the
// registry's history (feed.go), hands them to the journal as one record
// while still holding the lock (so that the journal's order is the
// registry's), releases the lock, and returns once the journal has the
// changes on disk; only then are they published to watchers. So no
// request is answered, and no watcher told, before its change is
// durable, and none waits for the disk with the lock held. mutate's
// results travel in the variables it captures.
func (r *Registry) commit(mutate func(cs *changeSet)) {
	last, logLater, wait := r.apply(mutate)
	wait()
	if last != 0 {
		r.publish(last)
	}
	if logLater != nil {
		logLater()
	}
}

// apply is commit's locked part: it returns the index of the last change
// made (0 for none), the log line to write and what to wait for. The
// changes are gathered in r.scratch, which nothing keeps once the lock is
// released: the ring copies them, and the journal encodes them at once.
// The deferred unlock keeps the registry usable after a panic in mutate,
// which the RPC server recovers from.
func (r *Registry) apply(mutate func(cs *changeSet)) (last uint64, logLater func(), wait func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := changeSet{changes: r.scratch[:0]}
	defer func() { r.scratch = clear0(cs.changes) }()
	mutate(&cs)
	if len(cs.changes) == 0 {
		return 0, cs.logLater, noWait
	}
	if r.opts.Observer != nil {
		r.opts.Observer.Changed(cs.changes)
	}
	last = r.feed.number(cs.changes, r.opts.Now())
	if r.journal == nil {
		return last, cs.logLater, noWait
	}
	return last, cs.logLater, r.journal.Record(cs.changes)
}

// clear0 empties changes, dropping what they refer to, for reuse.
func clear0(changes []Change) []Change {
	clear(changes)
	return changes[:0]
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
