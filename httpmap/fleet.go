package httpmap

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portmapd/portmapd/registry"
)

// The fleet scope: GET /portmap?scope=fleet and /portmap/NAME?scope=fleet
// answer from what every host of a fleet published (package fleet, which
// mirrors each host's registry into etcd), with the host of each
// instance. What a host publishes is what the rule for viewers on other
// hosts lets through (remoteView), less pids and process start times: a
// fleet listing is the same whichever host, local or not, is asked, and
// the asking host's own instances show as the others see them.

// Values of the scope= parameter.
const (
	scopeParam = "scope"
	ScopeLocal = "local"
	ScopeFleet = "fleet"
)

// Errors of the fleet scope.
var (
	// ErrNoFleet refuses scope=fleet on a daemon that publishes to no
	// fleet (started without --etcd).
	ErrNoFleet = errors.New("this portmapd belongs to no fleet (start it with --etcd ENDPOINTS)")
	// ErrFleetUnavailable reports that the fleet's store did not answer.
	ErrFleetUnavailable = errors.New("the fleet's store is unavailable")
)

// A FleetError says why the fleet's store did not answer.
type FleetError struct {
	Err error
}

func (e *FleetError) Error() string {
	return ErrFleetUnavailable.Error() + ": " + e.Err.Error()
}

func (e *FleetError) Unwrap() []error { return []error{ErrFleetUnavailable, e.Err} }

// A FleetInstance is an instance as a host of the fleet published it,
// with that host's name and the addresses it published.
type FleetInstance struct {
	Host      string   `json:"host"`
	Addresses []string `json:"addresses,omitempty"`
	Instance
}

// A FleetAnswer is what a Fleet found.
type FleetAnswer struct {
	Instances []FleetInstance
	// Truncated is set when there were more than the Fleet returns at
	// once.
	Truncated bool
}

// A Fleet answers lookups across the hosts of a fleet.
type Fleet interface {
	// Lookup returns the published instances of names, lower-case
	// ASCII names as the registry holds them (an RPC program as
	// PROG.oncrpc.alt, by number), or of every name when names is
	// empty, ordered by name, then host. An error of the store is a
	// *FleetError.
	Lookup(ctx context.Context, names []string) (FleetAnswer, error)
}

// A FleetListing is the JSON document of scope=fleet.
type FleetListing struct {
	Scope string `json:"scope"`
	// Host is the host that answered.
	Host      string          `json:"host,omitempty"`
	Generated time.Time       `json:"generated"`
	Instances []FleetInstance `json:"instances"`
	Truncated bool            `json:"truncated,omitempty"`
}

// ExternalService returns a named registration as other hosts may see
// it, for publishing: ok is false for one they may not see at all (an
// AF_UNIX socket), and what they see has no pid, gid or process start
// time.
func ExternalService(s registry.Service) (in Instance, ok bool) {
	return external(serviceInstance(s))
}

// ExternalEntry is ExternalService for an RPC registration, under its
// program's number (PROG.oncrpc.alt): a fleet's hosts may name programs
// differently in their /etc/rpc.
func ExternalEntry(e registry.Entry) (in Instance, ok bool) {
	return external(rpcInstances(e, nil)[0])
}

func external(in Instance) (Instance, bool) {
	if !reachable(in) {
		return Instance{}, false
	}
	in.PID, in.StartTime, in.GID = 0, 0, nil
	return in, true
}

// fleetName returns the name a fleet lookup of name asks for, as hosts
// publish it: the name in lower case or, for an RPC program named in
// this host's /etc/rpc (NAME.oncrpc.alt), its number's. ok is false for
// a program name /etc/rpc does not know.
func (s *Server) fleetName(name string) (string, bool) {
	name = strings.ToLower(name)
	prog, ok := strings.CutSuffix(name, "."+registry.ReservedZone)
	if !ok {
		return name, true
	}
	if _, err := strconv.ParseUint(prog, 10, 32); err == nil {
		return name, true
	}
	n, found := s.names.Number(prog)
	if !found {
		return "", false
	}
	return strconv.FormatUint(uint64(n), 10) + "." + registry.ReservedZone, true
}

// fleetScope reports whether the query asks for the fleet scope, or
// what is wrong with its scope=.
func fleetScope(v url.Values) (bool, error) {
	switch sc := v.Get(scopeParam); sc {
	case "", ScopeLocal:
		return false, nil
	case ScopeFleet:
		if v.Has("index") {
			return false, &ParamError{"index=", v.Get("index"), "taken with scope=fleet: blocking queries watch this host only"}
		}
		return true, nil
	default:
		return false, &ParamError{"scope=", sc, `"local" or "fleet"`}
	}
}

// fleetTimeout bounds a fleet lookup, so that a store that does not
// answer is said in time.
const fleetTimeout = 10 * time.Second

// serveFleet answers a listing or lookup with scope=fleet: the
// instances of the query's name (or service= names, or every name) that
// the fleet's hosts published, through the listing's filters, and
// host= (repeatable) for hosts.
func (s *Server) serveFleet(q *request, filters url.Values) error {
	if s.cfg.Fleet == nil {
		return ErrNoFleet
	}
	f, err := parseFilter(filters)
	if err != nil {
		return err
	}
	s.names.Refresh()
	asked := f.services
	if q.name != "" {
		asked = []string{strings.ToLower(q.name)}
	}
	// The name asked for, by the name it is published under.
	var names []string
	shown := map[string]string{}
	for _, a := range asked {
		if n, ok := s.fleetName(a); ok {
			names = append(names, n)
			shown[n] = a
		}
	}
	var ans FleetAnswer
	if len(asked) == 0 || len(names) > 0 {
		ctx, cancel := context.WithTimeout(q.r.Context(), fleetTimeout)
		ans, err = s.cfg.Fleet.Lookup(ctx, names)
		cancel()
		if err != nil {
			return err
		}
	}
	hosts := filters["host"]
	out := ans.Instances[:0]
	for _, in := range ans.Instances {
		if in.RPC != nil {
			in.RPC.Name = s.names.Name(in.RPC.Program)
			if a := shown[strings.ToLower(in.Service)]; a != "" {
				in.Service = a
			}
		}
		// The services filter was the lookup; the others apply here.
		g := f
		g.services = nil
		if g.match(in.Instance, nil) && (len(hosts) == 0 || slices.Contains(hosts, in.Host)) {
			out = append(out, in)
		}
	}
	ans.Instances = out
	if q.name != "" && len(out) == 0 {
		return &registry.NamedError{Name: q.name, Err: registry.ErrNotFound}
	}
	return s.writeFleet(q, ans)
}

// writeFleet answers q with a fleet's instances in q's type: the
// listing's CSV and XML with the host after the health, FleetListing's
// JSON, or a page. It writes nothing when it fails.
func (s *Server) writeFleet(q *request, ans FleetAnswer) error {
	var b bytes.Buffer
	h := q.w.Header()
	switch q.typ {
	case TypeCSV:
		download := csvForBrowser(q.r)
		b.WriteString("service,user,pid,prog,port,health,host\n")
		for _, in := range ans.Instances {
			for i, f := range [...]string{in.Service, in.User(), "", in.Prog, in.Port, in.Health, in.Host} {
				if i > 0 {
					b.WriteByte(',')
				}
				csvField(&b, f, download)
			}
			b.WriteByte('\n')
		}
		if download {
			h.Set("Content-Disposition", `attachment; filename="portmap-fleet.csv"`)
		}
	case TypeXML, TypeTextXML:
		b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n<portmap>")
		for _, in := range ans.Instances {
			b.WriteString("<instance>")
			for _, f := range [...]struct{ tag, v string }{
				{"service", in.Service}, {"user", in.User()}, {"pid", ""}, {"prog", in.Prog}, {"port", in.Port}, {"health", in.Health}, {"host", in.Host},
			} {
				b.WriteString("<" + f.tag + ">")
				xml.EscapeText(&b, []byte(f.v))
				b.WriteString("</" + f.tag + ">")
			}
			b.WriteString("</instance>")
		}
		b.WriteString("</portmap>\n")
	case TypeJSON:
		l := FleetListing{Scope: ScopeFleet, Host: s.cfg.Hostname, Generated: s.cfg.Now().UTC(), Instances: ans.Instances, Truncated: ans.Truncated}
		if l.Instances == nil {
			l.Instances = []FleetInstance{}
		}
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(l); err != nil {
			return err
		}
	case TypeHTML:
		if err := s.page.ExecuteTemplate(&b, "fleet.html", s.fleetPage(q, ans)); err != nil {
			s.log.Error("rendering fleet page", "err", err)
			return err
		}
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
	}
	if ans.Truncated {
		h.Set(TruncatedHeader, "true")
	}
	h.Set("Content-Type", q.typ+"; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Vary", "Accept")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	q.w.WriteHeader(http.StatusOK)
	q.w.Write(b.Bytes())
	return nil
}

// TruncatedHeader is set on a fleet listing that holds only the first of
// more instances than the daemon returns at once.
const TruncatedHeader = "X-Portmap-Truncated"

// fleetPage is what the fleet page shows.
type fleetPage struct {
	Host, Name string
	Generated  time.Time
	Instances  []FleetInstance
	Truncated  bool
	// LocalURL is the same listing on this host alone.
	LocalURL string
}

func (s *Server) fleetPage(q *request, ans FleetAnswer) fleetPage {
	v := q.r.URL.Query()
	v.Del(scopeParam)
	v.Del("format")
	local := q.r.URL.Path
	if e := v.Encode(); e != "" {
		local += "?" + e
	}
	host := s.cfg.Hostname
	if host == "" {
		host = hostOf(q.r.Host)
	}
	return fleetPage{Host: host, Name: q.name, Generated: s.cfg.Now(), Instances: ans.Instances, Truncated: ans.Truncated, LocalURL: local}
}

// LookupFleet returns the instances of name on every host of the
// fleet the daemon publishes to (of the owner, after WithOwner; passing
// only, after WithPassing); an *Error with status 404 when there are
// none, 501 when the daemon belongs to no fleet, 503 when the fleet's
// store does not answer.
func (c *Client) LookupFleet(ctx context.Context, name string) ([]FleetInstance, error) {
	q := c.ownerQuery()
	if q == "" {
		q = "?"
	} else {
		q += "&"
	}
	var l FleetListing
	if err := c.getJSON(ctx, listPath+"/"+url.PathEscape(name)+q+scopeParam+"="+ScopeFleet, &l); err != nil {
		return nil, err
	}
	return l.Instances, nil
}
