package registry

// Checkpoint calls fn with a copy of the whole state, entries in DUMP order
// and named services in registration order, with the index of the last
// change made and the latest changes (feed.go), while no change can
// happen, so that a journal can start a new file exactly at this state.
// fn must not call the registry.
func (r *Registry) Checkpoint(fn func(Saved)) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	fn(Saved{Index: r.feed.last, Feed: r.feed.all(), Entries: r.entries(), Services: r.named.services()})
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
		if r.rpc.find(k.prog, k.vers, k.netid) != 0 {
			continue
		}
		if e.Registered.IsZero() {
			e.Registered = r.opts.Now()
		}
		if r.insert(k, e) {
			nEntries++
		}
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
