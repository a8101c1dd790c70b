package httpmap

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portmapd/portmapd/registry"
)

// render answers q with the instances that pass f (only those of q's
// name, for /portmap/NAME); 404 when a name has none the viewer may see.
func (s *Server) render(q *request, f filter) {
	s.names.Refresh()
	// Read before the registry: what the answer shows includes every
	// change up to it, so that a blocking query from it misses none.
	q.w.Header().Set(IndexHeader, strconv.FormatUint(s.reg.Index(), 10))
	name, users := q.name, q.users
	var (
		named []Instance
		rpc   []rpcRow
	)
	if name != "" {
		for _, sv := range s.reg.LookupNamed(name) {
			if in := serviceInstance(sv); f.match(in, users) {
				named = append(named, in)
			}
		}
		if registry.IsReservedName(name) {
			for e := range s.reg.All() {
				var row rpcRow
				for _, in := range rpcInstances(e, s.names) {
					if strings.EqualFold(in.Service, name) && f.match(in, users) {
						row.add(in)
					}
				}
				if len(row.ins) > 0 {
					rpc = append(rpc, row)
				}
			}
		}
	} else {
		entries, svcs := s.reg.Snapshot()
		for _, sv := range svcs {
			if in := serviceInstance(sv); f.match(in, users) {
				named = append(named, in)
			}
		}
		for _, e := range entries {
			var row rpcRow
			for _, in := range rpcInstances(e, s.names) {
				if f.match(in, users) {
					row.add(in)
				}
			}
			if len(row.ins) > 0 {
				rpc = append(rpc, row)
			}
		}
	}
	v := s.viewFor(q, named, rpc)
	if name != "" && len(v.named) == 0 && len(v.rpc) == 0 {
		// The same answer whether the name is unregistered or only
		// hidden from this viewer.
		s.fail(q, &registry.NamedError{Name: name, Err: registry.ErrNotFound})
		return
	}
	s.write(q, v, http.StatusOK)
}

// write answers q with v, in q's type, with the given status.
func (s *Server) write(q *request, v view, status int) {
	w := q.w
	all := make([]Instance, 0, len(v.named)+len(v.rpc))
	all = append(all, v.named...)
	for _, row := range v.rpc {
		all = append(all, row.ins...)
	}
	var b bytes.Buffer
	switch q.typ {
	case TypeCSV:
		download := csvForBrowser(q.r)
		writeCSV(&b, all, download)
		if download {
			w.Header().Set("Content-Disposition", `attachment; filename="portmap.csv"`)
		}
	case TypeXML, TypeTextXML:
		writeXML(&b, all)
	case TypeJSON:
		for i := range all {
			if all[i].UID != nil {
				all[i].UserName = q.users.name(*all[i].UID)
			}
		}
		if err := writeJSON(&b, Listing{Host: s.cfg.Hostname, Generated: s.cfg.Now().UTC(), Instances: all, RecentRemovals: v.removals, Removed: v.removed, Refused: KindCounts(s.reg.Refusals())}); err != nil {
			s.writeError(w, TypeCSV, err)
			return
		}
	case TypeHTML:
		if err := s.page.Execute(&b, s.pageData(q, v)); err != nil {
			s.log.Error("rendering page", "err", err)
			s.writeError(w, TypeCSV, err)
			return
		}
		w.Header().Set("Content-Security-Policy", s.csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}
	h := w.Header()
	h.Set("Content-Type", q.typ+"; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// pageData is what the HTML template shows.
type pageData struct {
	Host, Origin string
	External     bool
	Generated    time.Time
	Services     []pageService
	RPC          []pageRPC
	Script       any
	// EventsURL is the event stream of the page's changes, from the
	// index it shows, with its filters.
	EventsURL string
	query     url.Values
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

func (s *Server) pageData(q *request, v view) pageData {
	r := q.r
	d := pageData{
		Host:      s.cfg.Hostname,
		Origin:    "http://" + r.Host,
		External:  v.remote,
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
	for _, in := range v.named {
		d.Services = append(d.Services, pageService{Instance: in, Unicode: UnicodeName(in.Service), UserLabel: userLabel(in, q.users), SortPort: in.Port})
	}
	for _, row := range v.rpc {
		first := row.ins[0]
		pr := pageRPC{RPCInfo: *first.RPC, Port: first.Port, SortPort: first.Port, PIDString: first.PIDString(), Health: first.Health, HealthOutput: first.HealthOutput}
		for _, in := range row.ins {
			pr.Names = append(pr.Names, in.Service)
		}
		d.RPC = append(d.RPC, pr)
	}
	return d
}
