package registry

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

// A changeSet is what one request did while it held the registry's lock:
// the changes, in the order made, for the journal, and a log line to
// write once the lock is released.
type changeSet struct {
	changes []Change
	// logLater, when set, writes a log line; commit calls it after
	// unlocking, so that a slow log never holds up the registry.
	logLater func()
}

func (cs *changeSet) add(op ChangeOp, e Entry) {
	cs.changes = append(cs.changes, Change{Op: op, Entry: e})
}

func (cs *changeSet) addService(op ChangeOp, s Service) {
	cs.changes = append(cs.changes, Change{Op: op, Service: s})
}

// commit is how every request changes the registry: it runs mutate with
// r.mu held, hands the changes mutate reports to the journal as one
// record while still holding the lock (so that the journal's order is
// the registry's), releases the lock, and returns once the journal has
// the changes on disk. So no request is answered before its change is
// durable, and none waits for the disk with the lock held. mutate's
// results travel in the variables it captures.
func (r *Registry) commit(mutate func() changeSet) {
	cs, wait := r.apply(mutate)
	wait()
	if cs.logLater != nil {
		cs.logLater()
	}
}

// apply is commit's locked part. The deferred unlock keeps the registry
// usable after a panic in mutate, which the RPC server recovers from.
func (r *Registry) apply(mutate func() changeSet) (changeSet, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := mutate()
	if r.opts.Observer != nil && len(cs.changes) > 0 {
		r.opts.Observer.Changed(cs.changes)
	}
	if r.journal == nil || len(cs.changes) == 0 {
		return cs, noWait
	}
	return cs, r.journal.Record(cs.changes)
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
