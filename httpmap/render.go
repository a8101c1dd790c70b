package httpmap

import (
	"bufio"
	"bytes"
	"net/url"
	"strconv"
	"time"
)

// render answers q with the instances that pass f (only those of q's
// name, for /portmap/NAME); 404 when a name has none the viewer may see.
// The listing streams (stream.go).
func (s *Server) render(q *request, f filter) error { return s.stream(q, f) }

// setListingHeaders sets the headers of a listing in q's type.
func (s *Server) setListingHeaders(q *request) {
	h := q.w.Header()
	switch q.typ {
	case TypeCSV:
		if csvForBrowser(q.r) {
			h.Set("Content-Disposition", `attachment; filename="portmap.csv"`)
		}
	case TypeHTML:
		h.Set("Content-Security-Policy", s.csp)
		h.Set("X-Content-Type-Options", "nosniff")
	}
	h.Set("Content-Type", q.typ+"; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept")
}

// formatFor returns the listFormat of q's type, writing to w.
func (s *Server) formatFor(q *request, w *bufio.Writer) listFormat {
	switch q.typ {
	case TypeXML, TypeTextXML:
		return &xmlFormat{w: w}
	case TypeJSON:
		return newJSONFormat(w, q.r.URL.Query().Has("pretty"), q.users, s.cfg.Hostname, s.cfg.Now().UTC())
	case TypeHTML:
		return &htmlFormat{s: s, q: q, w: w}
	}
	return &csvFormat{w: w, neutralise: csvForBrowser(q.r)}
}

// startListing sets q's headers and status and starts its document.
func (s *Server) startListing(q *request, out listFormat, c listCounts, status int) error {
	s.setListingHeaders(q)
	q.w.WriteHeader(status)
	return out.start(c)
}

// tail is what a listing shows after its rows: the recent removals
// (those the viewer may see, as viewFor decides), and the counts.
func (s *Server) tail(q *request) listTail {
	v := s.viewFor(q, nil)
	return listTail{removals: v.removals, removed: v.removed, refused: KindCounts(s.reg.Refusals())}
}

// write answers q with v, in q's type, with the given status: a change's
// few named services, written whole with their length.
func (s *Server) write(q *request, v view, status int) {
	var b bytes.Buffer
	bw := bufio.NewWriter(&b)
	out := s.formatFor(q, bw)
	if err := out.start(listCounts{named: len(v.named)}); err != nil {
		s.writeError(q.w, TypeCSV, err)
		return
	}
	for i := range v.named {
		out.row(listRow{named: &v.named[i]})
	}
	if err := out.finish(listTail{removals: v.removals, removed: v.removed, refused: KindCounts(s.reg.Refusals())}); err != nil {
		s.log.Error("rendering listing", "err", err)
		s.writeError(q.w, TypeCSV, err)
		return
	}
	s.setListingHeaders(q)
	q.w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	q.w.WriteHeader(status)
	q.w.Write(b.Bytes())
}

// htmlFormat writes the page, a part of its template at a time (see
// assets/page.html).
type htmlFormat struct {
	s    *Server
	q    *request
	w    *bufio.Writer
	data pageData
	// named and entries count the rows written to each table; inRPC
	// says the named services' table is closed.
	named, entries int
	inRPC          bool
}

func (h *htmlFormat) exec(name string, data any) error {
	if err := h.s.page.ExecuteTemplate(h.w, name, data); err != nil {
		h.s.log.Error("rendering page", "err", err)
		return err
	}
	return nil
}

func (h *htmlFormat) start(c listCounts) error {
	h.data = h.s.pageData(h.q, h.s.external(h.q.sender, h.q.r))
	h.data.NamedCount, h.data.RPCCount = c.named, c.entries
	return h.exec("head", h.data)
}

func (h *htmlFormat) row(row listRow) error {
	if in := row.named; in != nil {
		h.named++
		return h.exec("service", pageService{Instance: *in, Unicode: UnicodeName(in.Service), UserLabel: userLabel(*in, h.q.users), SortPort: in.Port})
	}
	if err := h.closeNamed(); err != nil {
		return err
	}
	for _, r := range row.rpc {
		first := r.ins[0]
		pr := pageRPC{RPCInfo: *first.RPC, Port: first.Port, SortPort: first.Port, PIDString: first.PIDString(), Health: first.Health, HealthOutput: first.HealthOutput}
		for _, in := range r.ins {
			pr.Names = append(pr.Names, in.Service)
		}
		h.entries++
		if err := h.exec("rpc", pr); err != nil {
			return err
		}
	}
	return nil
}

// closeNamed ends the named services' table, once.
func (h *htmlFormat) closeNamed() error {
	if h.inRPC {
		return nil
	}
	h.inRPC = true
	if h.named == 0 {
		if err := h.exec("no-services", nil); err != nil {
			return err
		}
	}
	return h.exec("middle", h.data)
}

func (h *htmlFormat) finish(listTail) error {
	if err := h.closeNamed(); err != nil {
		return err
	}
	if h.entries == 0 {
		if err := h.exec("no-rpc", nil); err != nil {
			return err
		}
	}
	if err := h.exec("foot", h.data); err != nil {
		return err
	}
	return h.w.Flush()
}

// pageData is what the HTML template shows.
type pageData struct {
	Host, Origin string
	External     bool
	Generated    time.Time
	// NamedCount and RPCCount are how many named instances and RPC
	// entries the page shows.
	NamedCount, RPCCount int
	Script               any
	// EventsURL is the event stream of the page's changes, from the
	// index it shows, with its filters.
	EventsURL string
	query     url.Values
}

// A pageTable is one of the page's tables as its "table" template opens
// it: the heading, the id by which page.js finds the table and the count
// beside the heading, and the columns.
type pageTable struct {
	Heading, ID string
	Columns     []string
}

// newPageTable is the page template's "table" function, which builds a
// pageTable from a heading, an id and the column names.
func newPageTable(heading, id string, columns ...string) pageTable {
	return pageTable{Heading: heading, ID: id, Columns: columns}
}

type pageService struct {
	Instance
	// Unicode is the name's Unicode form, shown above the ASCII form the
	// registry holds; "" when it has none.
	Unicode   string
	UserLabel string
	SortPort  string
}

type pageRPC struct {
	RPCInfo
	Port, SortPort, PIDString string
	Names                     []string
	// Health, HealthOutput and Checks are the entry's, as an Instance
	// has them, for the page's health template.
	Health, HealthOutput, Checks string
}

// FormatURL links to this listing, with its filters, in another format.
func (d pageData) FormatURL(format string) string {
	q := url.Values{}
	for k, v := range d.query {
		q[k] = v
	}
	q.Set("format", format)
	return listPath + "?" + q.Encode()
}

func userLabel(in Instance, users *userNames) string {
	if in.UID == nil {
		return "unknown"
	}
	if n := users.name(*in.UID); n != "" {
		return n + " (" + in.User() + ")"
	}
	return in.User()
}

// pageData is what the page shows besides its rows; remote is set for a
// viewer on another host.
func (s *Server) pageData(q *request, remote bool) pageData {
	r := q.r
	d := pageData{
		Host:      s.cfg.Hostname,
		Origin:    "http://" + r.Host,
		External:  remote,
		Generated: s.cfg.Now(),
		Script:    s.script,
		query:     r.URL.Query(),
	}
	d.query.Del("format")
	d.query.Del("index")
	d.query.Del("wait")
	events := url.Values{}
	for k, v := range d.query {
		events[k] = v
	}
	if name := q.name; name != "" {
		events.Set("service", name)
	}
	events.Del("passing")
	events.Set("index", q.w.Header().Get(IndexHeader))
	d.EventsURL = eventsPath + "?" + events.Encode()
	if d.Host == "" {
		d.Host = hostOf(r.Host)
	}
	return d
}
