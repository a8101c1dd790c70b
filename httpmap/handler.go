package httpmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// Paths served.
const (
	listPath = "/portmap"
	cssPath  = "/portmap/portmap.css"
)

// ServeHTTP answers /portmap (list, register, deregister), /portmap/NAME
// (look up, deregister) and the stylesheets.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/":
		http.Redirect(w, r, listPath, http.StatusFound)
	case p == listPath || p == listPath+"/":
		s.serveList(w, r)
	case p == xslPath:
		s.serveAsset(w, r, "assets/portmap.xsl", "text/xsl; charset=utf-8")
	case p == cssPath:
		s.serveAsset(w, r, "assets/portmap.css", "text/css; charset=utf-8")
	case strings.HasPrefix(p, listPath+"/"):
		s.serveName(w, r, strings.TrimPrefix(p, listPath+"/"))
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveAsset(w http.ResponseWriter, r *http.Request, name, typ string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	data, err := assets.ReadFile(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(data)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusMethodNotAllowed)
	io.WriteString(w, "method not allowed; allowed: "+allow+"\n")
}

// peerFrom returns the peer the connection recorded, or, for a handler
// called without one of this package's listeners (httptest), a network
// peer built from RemoteAddr.
func peerFrom(r *http.Request) *peer {
	if p, ok := r.Context().Value(peerKey{}).(*peer); ok {
		return p
	}
	p := &peer{caller: registry.Caller{Transport: registry.Network}}
	if a, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		p.caller.Addr = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return p
}

// external reports whether the request comes from another host, which
// sees a read-only view without AF_UNIX paths. A trusted proxy's
// X-Forwarded-For is walked from the right, the end the proxy appended,
// to the first address that is not a trusted proxy.
func (s *Server) external(p *peer, r *http.Request) bool {
	if p.caller.Transport != registry.Network {
		return false
	}
	client := p.caller.Addr.Addr()
	if s.trusted(client) {
		hops := r.Header.Values("X-Forwarded-For")
	walk:
		for i := len(hops) - 1; i >= 0; i-- {
			list := hops[i]
			for list != "" {
				var hop string
				if j := strings.LastIndexByte(list, ','); j >= 0 {
					hop, list = list[j+1:], list[:j]
				} else {
					hop, list = list, ""
				}
				a, err := netip.ParseAddr(strings.TrimSpace(hop))
				if err != nil {
					// An address we cannot read is not a local one.
					return true
				}
				client = a.Unmap()
				if !s.trusted(client) {
					break walk
				}
			}
		}
		return !client.IsLoopback()
	}
	return !(client.IsLoopback() || client == p.local)
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// contentType picks the response type: format= if given, else the Accept
// header. It is "" when nothing acceptable is offered.
func contentType(r *http.Request) string {
	if f := r.URL.Query().Get("format"); f != "" {
		return formats[strings.ToLower(f)]
	}
	return negotiate(r.Header.Get("Accept"))
}

// csvForBrowser reports whether a CSV response goes to a person's browser,
// to be saved and opened in a spreadsheet: CSV was asked for with format=
// (as the page's link does) by a request whose Accept header prefers HTML,
// as a browser's navigation does. Such CSV is a download, with formulas
// neutralised (csvField). A program that asks for text/csv in its Accept
// header, or sends none, or */* as curl does, gets the values exactly.
func csvForBrowser(r *http.Request) bool {
	return r.URL.Query().Has("format") && negotiate(r.Header.Get("Accept")) == TypeHTML
}

func (s *Server) serveList(w http.ResponseWriter, r *http.Request) {
	typ := contentType(r)
	if typ == "" {
		notAcceptable(w)
		return
	}
	p := peerFrom(r)
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost:
		body, err := readBody(w, r)
		if err != nil {
			s.fail(w, typ, err)
			return
		}
		ct := r.Header.Get("Content-Type")
		var form url.Values
		if mt := strings.TrimSpace(strings.Split(ct, ";")[0]); mt != TypeJSON {
			if form, err = url.ParseQuery(string(body)); err != nil {
				s.fail(w, typ, &RequestError{"bad form: " + err.Error()})
				return
			}
		}
		if isRegistration(ct, form) {
			s.serveRegister(w, r, typ, p, ct, body)
			return
		}
		// httportmap's client POSTs its filters as a form.
		for k, vs := range form {
			q[k] = append(q[k], vs...)
		}
	case http.MethodDelete:
		s.serveDeregister(w, r, typ, p)
		return
	default:
		methodNotAllowed(w, "GET, HEAD, POST, DELETE")
		return
	}
	f, err := parseFilter(q)
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	s.render(w, r, typ, p, f, "", http.StatusOK)
}

func notAcceptable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotAcceptable)
	io.WriteString(w, "not acceptable; available: "+strings.Join(offered[:], ", ")+"\n")
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, mbe
		}
		return nil, &RequestError{"reading body: " + err.Error()}
	}
	return body, nil
}

func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request, typ string, p *peer, ct string, body []byte) {
	reg, err := ParseRegistration(ct, body)
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	added, err := s.register(p, reg)
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	s.writeServices(w, r, typ, p, added, http.StatusCreated)
}

func (s *Server) serveDeregister(w http.ResponseWriter, r *http.Request, typ string, p *peer) {
	body, err := readBody(w, r)
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	var reg *Registration
	if len(bytes.TrimSpace(body)) == 0 {
		reg, err = ParseRegistrationForm(r.URL.Query())
	} else {
		reg, err = ParseRegistration(r.Header.Get("Content-Type"), body)
	}
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	svcs, err := reg.services()
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	for i := range svcs {
		svcs[i].PID = reg.PID
	}
	removed, err := s.deregister(p.caller, svcs, "")
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	s.writeServices(w, r, typ, p, removed, http.StatusOK)
}

// writeServices answers a change with the services it touched, in the
// listing's format.
func (s *Server) writeServices(w http.ResponseWriter, r *http.Request, typ string, p *peer, svcs []registry.Service, status int) {
	ins := make([]Instance, 0, len(svcs))
	for _, sv := range svcs {
		ins = append(ins, serviceInstance(sv))
	}
	s.write(w, r, typ, s.viewFor(p, r, ins, nil), &userNames{path: s.cfg.Passwd}, status)
}

func (s *Server) serveName(w http.ResponseWriter, r *http.Request, name string) {
	typ := contentType(r)
	if typ == "" {
		notAcceptable(w)
		return
	}
	p := peerFrom(r)
	name, err := asciiName(name)
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	case http.MethodDelete:
		removed, err := s.deregister(p.caller, nil, name)
		if err != nil {
			s.fail(w, typ, err)
			return
		}
		s.writeServices(w, r, typ, p, removed, http.StatusOK)
		return
	default:
		methodNotAllowed(w, "GET, HEAD, POST, DELETE")
		return
	}
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		s.fail(w, typ, err)
		return
	}
	s.render(w, r, typ, p, f, name, http.StatusOK)
}

// render lists the instances that pass f (only those named name, if
// given) in the format typ; 404 when a name has none the viewer may see.
func (s *Server) render(w http.ResponseWriter, r *http.Request, typ string, p *peer, f filter, name string, status int) {
	s.names.refresh()
	users := &userNames{path: s.cfg.Passwd}
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
			s.reg.Range(func(e registry.Entry) bool {
				var row rpcRow
				for _, in := range rpcInstances(e, s.names) {
					if strings.EqualFold(in.Service, name) && f.match(in, users) {
						row.add(in)
					}
				}
				if len(row.ins) > 0 {
					rpc = append(rpc, row)
				}
				return true
			})
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
	v := s.viewFor(p, r, named, rpc)
	if name != "" && len(v.named) == 0 && len(v.rpc) == 0 {
		// The same answer whether the name is unregistered or only
		// hidden from this viewer.
		s.fail(w, typ, &registry.NamedError{Name: name, Err: registry.ErrNotFound})
		return
	}
	s.write(w, r, typ, v, users, status)
}

// write renders v in the format typ.
func (s *Server) write(w http.ResponseWriter, r *http.Request, typ string, v view, users *userNames, status int) {
	all := make([]Instance, 0, len(v.named)+len(v.rpc))
	all = append(all, v.named...)
	for _, row := range v.rpc {
		all = append(all, row.ins...)
	}
	var b bytes.Buffer
	switch typ {
	case TypeCSV:
		download := csvForBrowser(r)
		writeCSV(&b, all, download)
		if download {
			w.Header().Set("Content-Disposition", `attachment; filename="portmap.csv"`)
		}
	case TypeXML, TypeTextXML:
		writeXML(&b, all)
	case TypeJSON:
		for i := range all {
			if all[i].UID != nil {
				all[i].UserName = users.name(*all[i].UID)
			}
		}
		if err := writeJSON(&b, Listing{Host: s.cfg.Hostname, Generated: s.cfg.Now().UTC(), Instances: all, RecentRemovals: v.removals, Removed: v.removed, Refused: s.reg.Refusals()}); err != nil {
			s.fail(w, TypeCSV, err)
			return
		}
	case TypeHTML:
		if err := s.page.Execute(&b, s.pageData(r, v, users)); err != nil {
			s.log.Error("rendering page", "err", err)
			s.fail(w, TypeCSV, err)
			return
		}
		w.Header().Set("Content-Security-Policy", s.csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
	}
	h := w.Header()
	h.Set("Content-Type", typ+"; charset=utf-8")
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
	query        url.Values
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

func (s *Server) pageData(r *http.Request, v view, users *userNames) pageData {
	d := pageData{
		Host:      s.cfg.Hostname,
		Origin:    "http://" + r.Host,
		External:  v.remote,
		Generated: s.cfg.Now(),
		Script:    s.script,
		query:     r.URL.Query(),
	}
	d.query.Del("format")
	if d.Host == "" {
		d.Host = hostOf(r.Host)
	}
	for _, in := range v.named {
		d.Services = append(d.Services, pageService{Instance: in, Unicode: UnicodeName(in.Service), UserLabel: userLabel(in, users), SortPort: in.Port})
	}
	for _, row := range v.rpc {
		first := row.ins[0]
		pr := pageRPC{RPCInfo: *first.RPC, Port: first.Port, SortPort: first.Port, PIDString: first.PIDString()}
		for _, in := range row.ins {
			pr.Names = append(pr.Names, in.Service)
		}
		d.RPC = append(d.RPC, pr)
	}
	return d
}

// statusOf maps an error to its HTTP status.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	var fe *FilterError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, registry.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, registry.ErrExclusive):
		return http.StatusConflict
	case errors.Is(err, registry.ErrNotLocal), errors.Is(err, registry.ErrNotYours),
		errors.Is(err, registry.ErrReservedName), errors.Is(err, registry.ErrCapReached):
		return http.StatusForbidden
	case errors.Is(err, registry.ErrBadName), errors.Is(err, registry.ErrBadEndpoint),
		errors.Is(err, ErrBadRequest), errors.As(err, &fe):
		return http.StatusBadRequest
	case errors.Is(err, lifetime.ErrGone):
		return http.StatusGone
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON form of an error response.
type ErrorBody struct {
	Error string `json:"error"`
}

// fail answers with err's status and a one-line body saying what was
// wrong: JSON when the client prefers JSON, else plain text.
func (s *Server) fail(w http.ResponseWriter, typ string, err error) {
	code := statusOf(err)
	msg := err.Error()
	for _, prefix := range []string{"registry: ", "httpmap: ", "lifetime: "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	if err == registry.ErrNotLocal {
		msg = "registering and deregistering are only accepted over the local socket " + s.cfg.SocketPath + ", whose peer credentials identify the caller"
	}
	msg = strings.ReplaceAll(msg, "\n", " ")
	if code == http.StatusInternalServerError {
		s.log.Error("request failed", "err", err)
	}
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if typ == TypeJSON {
		h.Set("Content-Type", TypeJSON+"; charset=utf-8")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(ErrorBody{msg})
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}
