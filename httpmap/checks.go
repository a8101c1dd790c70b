package httpmap

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/health"
)

// A CheckSpec is a registration's checks as a request spells them, in
// JSON ("checks": {...}) or as form fields of the same names. Durations
// are Go durations (30s, 5m) or seconds.
type CheckSpec struct {
	// TTL: the service refreshes within it (PUT on its registration, or
	// Client.KeepAlive), or it is critical.
	TTL string `json:"ttl,omitempty"`
	// TCP connects to the registered port or path.
	TCP bool `json:"tcp,omitempty"`
	// HTTP is a path to GET there.
	HTTP string `json:"http,omitempty"`
	// RPC is PROG or PROG/VERS, a program to send a NULL call there.
	RPC string `json:"rpc,omitempty"`
	// Interval and Timeout of the TCP, HTTP and RPC checks.
	Interval string `json:"interval,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	// DeregisterAfter removes a registration critical for that long.
	DeregisterAfter string `json:"deregister_after,omitempty"`
}

// checks converts c for the registry, which checks the values' bounds.
func (c *CheckSpec) checks() (registry.Checks, error) {
	var out registry.Checks
	if c == nil {
		return out, nil
	}
	for _, d := range []struct {
		name, v string
		to      *time.Duration
	}{
		{"ttl", c.TTL, &out.TTL}, {"interval", c.Interval, &out.Interval},
		{"timeout", c.Timeout, &out.Timeout}, {"deregister_after", c.DeregisterAfter, &out.DeregisterAfter},
	} {
		if d.v == "" {
			continue
		}
		v, err := parseDuration(d.v)
		if err != nil {
			return out, &RequestError{fmt.Sprintf("%s=%q is not a duration", d.name, d.v)}
		}
		*d.to = v
	}
	out.TCP, out.HTTP = c.TCP, c.HTTP
	if c.RPC != "" {
		prog, vers, hasVers := strings.Cut(c.RPC, "/")
		p, err := strconv.ParseUint(prog, 10, 32)
		var v uint64
		if err == nil && hasVers {
			v, err = strconv.ParseUint(vers, 10, 32)
		}
		if err != nil {
			return out, &RequestError{fmt.Sprintf("rpc=%q is not PROG or PROG/VERS", c.RPC)}
		}
		out.RPC, out.RPCProg, out.RPCVers = true, uint32(p), uint32(v)
	}
	return out, nil
}

// parseDuration reads a Go duration, or a whole number of seconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// checkFields are the form fields of a CheckSpec.
var checkFields = [...]string{"ttl", "tcp", "http", "rpc", "interval", "timeout", "deregister_after"}

// checkSpecFromForm reads a CheckSpec from a registration's form; nil
// when it names no check.
func checkSpecFromForm(form url.Values) (*CheckSpec, error) {
	given := false
	for _, k := range checkFields {
		given = given || form.Has(k)
	}
	if !given {
		return nil, nil
	}
	tcp, err := formFlag(form, "tcp")
	if err != nil {
		return nil, err
	}
	return &CheckSpec{
		TTL: form.Get("ttl"), TCP: tcp, HTTP: form.Get("http"), RPC: form.Get("rpc"),
		Interval: form.Get("interval"), Timeout: form.Get("timeout"), DeregisterAfter: form.Get("deregister_after"),
	}, nil
}

// maxNoteBytes bounds the note a refresh reports, which every listing
// shows.
const maxNoteBytes = 256

// serveRefresh refreshes the TTL of the caller's registrations of a name
// (PUT /portmap/NAME), with status= passing, warning or critical (passing
// when absent) and an optional note=, from the query or a form body.
func (s *Server) serveRefresh(q *request) error {
	if q.sender.caller.Transport != registry.Local || q.sender.caller.Cred == nil {
		return &localOnlyError{s.cfg.SocketPath}
	}
	if s.cfg.Checks == nil {
		return errNoChecks
	}
	body, err := readBody(q)
	if err != nil {
		return err
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return &RequestError{"bad form: " + err.Error()}
	}
	for k, vs := range q.r.URL.Query() {
		form[k] = append(form[k], vs...)
	}
	status := registry.Passing
	if v := form.Get("status"); v != "" {
		if status, err = registry.ParseStatus(v); err != nil {
			return &RequestError{err.Error()}
		}
	}
	note := form.Get("note")
	if len(note) > maxNoteBytes || strings.ContainsFunc(note, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &RequestError{fmt.Sprintf("note= is longer than %d bytes or holds a control character", maxNoteBytes)}
	}
	refreshed, err := s.cfg.Checks.Refresh(q.sender.caller, q.name, status, note)
	if err != nil {
		return err
	}
	s.writeServices(q, refreshed, 200)
	return nil
}

// errNoChecks refuses a refresh where no health checker runs.
var errNoChecks = fmt.Errorf("%w: health checks are not run here", health.ErrNoTTL)
