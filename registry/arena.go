package registry

import "unsafe"

// An addrArena holds the RPC entries' addresses end to end in chunks, so
// that an address costs its bytes and the 8 bytes of its addrRef, rather
// than a string header and an allocation of its own (32 bytes for most,
// a quarter of what an entry cost). Bytes once written are never written
// again: the strings get hands out alias them (unsafe.String), and stay
// valid whatever the arena does after, the chunk kept alive by them. A
// removed address's bytes are dead until compact copies the live ones to
// new chunks, which the table does when more are dead than live.
type addrArena struct {
	chunks     [][]byte
	live, dead int
}

// An addrRef is an address's place in its arena; the zero addrRef is "".
type addrRef struct {
	chunk    uint32
	off, len uint16
}

// arenaChunk is the size of a chunk, and so the longest address
// (netid.CheckUaddr and --max-message keep them far shorter).
const arenaChunk = 1 << 16

// put stores s, false when it is longer than a chunk.
func (a *addrArena) put(s string) (addrRef, bool) {
	if s == "" {
		return addrRef{}, true
	}
	if len(s) >= arenaChunk {
		return addrRef{}, false
	}
	last := len(a.chunks) - 1
	if last < 0 || cap(a.chunks[last])-len(a.chunks[last]) < len(s) {
		a.chunks = append(a.chunks, make([]byte, 0, arenaChunk))
		last++
	}
	c := a.chunks[last]
	r := addrRef{chunk: uint32(last), off: uint16(len(c)), len: uint16(len(s))}
	// Within the chunk's capacity: the chunk is not moved.
	a.chunks[last] = append(c, s...)
	a.live += len(s)
	return r, true
}

// get returns the address r refers to, without copying it.
func (a *addrArena) get(r addrRef) string {
	if r.len == 0 {
		return ""
	}
	return unsafe.String(&a.chunks[r.chunk][r.off], int(r.len))
}

// release counts r's bytes as dead.
func (a *addrArena) release(r addrRef) {
	a.live -= int(r.len)
	a.dead += int(r.len)
}

// wasteful reports whether more of the arena is dead than live, by more
// than a chunk: time to compact.
func (a *addrArena) wasteful() bool { return a.dead > a.live+arenaChunk }
