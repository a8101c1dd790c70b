package oncrpc

import (
	"sync"

	"github.com/portmapd/portmapd/xdr"
)

// A ServeMux routes calls by program, version and procedure, and answers
// itself what no handler can: PROG_UNAVAIL for an unknown program,
// PROG_MISMATCH with the lowest and highest version it has for a known
// program, and PROC_UNAVAIL for an unknown procedure.
//
// The zero ServeMux is empty and ready for use. It is safe for concurrent
// use.
type ServeMux struct {
	mu    sync.RWMutex
	progs map[uint32]map[uint32]map[uint32]Handler
}

// Handle registers h for procedure proc of program prog, version vers,
// replacing any earlier handler.
func (m *ServeMux) Handle(prog, vers, proc uint32, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.progs == nil {
		m.progs = make(map[uint32]map[uint32]map[uint32]Handler)
	}
	versions := m.progs[prog]
	if versions == nil {
		versions = make(map[uint32]map[uint32]Handler)
		m.progs[prog] = versions
	}
	procs := versions[vers]
	if procs == nil {
		procs = make(map[uint32]Handler)
		versions[vers] = procs
	}
	procs[proc] = h
}

// HandleFunc registers f as Handle does.
func (m *ServeMux) HandleFunc(prog, vers, proc uint32, f func(ReplyWriter, *Call)) {
	m.Handle(prog, vers, proc, HandlerFunc(f))
}

// Handler returns the handler for c and, when there is none, the reply
// header that says why.
func (m *ServeMux) Handler(c *Call) (Handler, xdr.ReplyHeader) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	versions, ok := m.progs[c.Prog]
	if !ok {
		return nil, xdr.Accepted(c.XID, xdr.ProgUnavail)
	}
	procs, ok := versions[c.Vers]
	if !ok {
		h := xdr.Accepted(c.XID, xdr.ProgMismatch)
		h.Mismatch = versionRange(versions)
		return nil, h
	}
	if hd, ok := procs[c.Proc]; ok {
		return hd, xdr.ReplyHeader{}
	}
	return nil, xdr.Accepted(c.XID, xdr.ProcUnavail)
}

func versionRange[V any](versions map[uint32]V) xdr.Mismatch {
	first := true
	var r xdr.Mismatch
	for v := range versions {
		if first || v < r.Low {
			r.Low = v
		}
		if first || v > r.High {
			r.High = v
		}
		first = false
	}
	return r
}

// ServeRPC dispatches c to its handler or answers the routing error.
func (m *ServeMux) ServeRPC(w ReplyWriter, c *Call) {
	h, why := m.Handler(c)
	if h == nil {
		_ = w.WriteReply(why, nil)
		return
	}
	h.ServeRPC(w, c)
}
