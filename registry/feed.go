package registry

import (
	"time"
)

// DefaultFeedSize is how many recent changes a Registry keeps for
// watchers to resume from, when Options.FeedSize is zero.
const DefaultFeedSize = 1024

// Reasons the registry gives for removals a caller asked for; the
// daemon's own removals give theirs (process exited, service gone).
const (
	ReasonUnset        = "unset"
	ReasonDeregistered = "deregistered"
	ReasonProcessExit  = "process exited"
)

// A feed is the registry's history: the index of its last change and a
// ring of the latest changes, numbered consecutively, for watchers to
// resume from. It is guarded by Registry.mu; what has been published to
// watchers is guarded by Registry.pubMu (see publish).
type feed struct {
	size int
	// ring holds up to size changes; head is the oldest's place.
	ring []Change
	head int
	// last is the index of the last change made.
	last uint64
}

func newFeed(size int) feed {
	if size <= 0 {
		size = DefaultFeedSize
	}
	return feed{size: size}
}

// number gives changes the next indices and the time now, keeps them in
// the ring and returns the last index.
func (f *feed) number(changes []Change, now time.Time) uint64 {
	for i := range changes {
		f.last++
		changes[i].Index = f.last
		changes[i].Time = now
		f.push(changes[i])
	}
	return f.last
}

func (f *feed) push(c Change) {
	if len(f.ring) < f.size {
		f.ring = append(f.ring, c)
		return
	}
	f.ring[f.head] = c
	f.head = (f.head + 1) % f.size
}

// reset empties the ring and starts the history at index last.
func (f *feed) reset(last uint64) {
	f.ring = f.ring[:0]
	f.head = 0
	f.last = last
}

// since returns the changes after index after, up to index upto, oldest
// first; ok is false when the ring no longer holds them all.
func (f *feed) since(after, upto uint64) ([]Change, bool) {
	if after >= upto {
		return nil, after == upto
	}
	n := len(f.ring)
	if n == 0 {
		return nil, false
	}
	oldest := f.ring[f.head].Index
	if after+1 < oldest {
		return nil, false
	}
	out := make([]Change, 0, min(upto-after, uint64(n)))
	for i := range n {
		c := f.ring[(f.head+i)%n]
		if c.Index > after && c.Index <= upto {
			out = append(out, c)
		}
	}
	return out, true
}

// all returns the ring, oldest first.
func (f *feed) all() []Change {
	out := make([]Change, 0, len(f.ring))
	out = append(out, f.ring[f.head:]...)
	return append(out, f.ring[:f.head]...)
}

// publish tells watchers that the changes up to index last are durable.
// Changes become durable in the order they were numbered (the journal
// writes them in that order), so a later index covers every earlier one.
func (r *Registry) publish(last uint64) {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if last <= r.published {
		return
	}
	r.published = last
	// A channel is made only for someone to wait on (Watch), so that a
	// change nobody watches costs none.
	if r.wake != nil {
		close(r.wake)
		r.wake = nil
	}
}

// Watch returns the index of the last change published (made durable,
// and so never to be taken back by a crash) and a channel that is closed
// as soon as a later one is. A change that changes nothing (a SET of what
// is registered, a refresh that finds the status it had) is not a change,
// and closes nothing.
func (r *Registry) Watch() (uint64, <-chan struct{}) {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	if r.wake == nil {
		r.wake = make(chan struct{})
	}
	return r.published, r.wake
}

// Index returns the index of the last change published.
func (r *Registry) Index() uint64 {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	return r.published
}

// ChangesSince returns the published changes after index after, oldest
// first. ok is false when they are not all at hand: after is older than
// the oldest change kept (Options.FeedSize), or later than the last
// published, as an index of another history is; a watcher must then
// start again from a listing.
func (r *Registry) ChangesSince(after uint64) (changes []Change, ok bool) {
	upto := r.Index()
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.feed.since(after, upto)
}

// Saved is the state a daemon saved: its registrations, the index of its
// last change and its latest changes.
type Saved struct {
	Index    uint64
	Feed     []Change
	Entries  []Entry
	Services []Service
}

// Resume continues the history of saved in r, which holds what was
// restored of it (Restore) and what the daemon registered afresh: the
// index goes on from saved.Index, the saved changes are kept for
// watchers, and the difference between what was saved and what r holds
// becomes changes of their own, so that a watcher that resumes across the
// restart learns of every registration that did not come back (with the
// reason why gives) and of every one that is new. Without a saved index
// (no state, or state of a format before indices) the history starts at
// the time in microseconds, later than any index an earlier history on
// this host can have reached at a few thousand changes a second. Call it
// once, before the journal is attached and before anyone watches.
func (r *Registry) Resume(saved Saved, why func(Change) string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last := saved.Index
	if last == 0 {
		last = uint64(r.opts.Now().UnixMicro())
	}
	r.feed.reset(last)
	for _, c := range contiguousTail(saved.Feed, last) {
		r.feed.push(c)
	}
	var cs []Change
	live := make(map[entryIdentity]bool, r.rpc.n)
	for n := r.rpc.head; n != 0; n = r.rpc.at(n).next {
		live[identifyEntry(r.rpc.entry(n))] = true
	}
	was := make(map[entryIdentity]bool, len(saved.Entries))
	for _, e := range saved.Entries {
		id := identifyEntry(e)
		was[id] = true
		if !live[id] {
			cs = append(cs, Change{Op: OpUnset, Entry: e})
		}
	}
	for _, s := range saved.Services {
		if r.named.find(s) == nil {
			cs = append(cs, Change{Op: OpDeregister, Service: s})
		}
	}
	for n := r.rpc.head; n != 0; n = r.rpc.at(n).next {
		if e := r.rpc.entry(n); !was[identifyEntry(e)] {
			cs = append(cs, Change{Op: OpSet, Entry: e})
		}
	}
	savedSvcs := newNamedTable()
	for _, s := range saved.Services {
		savedSvcs.insert(s)
	}
	for n := r.named.order.head; n != nil; n = n.next {
		if savedSvcs.find(n.Service) == nil {
			cs = append(cs, Change{Op: OpRegister, Service: n.Service})
		}
	}
	for i := range cs {
		if why != nil && (cs[i].Op == OpUnset || cs[i].Op == OpDeregister) {
			cs[i].Reason = why(cs[i])
		}
	}
	r.feed.number(cs, r.opts.Now())
	r.pubMu.Lock()
	r.published = r.feed.last
	r.pubMu.Unlock()
}

// entryIdentity is what tells an RPC entry from another for a watcher:
// its key, address and who registered it.
type entryIdentity struct {
	k     key
	addr  string
	owner string
	pid   int32
}

func identifyEntry(e Entry) entryIdentity {
	return entryIdentity{key{e.Prog, e.Vers, e.Netid.Lower()}, e.Addr, e.Owner, e.PID}
}

// contiguousTail returns the changes of saved, in order, that end at
// index last with no index missing: a record lost to damage leaves a gap
// that a watcher must not be led across.
func contiguousTail(saved []Change, last uint64) []Change {
	end := len(saved)
	for end > 0 && saved[end-1].Index > last {
		end--
	}
	if end == 0 || saved[end-1].Index != last {
		return nil
	}
	start := end - 1
	for start > 0 && saved[start-1].Index+1 == saved[start].Index {
		start--
	}
	return saved[start:end]
}
