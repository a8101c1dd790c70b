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
