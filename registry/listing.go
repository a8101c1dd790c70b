package registry

// A listing of a hundred thousand registrations is written a page at a
// time, each page read under the lock and written without it, so that a
// slow reader never holds up a change. The cursors below say where a page
// ended: its last row's registration, which a later page finds again in
// constant time while that row is unchanged, and otherwise by its place in
// registration order. A row registered, changed or removed between pages
// may be missed or shown twice; every other row is shown once.

// A ProgramCursor is the place of an RPC program in the listing: the
// registration of its first entry. The zero cursor is before the first.
type ProgramCursor struct {
	Prog uint32
	Seq  uint64
}

// A ListedEntry is an entry as ProgramsAfter reads it: with its
// program's place in the listing.
type ListedEntry struct {
	Entry
	Program ProgramCursor
}

// ProgramsAfter appends to dst the entries of the programs listed after
// the cursor, in the order of their first entries' registration, each
// program's entries together in registration order; it stops at the end
// of the first program that takes it past maxEntries entries. The last
// entry's Program is where the next call resumes.
func (r *Registry) ProgramsAfter(dst []ListedEntry, after ProgramCursor, maxEntries int) []ListedEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t := &r.rpc
	n := t.head
	if after.Seq != 0 {
		n = t.resume(after)
	}
	added := 0
	for ; n != 0 && added < maxEntries; n = t.at(n).next {
		x := t.at(n)
		// A program's first entry is the one whose predecessor on its
		// ring is not older: the ring's last, or itself.
		if t.at(x.progPrev).seq < x.seq {
			continue
		}
		at := ProgramCursor{Prog: x.prog, Seq: x.seq}
		for m := n; ; {
			dst = append(dst, ListedEntry{t.entry(m), at})
			added++
			if m = t.at(m).progNext; m == n {
				break
			}
		}
	}
	return dst
}

// resume returns the first node registered after c's program's first entry.
func (t *rpcTable) resume(c ProgramCursor) nodeID {
	if first := t.program(c.Prog); first != 0 && t.at(first).seq == c.Seq {
		return t.at(first).next
	}
	for n := t.head; n != 0; n = t.at(n).next {
		if t.at(n).seq > c.Seq {
			return n
		}
	}
	return 0
}

// A NamedCursor is the place of a named service in the listing: its
// registration. The zero cursor is before the first.
type NamedCursor struct {
	Name string
	Seq  uint64
}

// A ListedService is a service as NamedAfter reads it: with its place in
// the listing.
type ListedService struct {
	Service
	At NamedCursor
}

// NamedAfter appends to dst up to max named services registered after
// the cursor, in registration order.
func (r *Registry) NamedAfter(dst []ListedService, after NamedCursor, max int) []ListedService {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t := &r.named
	n := t.order.head
	if after.Seq != 0 {
		n = t.resume(after)
	}
	for i := 0; n != nil && i < max; n, i = n.next, i+1 {
		dst = append(dst, ListedService{n.Service, NamedCursor{Name: n.Name, Seq: n.seq}})
	}
	return dst
}

// resume returns the first node registered after c's.
func (t *namedTable) resume(c NamedCursor) *namedNode {
	for _, n := range t.byName[lowerASCII(c.Name)] {
		if n.seq == c.Seq {
			return n.next
		}
	}
	for n := t.order.head; n != nil; n = n.next {
		if n.seq > c.Seq {
			return n
		}
	}
	return nil
}
