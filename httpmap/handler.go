package httpmap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/registry"
)

// Paths served.
const (
	listPath = "/portmap"
	cssPath  = "/portmap/portmap.css"
)

// ErrShadowedName refuses to register a name that one of the web face's
// own paths below /portmap/ would hide from GET /portmap/NAME.
var ErrShadowedName = errors.New("name is one of the web face's own paths")

// shadowingPath returns the path of the web face's own that GET
// /portmap/NAME for name would reach instead of the name, or "". Names
// are compared without case, as the registry compares them.
func shadowingPath(name string) string {
	for _, p := range [...]string{eventsPath, cssPath, xslPath} {
		if strings.EqualFold(strings.TrimPrefix(p, listPath+"/"), name) {
			return p
		}
	}
	return ""
}

// Methods each kind of path takes, as a 405's Allow header lists them.
const (
	listingMethods    = "GET, HEAD, POST, DELETE"
	nameMethods       = "GET, HEAD, POST, PUT, DELETE"
	stylesheetMethods = "GET, HEAD"
)

// ServeHTTP answers /portmap (list, register, deregister), /portmap/NAME
// (look up, refresh, deregister), /portmap/events and the stylesheets.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Observer == nil {
		s.mux.ServeHTTP(w, r)
		return
	}
	rec := &statusRecorder{ResponseWriter: w}
	s.mux.ServeHTTP(rec, r)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	// The mux leaves the pattern that routed r in r.Pattern.
	s.cfg.Observer.HTTPServed(r.Pattern, rec.code)
}

// routes registers every path and method served on s.mux. A path's
// pattern without a method refuses the methods it does not take with this
// package's 405, which lists them in a fixed order; /portmap/{name...}'s
// does it for /portmap/ too.
func (s *Server) routes() {
	m := &s.mux
	m.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, listPath, http.StatusFound)
	})
	for _, p := range []string{listPath, listPath + "/{$}"} {
		m.Handle("GET "+p, s.listing(s.serveList))
		m.Handle("POST "+p, s.listing(s.servePost))
		m.Handle("DELETE "+p, s.listing(s.serveDeregister))
	}
	m.Handle(listPath, s.listing(refuseMethod))
	name := listPath + "/{name...}"
	m.Handle("GET "+name, s.named(s.serveList))
	m.Handle("POST "+name, s.named(s.serveList))
	m.Handle("PUT "+name, s.named(s.serveRefresh))
	m.Handle("DELETE "+name, s.named(s.serveDeregisterName))
	m.Handle(name, s.named(refuseNameMethod))
	m.HandleFunc("GET "+eventsPath, s.serveEvents)
	m.Handle("GET "+xslPath, stylesheet("assets/portmap.xsl", "text/xsl; charset=utf-8"))
	m.Handle("GET "+cssPath, stylesheet("assets/portmap.css", "text/css; charset=utf-8"))
	if s.cfg.Metrics != nil {
		m.HandleFunc("GET "+metricsPath, s.serveMetrics)
	}
}

// A request is one request to the listing or to a name, with what every
// step of answering it needs.
type request struct {
	w http.ResponseWriter
	r *http.Request
	// typ is the response's media type, from format= or Accept.
	typ    string
	sender *sender
	// users names uids in this response, reading the passwd file at most
	// once.
	users *userNames
	// name is /portmap/NAME's name in its ASCII form; "" for the listing.
	name string
}

// A handler answers a request to the listing or to a name. The error it
// returns is answered by fail, with its status (statusOf), so it returns
// one only before it has written anything; a handler that has started
// its answer deals with what goes wrong after that itself (stream).
type handler func(*request) error

// listing adapts h to serve the listing. A request for a type that is not
// offered is refused (406) before anything else.
func (s *Server) listing(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		typ := contentType(r)
		if typ == "" {
			notAcceptable(w)
			return
		}
		q := &request{w: w, r: r, typ: typ, sender: senderFrom(r), users: &userNames{path: s.cfg.Passwd}}
		if err := h(q); err != nil {
			s.fail(q, err)
		}
	})
}

// named adapts h to serve /portmap/NAME, as listing does, with the name
// converted to its ASCII form first.
//
// A stylesheet's path is also a name's: its own pattern takes GET, and
// any other method that reaches a name's handler on it is refused as the
// stylesheet refuses it.
func (s *Server) named(h handler) http.Handler {
	serve := s.listing(func(q *request) error {
		name, err := asciiName(q.r.PathValue("name"))
		if err != nil {
			return err
		}
		q.name = name
		return h(q)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == xslPath || p == cssPath {
			methodNotAllowed(w, stylesheetMethods)
			return
		}
		serve.ServeHTTP(w, r)
	})
}

func refuseMethod(q *request) error {
	methodNotAllowed(q.w, listingMethods)
	return nil
}

// refuseNameMethod refuses a method a name does not take; /portmap/,
// which reaches it too, is the listing.
func refuseNameMethod(q *request) error {
	if q.name == "" {
		return refuseMethod(q)
	}
	methodNotAllowed(q.w, nameMethods)
	return nil
}

// stylesheet serves an embedded asset of the given type.
func stylesheet(name, typ string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, err := assets.ReadFile(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", typ)
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(data)
	})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusMethodNotAllowed)
	io.WriteString(w, "method not allowed; allowed: "+allow+"\n")
}

// senderFrom returns the sender the connection recorded, or, for a
// handler called without one of this package's listeners (httptest), a
// network sender built from RemoteAddr.
func senderFrom(r *http.Request) *sender {
	if s, ok := r.Context().Value(senderKey{}).(*sender); ok {
		return s
	}
	s := &sender{caller: registry.Caller{Transport: registry.Network}}
	if a, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		s.caller.Addr = peer.Unmap(a)
	}
	return s
}

// external reports whether the request comes from another host, which
// sees a read-only view without AF_UNIX paths. A trusted proxy's
// X-Forwarded-For is walked from the right, the end the proxy appended,
// to the first address that is not a trusted proxy.
func (s *Server) external(p *sender, r *http.Request) bool {
	if p.caller.Transport != registry.Network {
		return false
	}
	client, proxied, ok := s.client(p, r)
	switch {
	case !ok:
		// An address we cannot read is not a local one.
		return true
	case proxied:
		return !client.IsLoopback()
	}
	return !(client.IsLoopback() || client == p.local)
}

// client returns the address a network request comes from: its peer's,
// or, when the peer is a trusted proxy (proxied), the first address of
// X-Forwarded-For, walked from the right, that is not one. ok is false
// when an address on that walk cannot be read.
func (s *Server) client(p *sender, r *http.Request) (client netip.Addr, proxied, ok bool) {
	client = p.caller.Addr.Addr()
	if !s.trusted(client) {
		return client, false, true
	}
	hops := r.Header.Values("X-Forwarded-For")
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
				return netip.Addr{}, true, false
			}
			client = a.Unmap()
			if !s.trusted(client) {
				return client, true, true
			}
		}
	}
	return client, true, true
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

func notAcceptable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusNotAcceptable)
	io.WriteString(w, "not acceptable; available: "+strings.Join(offered[:], ", ")+"\n")
}

// serveList lists what the query's filters select: the whole listing, or
// one name's instances.
func (s *Server) serveList(q *request) error {
	return s.renderFiltered(q, q.r.URL.Query())
}

// servePost registers (a JSON body, or a form with port=), or lists what
// the form's filters select, as httportmap's client asks with a POST.
func (s *Server) servePost(q *request) error {
	body, err := readBody(q)
	if err != nil {
		return err
	}
	ct := q.r.Header.Get("Content-Type")
	var form url.Values
	if mt := strings.TrimSpace(strings.Split(ct, ";")[0]); mt != TypeJSON {
		if form, err = url.ParseQuery(string(body)); err != nil {
			return &RequestError{"bad form: " + err.Error()}
		}
	}
	if isRegistration(ct, form) {
		return s.serveRegister(q, ct, body)
	}
	filters := q.r.URL.Query()
	for k, vs := range form {
		filters[k] = append(filters[k], vs...)
	}
	return s.renderFiltered(q, filters)
}

// renderFiltered renders what the filters select, or says what is wrong
// with them. With index= in the query, it first waits for a change (see
// block).
func (s *Server) renderFiltered(q *request, filters url.Values) error {
	if fleet, err := fleetScope(q.r.URL.Query()); err != nil || fleet {
		if err != nil {
			return err
		}
		return s.serveFleet(q, filters)
	}
	f, err := parseFilter(filters)
	if err != nil {
		return err
	}
	if q.r.URL.Query().Has("index") {
		if err := s.block(q, f); err != nil {
			return err
		}
	}
	return s.render(q, f)
}

func readBody(q *request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("%w (the limit is %d bytes)", errTooLarge, mbe.Limit)
		}
		return nil, &RequestError{"reading body: " + err.Error()}
	}
	return body, nil
}

func (s *Server) serveRegister(q *request, ct string, body []byte) error {
	reg, err := ParseRegistration(ct, body)
	if err != nil {
		s.auditFailure(q.sender.caller, "register", nil, "", err)
		return err
	}
	added, err := s.register(q.sender, reg)
	if err != nil {
		svcs, _ := reg.services()
		s.auditFailure(q.sender.caller, "register", svcs, "", err)
		return err
	}
	s.writeServices(q, added, http.StatusCreated)
	return nil
}

// serveDeregister removes the services a body (or, without one, the
// query) lists.
func (s *Server) serveDeregister(q *request) error {
	body, err := readBody(q)
	if err != nil {
		return err
	}
	var reg *Registration
	if len(bytes.TrimSpace(body)) == 0 {
		reg, err = ParseRegistrationForm(q.r.URL.Query())
	} else {
		reg, err = ParseRegistration(q.r.Header.Get("Content-Type"), body)
	}
	if err != nil {
		return err
	}
	svcs, err := reg.services()
	if err != nil {
		return err
	}
	for i := range svcs {
		svcs[i].PID = reg.PID
	}
	removed, err := s.deregister(q.sender.caller, svcs, "")
	if err != nil {
		return err
	}
	s.writeServices(q, removed, http.StatusOK)
	return nil
}

// serveDeregisterName removes the caller's services of the name.
func (s *Server) serveDeregisterName(q *request) error {
	removed, err := s.deregister(q.sender.caller, nil, q.name)
	if err != nil {
		return err
	}
	s.writeServices(q, removed, http.StatusOK)
	return nil
}

// writeServices answers a change with the services it touched, in the
// listing's format.
func (s *Server) writeServices(q *request, svcs []registry.Service, status int) {
	ins := make([]Instance, 0, len(svcs))
	for _, sv := range svcs {
		ins = append(ins, serviceInstance(sv))
	}
	s.write(q, s.viewFor(q, ins), status)
}
