package rpcent

import (
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// maxFile bounds the database Names reads: /etc/rpc is small, and a bound
// keeps a mistaken path from costing much.
const maxFile = 1 << 20

// Names maps program numbers to their official names in a database that
// may change while it is used: it is read again when its modification
// time or size changes, looked at no more often than Refresh is called.
// The first line for a number wins, as getrpcbynumber(3) has it. Its
// methods are safe for concurrent use; a nil Names names nothing.
type Names struct {
	path string
	keep func(name string) bool

	mu      sync.Mutex
	modTime time.Time
	size    int64
	byProg  map[uint32]string
}

// NewNames returns the names of the database at path, of which it keeps
// only those keep accepts (the names a caller can show). It reads
// nothing until Refresh.
func NewNames(path string, keep func(name string) bool) *Names {
	return &Names{path: path, keep: keep, byProg: map[uint32]string{}}
}

// Refresh reads the database again if it changed since the last read,
// its first megabyte at most. A database that is gone names nothing; one
// that cannot be read leaves the names as they were.
func (n *Names) Refresh() {
	if n == nil || n.path == "" {
		return
	}
	fi, err := os.Stat(n.path)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.byProg = map[uint32]string{}
		n.modTime = time.Time{}
		return
	}
	if fi.ModTime().Equal(n.modTime) && fi.Size() == n.size {
		return
	}
	f, err := os.Open(n.path)
	if err != nil {
		return
	}
	t, err := Parse(io.LimitReader(f, maxFile))
	f.Close()
	if err != nil {
		return
	}
	byProg := make(map[uint32]string)
	for _, e := range t.Entries() {
		if _, ok := byProg[e.Number]; !ok && (n.keep == nil || n.keep(e.Name)) {
			byProg[e.Number] = e.Name
		}
	}
	n.byProg = byProg
	n.modTime, n.size = fi.ModTime(), fi.Size()
}

// Number returns the number of the program officially named name (in
// any case); ok is false when no program has that name.
func (n *Names) Number(name string) (prog uint32, ok bool) {
	if n == nil {
		return 0, false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for p, pn := range n.byProg {
		if strings.EqualFold(pn, name) && (!ok || p < prog) {
			prog, ok = p, true
		}
	}
	return prog, ok
}

// Name returns the official name of program prog, "" when it has none.
func (n *Names) Name(prog uint32) string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byProg[prog]
}
