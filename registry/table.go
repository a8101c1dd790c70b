package registry

import (
	"hash/maphash"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// This file holds the RPC entries compactly: a registry may hold a
// hundred thousand, and each costs what its node, its address and its
// two places in the indexes cost. A node is 64 bytes in slabs of 512,
// with its netid, owner and network namespace interned (a host has a
// handful of each), its address in an arena (arena.go), its time as a
// number, its v2 view (port and protocol) in a few bits, and
// links by number rather than by pointer; an index is an open-addressing
// table of node numbers, 4 bytes a slot. Health, which only the checks of
// RPC registrations set (--rpc-check-interval), is kept aside for the
// entries that have one. Measured with BenchmarkMemory (100,000 entries,
// each with an address of its own): 405 bytes of heap per entry with a
// struct per node, three Go maps and slices of pointers; 125 with these
// nodes and indexes and a string per address; 105 with the addresses in
// the arena.

// A nodeID is a node's place in its table's slabs; 0 is none.
type nodeID uint32

const (
	slabShift = 9
	slabSize  = 1 << slabShift
)

// A node is one RPC entry, as an rpcTable keeps it.
type node struct {
	prog, vers uint32
	// netid is the netid as registered, lnetid in lower case (the
	// key's), both interned in the table's netids; owner and netns are
	// interned in its owners and namespaces.
	netid, lnetid uint16
	owner, netns  uint16
	pid           int32
	// port is the v2 port of a tcp or udp entry whose address has one
	// (flags v2TCP or v2UDP), as DUMP and GETPORT give it.
	port  uint16
	flags nodeFlags
	// seq numbers the nodes in registration order, from 1, never
	// reused: a listing's place between its pages (Programs).
	seq        uint64
	registered int64   // UnixNano
	addr       addrRef // in the table's addrs
	// prev and next are the node's neighbours in registration order;
	// progPrev and progNext in its program's entries, also in
	// registration order, a ring: the first's progPrev is the last.
	prev, next         nodeID
	progPrev, progNext nodeID
}

// nodeFlags say what a node's numbers do not.
type nodeFlags uint8

const (
	v2TCP nodeFlags = 1 << iota
	v2UDP
	// registeredUTC restores the registration time's location, UTC
	// rather than local, and registeredZero a zero time.
	registeredUTC
	registeredZero
)

// key is what identifies an entry: program, version and lower-case netid.
type key struct {
	prog, vers uint32
	netid      netid.ID // lower case
}

// packedKey is key with its netid interned, as the index hashes it.
type packedKey struct {
	prog, vers uint32
	lnetid     uint16
}

// An rpcTable holds the RPC entries in registration order, with an index
// by key and one by program. The zero value is empty and ready to use. It
// is not safe for concurrent use: the Registry's lock guards it.
type rpcTable struct {
	slabs [][]node
	// top is the highest node number handed out, free the first of the
	// numbers given back (linked through next).
	top, free  nodeID
	head, tail nodeID
	n          int
	seq        uint64 // the last node's
	byKey      hashIndex
	byProg     hashIndex
	seed       maphash.Seed
	seeded     bool
	netids     interned[string]
	owners     interned[string]
	namespaces interned[uint64]
	addrs      addrArena
	health     map[nodeID]Health
}

func (t *rpcTable) at(id nodeID) *node { return &t.slabs[id>>slabShift][id&(slabSize-1)] }

func (t *rpcTable) keyHash(k packedKey) uint64  { return maphash.Comparable(t.seed, k) }
func (t *rpcTable) progHash(prog uint32) uint64 { return maphash.Comparable(t.seed, prog) }

func (t *rpcTable) nodeKeyHash(id nodeID) uint64 {
	n := t.at(id)
	return t.keyHash(packedKey{n.prog, n.vers, n.lnetid})
}

func (t *rpcTable) nodeProgHash(id nodeID) uint64 { return t.progHash(t.at(id).prog) }

// find returns the entry of prog, vers and lower-case netid id.
func (t *rpcTable) find(prog, vers uint32, id netid.ID) nodeID {
	lnetid, ok := t.netids.lookup(string(id))
	if !ok {
		return 0
	}
	k := packedKey{prog, vers, uint16(lnetid)}
	slot, found := t.byKey.lookup(t.keyHash(k), func(n nodeID) bool {
		x := t.at(n)
		return x.prog == prog && x.vers == vers && x.lnetid == k.lnetid
	})
	if !found {
		return 0
	}
	return t.byKey.slots[slot]
}

// program returns the first entry of prog, in registration order, 0
// for none.
func (t *rpcTable) program(prog uint32) nodeID {
	slot, found := t.byProg.lookup(t.progHash(prog), func(n nodeID) bool { return t.at(n).prog == prog })
	if !found {
		return 0
	}
	return t.byProg.slots[slot]
}

// lastOn returns the last registered entry of prog on lower-case netid
// id, 0 for none.
func (t *rpcTable) lastOn(prog uint32, id netid.ID) nodeID {
	first := t.program(prog)
	if first == 0 {
		return 0
	}
	lnetid, ok := t.netids.lookup(string(id))
	if !ok {
		return 0
	}
	n := t.at(first).progPrev
	for {
		if t.at(n).lnetid == uint16(lnetid) {
			return n
		}
		if n == first {
			return 0
		}
		n = t.at(n).progPrev
	}
}

// insert adds e, whose key k is not in the table, and returns its node,
// or false when its netid, owner or namespace would be the 65,536th
// distinct one of its kind, or its address is a chunk long (see
// errTableLimit).
func (t *rpcTable) insert(k key, e Entry) (nodeID, bool) {
	if !t.seeded {
		t.seed, t.seeded = maphash.MakeSeed(), true
	}
	if t.netids.full(maxInterned, string(e.Netid), string(k.netid)) || t.owners.full(maxInterned, e.Owner) || t.namespaces.full(maxInterned, e.NetNS) {
		return 0, false
	}
	addr, ok := t.addrs.put(e.Addr)
	if !ok {
		return 0, false
	}
	id := t.alloc()
	n := t.at(id)
	t.seq++
	*n = node{
		prog: e.Prog, vers: e.Vers,
		netid:  uint16(t.netids.intern(string(e.Netid))),
		lnetid: uint16(t.netids.intern(string(k.netid))),
		owner:  uint16(t.owners.intern(e.Owner)),
		netns:  uint16(t.namespaces.intern(e.NetNS)),
		pid:    e.PID, seq: t.seq, addr: addr,
	}
	switch {
	case e.Registered.IsZero():
		n.flags |= registeredZero
	default:
		n.registered = e.Registered.UnixNano()
		if e.Registered.Location() == time.UTC {
			n.flags |= registeredUTC
		}
	}
	if prot, ok := k.netid.Proto(); ok {
		if port, ok := netid.UaddrPort(e.Addr); ok {
			n.port = port
			n.flags |= v2UDP
			if prot == netid.ProtoTCP {
				n.flags ^= v2UDP | v2TCP
			}
		}
	}
	if e.Health != (Health{}) {
		if t.health == nil {
			t.health = make(map[nodeID]Health)
		}
		t.health[id] = e.Health
	}
	// Registration order.
	n.prev = t.tail
	if t.tail != 0 {
		t.at(t.tail).next = id
	} else {
		t.head = id
	}
	t.tail = id
	// The program's ring.
	if first := t.program(e.Prog); first != 0 {
		f := t.at(first)
		last := f.progPrev
		n.progPrev, n.progNext = last, first
		t.at(last).progNext = id
		f.progPrev = id
	} else {
		n.progPrev, n.progNext = id, id
		t.byProg.insert(id, t.progHash(e.Prog), t.nodeProgHash)
	}
	t.byKey.insert(id, t.nodeKeyHash(id), t.nodeKeyHash)
	t.n++
	return id, true
}

// remove takes node id out of the table.
func (t *rpcTable) remove(id nodeID) {
	n := t.at(id)
	if n.prev != 0 {
		t.at(n.prev).next = n.next
	} else {
		t.head = n.next
	}
	if n.next != 0 {
		t.at(n.next).prev = n.prev
	} else {
		t.tail = n.prev
	}
	if slot, ok := t.byKey.lookup(t.nodeKeyHash(id), func(x nodeID) bool { return x == id }); ok {
		t.byKey.deleteAt(slot, t.nodeKeyHash)
	}
	slot, first := t.byProg.lookup(t.nodeProgHash(id), func(x nodeID) bool { return x == id })
	switch {
	case n.progNext == id:
		// The program's only entry.
		t.byProg.deleteAt(slot, t.nodeProgHash)
	default:
		t.at(n.progPrev).progNext = n.progNext
		t.at(n.progNext).progPrev = n.progPrev
		if first {
			t.byProg.slots[slot] = n.progNext
		}
	}
	t.netids.release(uint32(n.netid))
	t.netids.release(uint32(n.lnetid))
	t.owners.release(uint32(n.owner))
	t.namespaces.release(uint32(n.netns))
	t.addrs.release(n.addr)
	delete(t.health, id)
	*n = node{next: t.free}
	t.free = id
	t.n--
	switch {
	case t.n == 0:
		// All gone: give the slabs, indexes and addresses back.
		*t = rpcTable{seq: t.seq, seed: t.seed, seeded: t.seeded, netids: t.netids, owners: t.owners, namespaces: t.namespaces}
	case t.addrs.wasteful():
		t.compactAddrs()
	}
}

// compactAddrs copies the live addresses to a new arena, leaving the old
// chunks to the strings still made from them, if any.
func (t *rpcTable) compactAddrs() {
	var fresh addrArena
	for n := t.head; n != 0; n = t.at(n).next {
		x := t.at(n)
		x.addr, _ = fresh.put(t.addrs.get(x.addr))
	}
	t.addrs = fresh
}

// alloc returns a free node number, growing the slabs when none is.
func (t *rpcTable) alloc() nodeID {
	if id := t.free; id != 0 {
		t.free = t.at(id).next
		return id
	}
	t.top++
	if int(t.top>>slabShift) >= len(t.slabs) {
		t.slabs = append(t.slabs, make([]node, slabSize))
	}
	return t.top
}

// entry returns node id as an Entry.
func (t *rpcTable) entry(id nodeID) Entry {
	n := t.at(id)
	e := Entry{
		Prog: n.prog, Vers: n.vers,
		Netid: netid.ID(t.netids.vals[n.netid]),
		Addr:  t.addrs.get(n.addr),
		Owner: t.owners.vals[n.owner],
		PID:   n.pid, NetNS: t.namespaces.vals[n.netns],
	}
	switch {
	case n.flags&registeredZero != 0:
	case n.flags&registeredUTC != 0:
		e.Registered = time.Unix(0, n.registered).UTC()
	default:
		e.Registered = time.Unix(0, n.registered)
	}
	if len(t.health) > 0 {
		e.Health = t.health[id]
	}
	return e
}

// mapping returns node id's v2 view, false for none.
func (t *rpcTable) mapping(id nodeID) (xdr.Mapping, bool) {
	n := t.at(id)
	switch {
	case n.flags&v2UDP != 0:
		return xdr.Mapping{Prog: n.prog, Vers: n.vers, Prot: netid.ProtoUDP, Port: uint32(n.port)}, true
	case n.flags&v2TCP != 0:
		return xdr.Mapping{Prog: n.prog, Vers: n.vers, Prot: netid.ProtoTCP, Port: uint32(n.port)}, true
	}
	return xdr.Mapping{}, false
}

// findRegistration returns the entry e names as it was registered (same
// key, address, pid and time), or 0 when it is gone or was registered
// again since.
func (t *rpcTable) findRegistration(e Entry) nodeID {
	id := t.find(e.Prog, e.Vers, e.Netid.Lower())
	if id == 0 {
		return 0
	}
	if n := t.at(id); t.addrs.get(n.addr) != e.Addr || n.pid != e.PID || !t.entry(id).Registered.Equal(e.Registered) {
		return 0
	}
	return id
}

// maxInterned is how many distinct netid spellings, owners and
// namespaces a table holds.
const maxInterned = 1 << 16

// A hashIndex is an open-addressing hash table of node numbers, probed
// linearly, with no tombstones (a removal shifts the probe chain back).
// The hash of an entry is its table's, with a seed of its own so that
// callers cannot choose keys that collide. It grows past three quarters
// full and shrinks below an eighth.
type hashIndex struct {
	slots []nodeID
	n     int
}

// lookup returns the slot of the node that eq accepts among those of
// hash h, or the empty slot where it would go, and whether it is there.
func (x *hashIndex) lookup(h uint64, eq func(nodeID) bool) (int, bool) {
	if len(x.slots) == 0 {
		return -1, false
	}
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		id := x.slots[i]
		if id == 0 {
			return int(i), false
		}
		if eq(id) {
			return int(i), true
		}
	}
}

// insert adds id, whose hash is h; hashOf gives the others' to move
// them when the table grows.
func (x *hashIndex) insert(id nodeID, h uint64, hashOf func(nodeID) uint64) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.resize(max(16, 2*len(x.slots)), hashOf)
	}
	mask := uint64(len(x.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if x.slots[i] == 0 {
			x.slots[i] = id
			x.n++
			return
		}
	}
}

// deleteAt empties slot i and moves back the nodes after it that probed
// past it.
func (x *hashIndex) deleteAt(i int, hashOf func(nodeID) uint64) {
	mask := len(x.slots) - 1
	x.slots[i] = 0
	x.n--
	for j := (i + 1) & mask; x.slots[j] != 0; j = (j + 1) & mask {
		home := int(hashOf(x.slots[j])) & mask
		// The node at j stays unless its home is outside (i, j],
		// cyclically: then the hole at i is on its probe path.
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			x.slots[i], x.slots[j] = x.slots[j], 0
			i = j
		}
	}
	if len(x.slots) > 16 && x.n*8 < len(x.slots) {
		x.resize(len(x.slots)/2, hashOf)
	}
}

func (x *hashIndex) resize(size int, hashOf func(nodeID) uint64) {
	old := x.slots
	x.slots, x.n = make([]nodeID, size), 0
	mask := uint64(size - 1)
	for _, id := range old {
		if id == 0 {
			continue
		}
		for i := hashOf(id) & mask; ; i = (i + 1) & mask {
			if x.slots[i] == 0 {
				x.slots[i] = id
				break
			}
		}
		x.n++
	}
}

// An interned table keeps values with a count of their users, so that
// the values many entries share (netids, owners, namespaces) are kept
// once, and forgotten with their last user. Number 0 is the zero value
// and never forgotten.
type interned[T comparable] struct {
	ids  map[T]uint32
	vals []T
	refs []uint32
	free []uint32
}

// lookup returns s's number, if s is interned.
func (t *interned[T]) lookup(s T) (uint32, bool) {
	var zero T
	if s == zero {
		return 0, true
	}
	id, ok := t.ids[s]
	return id, ok
}

// full reports whether interning the values ss would take the table
// past max numbers.
func (t *interned[T]) full(max int, ss ...T) bool {
	need := 0
	for _, s := range ss {
		if _, ok := t.lookup(s); !ok {
			need++
		}
	}
	return len(t.vals)-len(t.free)+need > max-1
}

// intern returns s's number, counting one more user.
func (t *interned[T]) intern(s T) uint32 {
	var zero T
	if t.vals == nil {
		t.vals, t.refs = []T{zero}, []uint32{0}
		t.ids = make(map[T]uint32)
	}
	if s == zero {
		return 0
	}
	id, ok := t.ids[s]
	if !ok {
		if n := len(t.free); n > 0 {
			id = t.free[n-1]
			t.free = t.free[:n-1]
			t.vals[id] = s
		} else {
			id = uint32(len(t.vals))
			t.vals = append(t.vals, s)
			t.refs = append(t.refs, 0)
		}
		t.ids[s] = id
	}
	t.refs[id]++
	return id
}

// release counts one user fewer of number id, and forgets its value
// with the last.
func (t *interned[T]) release(id uint32) {
	if id == 0 {
		return
	}
	var zero T
	t.refs[id]--
	if t.refs[id] == 0 {
		delete(t.ids, t.vals[id])
		t.vals[id] = zero
		t.free = append(t.free, id)
	}
}
