package httpmap

import (
	"bufio"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/portmapd/portmapd/registry"
)

// The listing is written row by row as it is read from the registry, a
// chunk at a time (registry.ProgramsAfter, NamedAfter), so that neither
// the registry's copy nor the document is ever whole in memory: a
// listing of 100,000 entries holds a chunk of entries and the writer's
// buffer. A row is a named instance or an RPC program with all its
// entries.

// Listing chunks and buffer: what a listing holds at once.
const (
	namedChunk   = 256
	entriesChunk = 512
	// streamBuffer is the most of the document held before it is
	// written to the connection.
	streamBuffer = 32 << 10
	// maxPageLimit bounds ?limit=.
	maxPageLimit = 1 << 20
)

// A rowCursor is a row's place in the listing, as ?after= names it: the
// named services come first, in registration order ("s" SEQ "." NAME),
// then the RPC programs, in the order of their first entries ("p" SEQ "."
// PROGRAM). The zero cursor is before the first row.
type rowCursor struct {
	named registry.NamedCursor
	prog  registry.ProgramCursor
	// inRPC is set for a program's cursor.
	inRPC bool
}

func (c rowCursor) String() string {
	if c.inRPC {
		return "p" + strconv.FormatUint(c.prog.Seq, 10) + "." + strconv.FormatUint(uint64(c.prog.Prog), 10)
	}
	return "s" + strconv.FormatUint(c.named.Seq, 10) + "." + c.named.Name
}

// parseCursor reads ?after='s value.
func parseCursor(s string) (rowCursor, error) {
	bad := &ParamError{Key: "after", Value: s, Want: "a cursor of a Link: rel=\"next\""}
	if len(s) < 3 || (s[0] != 's' && s[0] != 'p') {
		return rowCursor{}, bad
	}
	seqText, rest, ok := strings.Cut(s[1:], ".")
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if !ok || err != nil || seq == 0 {
		return rowCursor{}, bad
	}
	if s[0] == 's' {
		return rowCursor{named: registry.NamedCursor{Name: rest, Seq: seq}}, nil
	}
	prog, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return rowCursor{}, bad
	}
	return rowCursor{prog: registry.ProgramCursor{Prog: uint32(prog), Seq: seq}, inRPC: true}, nil
}

// A pageQuery is ?limit= and ?after=: at most limit rows (0: all) after
// the row at after.
type pageQuery struct {
	limit int
	after rowCursor
}

func parsePage(v url.Values) (pageQuery, error) {
	var p pageQuery
	if v.Has("limit") {
		s := v.Get("limit")
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageLimit {
			return p, &ParamError{Key: "limit", Value: s, Want: "a number of rows from 1 to " + strconv.Itoa(maxPageLimit)}
		}
		p.limit = n
	}
	if v.Has("after") {
		c, err := parseCursor(v.Get("after"))
		if err != nil {
			return p, err
		}
		p.after = c
	}
	return p, nil
}

// A listRow is one row of the listing: a named instance, or an RPC
// program's entries (each with the instances, number and name, it shows
// as) that the viewer may see and the filter passes.
type listRow struct {
	named *Instance
	rpc   []rpcRow
	at    rowCursor
}

// A rowWalk reads the rows that a request may see, in listing order.
type rowWalk struct {
	s      *Server
	f      filter
	users  *userNames
	name   string // only this name's rows, for /portmap/NAME
	remote bool
}

// rows calls yield with each row after the cursor, until it returns
// false.
func (w *rowWalk) rows(after rowCursor, yield func(listRow) bool) {
	if !after.inRPC && !w.namedRows(after.named, yield) {
		return
	}
	if w.name == "" || registry.IsReservedName(w.name) {
		w.programRows(after.prog, yield)
	}
}

func (w *rowWalk) namedRows(after registry.NamedCursor, yield func(listRow) bool) bool {
	if w.name != "" {
		// One name's services are few: read them whole.
		for _, sv := range w.s.reg.LookupNamed(w.name) {
			if in, ok := w.namedInstance(sv); ok && !yield(listRow{named: &in}) {
				return false
			}
		}
		return true
	}
	var buf []registry.ListedService
	for {
		buf = w.s.reg.NamedAfter(buf[:0], after, namedChunk)
		if len(buf) == 0 {
			return true
		}
		for _, sv := range buf {
			if in, ok := w.namedInstance(sv.Service); ok && !yield(listRow{named: &in, at: rowCursor{named: sv.At}}) {
				return false
			}
		}
		after = buf[len(buf)-1].At
	}
}

func (w *rowWalk) namedInstance(sv registry.Service) (Instance, bool) {
	in := serviceInstance(sv)
	return in, w.f.match(in, w.users) && (!w.remote || reachable(in))
}

func (w *rowWalk) programRows(after registry.ProgramCursor, yield func(listRow) bool) {
	var buf []registry.ListedEntry
	for {
		buf = w.s.reg.ProgramsAfter(buf[:0], after, entriesChunk)
		if len(buf) == 0 {
			return
		}
		for i := 0; i < len(buf); {
			prog := buf[i].Program
			var rows []rpcRow
			for ; i < len(buf) && buf[i].Program == prog; i++ {
				var row rpcRow
				for _, in := range rpcInstances(buf[i].Entry, w.s.names) {
					if (w.name == "" || strings.EqualFold(in.Service, w.name)) && w.f.match(in, w.users) && (!w.remote || reachable(in)) {
						row.add(in)
					}
				}
				if len(row.ins) > 0 {
					rows = append(rows, row)
				}
			}
			if len(rows) > 0 && !yield(listRow{rpc: rows, at: rowCursor{prog: prog, inRPC: true}}) {
				return
			}
		}
		after = buf[len(buf)-1].Program
	}
}

// A pageExtent is what a first pass over a request's rows finds: how
// many there are (up to the page's limit), how many RPC entries they
// hold, the last one's place and whether more follow.
type pageExtent struct {
	rows, entries, named int
	last                 rowCursor
	more                 bool
}

func (w *rowWalk) measure(p pageQuery) pageExtent {
	var x pageExtent
	w.rows(p.after, func(row listRow) bool {
		if p.limit > 0 && x.rows == p.limit {
			x.more = true
			return false
		}
		x.rows++
		if row.named != nil {
			x.named++
		}
		x.entries += len(row.rpc)
		x.last = row.at
		return true
	})
	return x
}

// stream answers q with the rows f selects, written as they are read.
// A page (?limit=), the page (which shows counts first) and a name's
// rows (404 when there are none) take a first pass that counts them and
// finds where the page ends; the second writes the rows up to there.
//
// It returns an error only before it writes the status; one after that,
// a client gone or a template that fails, ends the listing where it is.
func (s *Server) stream(q *request, f filter) error {
	page, err := parsePage(q.r.URL.Query())
	if err != nil {
		return err
	}
	if q.name != "" {
		// A name's rows are not paged: a name has few.
		page = pageQuery{}
	}
	s.names.Refresh()
	// Read before the registry: what the answer shows includes every
	// change up to it, so that a blocking query from it misses none.
	q.w.Header().Set(IndexHeader, strconv.FormatUint(s.reg.Index(), 10))
	walk := &rowWalk{s: s, f: f, users: q.users, name: q.name, remote: s.external(q.sender, q.r)}
	var extent pageExtent
	bounded := page.limit > 0 || q.typ == TypeHTML || q.name != ""
	if bounded {
		extent = walk.measure(page)
		if q.name != "" && extent.rows == 0 {
			// The same answer whether the name is unregistered or
			// only hidden from this viewer.
			return &registry.NamedError{Name: q.name, Err: registry.ErrNotFound}
		}
		if extent.more {
			next := q.r.URL.Query()
			next.Set("after", extent.last.String())
			q.w.Header().Set("Link", "<"+listPath+"?"+next.Encode()+">; rel=\"next\"")
		}
	}
	bw := bufio.NewWriterSize(q.w, streamBuffer)
	out := s.formatFor(q, bw)
	if err := s.startListing(q, out, listCounts{named: extent.named, entries: extent.entries}, http.StatusOK); err != nil {
		// The status is written: the listing ends here.
		return nil
	}
	n := 0
	walk.rows(page.after, func(row listRow) bool {
		if bounded && n == extent.rows {
			return false
		}
		n++
		if err := out.row(row); err != nil {
			return false
		}
		return !bounded || row.at != extent.last || extent.last == (rowCursor{})
	})
	if err := out.finish(s.tail(q)); err != nil {
		s.log.Debug("listing cut short", "err", err)
		return nil
	}
	bw.Flush()
	return nil
}
