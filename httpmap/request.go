package httpmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"strconv"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// Limits on a registration request. A process may hold at most the
// registry's cap anyway; these only keep a hostile request cheap.
const (
	maxBodyBytes       = 64 << 10
	maxServicesPerCall = 256
)

// ErrBadRequest reports a registration request that cannot be parsed.
var ErrBadRequest = errors.New("bad registration request")

// A RequestError says what was wrong with a registration request.
type RequestError struct {
	Detail string
}

func (e *RequestError) Error() string { return ErrBadRequest.Error() + ": " + e.Detail }

func (e *RequestError) Unwrap() error { return ErrBadRequest }

// A Registration is the body of POST and DELETE /portmap: the services and,
// for a supervisor registering for its child, the process they live with.
type Registration struct {
	// PID is the process the services live with; 0 means the caller.
	PID int32 `json:"pid,omitempty"`
	// StartTime, when non-zero, must equal the process's start time, to be
	// sure of registering for the process one meant.
	StartTime uint64        `json:"start_time,omitempty"`
	Services  []ServiceSpec `json:"services"`
}

// A ServiceSpec is one service of a Registration.
type ServiceSpec struct {
	Service string `json:"service"`
	// Port is a decimal TCP or UDP port or an absolute AF_UNIX path. In
	// JSON it may also be a number.
	Port Port `json:"port"`
	// Protocol is tcp, udp or unix; empty means tcp for a port and unix for
	// a path.
	Protocol  string `json:"protocol,omitempty"`
	Exclusive bool   `json:"exclusive,omitempty"`
	Public    bool   `json:"public,omitempty"`
	// Checks are what the daemon verifies of the service (checks.go).
	Checks *CheckSpec `json:"checks,omitempty"`
	// TCPMux makes the service reachable through portmapd's TCPMUX
	// listener: a TCP port is spliced to, a unix path is a hand-off
	// socket (see Client.Listen). MuxHelp, which needs it, lists the
	// name in the listener's HELP.
	TCPMux  bool `json:"tcpmux,omitempty"`
	MuxHelp bool `json:"muxhelp,omitempty"`
}

// Port is a port number or a path; JSON may give it as a number or a
// string.
type Port string

// UnmarshalJSON accepts a JSON number or string.
func (p *Port) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*p = Port(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*p = Port(n.String())
	return nil
}

// toService converts s for the registry, the name to its ASCII form, and
// checks the port's form; the registry checks the rest.
func (s ServiceSpec) toService() (registry.Service, error) {
	name, err := asciiName(s.Service)
	if err != nil {
		return registry.Service{}, err
	}
	out := registry.Service{Name: name, Network: netid.ID(s.Protocol).Lower()}
	if s.Exclusive {
		out.Flags |= registry.Exclusive
	}
	if s.Public {
		out.Flags |= registry.Public
	}
	if s.MuxHelp && !s.TCPMux {
		return out, &RequestError{fmt.Sprintf("service %q: muxhelp lists a name in TCPMUX's HELP, so it needs tcpmux", s.Service)}
	}
	if s.TCPMux {
		out.Flags |= registry.TCPMux
	}
	if s.MuxHelp {
		out.Flags |= registry.MuxHelp
	}
	if out.Checks, err = s.Checks.checks(); err != nil {
		return out, err
	}
	port := string(s.Port)
	if registry.IsUnixPath(port) {
		if out.Network == "" {
			out.Network = netid.Unix
		}
		out.Path = port
		return out, nil
	}
	if out.Network == "" {
		out.Network = netid.TCP
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return out, &RequestError{fmt.Sprintf("service %q: port %q is neither a port from 1 to 65535 nor an absolute path or @abstract name", s.Service, port)}
	}
	out.Port = uint16(n)
	return out, nil
}

// services converts every spec.
func (r *Registration) services() ([]registry.Service, error) {
	out := make([]registry.Service, 0, len(r.Services))
	for _, s := range r.Services {
		svc, err := s.toService()
		if err != nil {
			return nil, err
		}
		out = append(out, svc)
	}
	return out, nil
}

// isRegistration tells a registering POST from httportmap's listing POST,
// which carries only service=, user= and pid= filters in a form: a
// registration is JSON, or a form with port=.
func isRegistration(contentType string, form url.Values) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == TypeJSON || form.Has("port")
}

// ParseRegistration decodes a registration from a request body of the
// given content type: JSON (a Registration), or an HTML form with
// repeatable service= and port= in pairs, optional protocol= (one for all,
// or one per pair), and exclusive=, public=, tcpmux=, muxhelp=, pid=,
// start_time= and the checks (ttl=, tcp=, http=, rpc=, interval=,
// timeout=, deregister_after=; see CheckSpec) for the whole batch. Body
// must already be bounded by the caller.
func ParseRegistration(contentType string, body []byte) (*Registration, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil && contentType != "" {
		return nil, &RequestError{"bad Content-Type"}
	}
	switch mt {
	case TypeJSON:
		return parseJSONRegistration(body)
	case "", "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, &RequestError{"bad form: " + err.Error()}
		}
		return ParseRegistrationForm(form)
	}
	return nil, &RequestError{fmt.Sprintf("Content-Type %q is neither %s nor a form", mt, TypeJSON)}
}

func parseJSONRegistration(body []byte) (*Registration, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var reg Registration
	if err := dec.Decode(&reg); err != nil {
		return nil, &RequestError{"bad JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &RequestError{"trailing data after the JSON object"}
	}
	return &reg, checkCount(&reg)
}

func checkCount(reg *Registration) error {
	switch {
	case len(reg.Services) == 0:
		return &RequestError{"no services"}
	case len(reg.Services) > maxServicesPerCall:
		return &RequestError{fmt.Sprintf("more than %d services", maxServicesPerCall)}
	case reg.PID < 0:
		return &RequestError{"negative pid"}
	}
	return nil
}

// formFlag reads a boolean field of a form: absent is false, present
// without a value true.
func formFlag(form url.Values, k string) (bool, error) {
	if !form.Has(k) {
		return false, nil
	}
	v := form.Get(k)
	if v == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &RequestError{fmt.Sprintf("%s=%q is not a boolean", k, v)}
	}
	return b, nil
}

// ParseRegistrationForm decodes a registration from form values, as
// ParseRegistration describes; DELETE takes them from the query string.
func ParseRegistrationForm(form url.Values) (*Registration, error) {
	names, ports, protos := form["service"], form["port"], form["protocol"]
	if len(names) != len(ports) {
		return nil, &RequestError{fmt.Sprintf("%d service= but %d port=: they go in pairs", len(names), len(ports))}
	}
	if len(protos) > 1 && len(protos) != len(names) {
		return nil, &RequestError{"protocol= is given once for all or once per service"}
	}
	if len(names) > maxServicesPerCall {
		return nil, &RequestError{fmt.Sprintf("more than %d services", maxServicesPerCall)}
	}
	// The flags and the checks hold for every service of the call; the
	// first malformed one, in this order, is reported.
	var shared ServiceSpec
	var err error
	for _, f := range []struct {
		key string
		v   *bool
	}{{"exclusive", &shared.Exclusive}, {"public", &shared.Public}, {"tcpmux", &shared.TCPMux}, {"muxhelp", &shared.MuxHelp}} {
		if *f.v, err = formFlag(form, f.key); err != nil {
			return nil, err
		}
	}
	if shared.Checks, err = checkSpecFromForm(form); err != nil {
		return nil, err
	}
	reg := &Registration{Services: make([]ServiceSpec, len(names))}
	if v := form.Get("pid"); v != "" {
		pid, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil, &RequestError{fmt.Sprintf("pid=%q is not a process id", v)}
		}
		reg.PID = int32(pid)
	}
	if v := form.Get("start_time"); v != "" {
		st, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, &RequestError{fmt.Sprintf("start_time=%q is not a number", v)}
		}
		reg.StartTime = st
	}
	for i := range names {
		s := shared
		s.Service, s.Port = names[i], Port(ports[i])
		switch len(protos) {
		case 1:
			s.Protocol = protos[0]
		case len(names):
			s.Protocol = protos[i]
		}
		reg.Services[i] = s
	}
	return reg, checkCount(reg)
}
