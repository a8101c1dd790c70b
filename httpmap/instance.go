package httpmap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portmapd/portmapd/internal/rpcent"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// An Instance is one row of the listing: a service name and where it
// listens. It is the JSON form; CSV and XML show httportmap's five columns
// of it.
type Instance struct {
	// Service is the name as registered, or N.oncrpc.alt for an RPC
	// program.
	Service string `json:"service"`
	// UID is the owner's uid; nil when unknown (an RPC registration whose
	// owner rpcbind recorded as "unknown").
	UID      *uint32 `json:"uid"`
	UserName string  `json:"user_name,omitempty"`
	GID      *uint32 `json:"gid,omitempty"`
	// PID is the registering process, 0 when unknown.
	PID       int32  `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"`
	// Prog is the executable, shown only for public registrations.
	Prog string `json:"prog"`
	// Port is a decimal port or, for Protocol "unix", an absolute path.
	Port string `json:"port"`
	// Protocol is tcp, udp or unix, or the netid of an RPC registration
	// on another transport.
	Protocol  netid.ID  `json:"protocol"`
	Exclusive bool      `json:"exclusive,omitempty"`
	Public    bool      `json:"public,omitempty"`
	Since     time.Time `json:"registered"`
	// RPC describes the program for names under oncrpc.alt.
	RPC *RPCInfo `json:"rpc,omitempty"`
	// Health is passing, warning or critical, as the registration's
	// checks last found it (passing without checks), and HealthOutput
	// says why. Checks lists a named registration's checks as its
	// registration spelled them.
	Health       string `json:"health"`
	HealthOutput string `json:"health_output,omitempty"`
	Checks       string `json:"checks,omitempty"`
	// TCPMux and MuxHelp are the registration's TCPMUX flags.
	TCPMux  bool `json:"tcpmux,omitempty"`
	MuxHelp bool `json:"muxhelp,omitempty"`
}

// RPCInfo is the RPC side of an instance under oncrpc.alt.
type RPCInfo struct {
	Program uint32 `json:"program"`
	// Name is the program's name in /etc/rpc, if any.
	Name    string   `json:"name,omitempty"`
	Version uint32   `json:"version"`
	Netid   netid.ID `json:"netid"`
	// Address is the universal address as registered.
	Address string `json:"address"`
	// Owner is rpcbind's owner string: "superuser", a uid or "unknown".
	Owner string `json:"owner"`
}

// User returns the uid as the CSV and XML show it, empty when unknown.
func (in Instance) User() string {
	if in.UID == nil {
		return ""
	}
	return strconv.FormatUint(uint64(*in.UID), 10)
}

// PIDString returns the pid as the CSV and XML show it, empty when unknown.
func (in Instance) PIDString() string {
	if in.PID == 0 {
		return ""
	}
	return strconv.Itoa(int(in.PID))
}

func ptr(v uint32) *uint32 { return &v }

// serviceInstance presents a named registration.
func serviceInstance(s registry.Service) Instance {
	in := Instance{
		Service:   s.Name,
		UID:       ptr(s.UID),
		GID:       ptr(s.GID),
		PID:       s.PID,
		StartTime: s.Start,
		Port:      s.Endpoint(),
		Protocol:  s.Network,
		Exclusive: s.Flags&registry.Exclusive != 0,
		Public:    s.Flags&registry.Public != 0,
		Since:     s.Registered,
		Checks:    s.Checks.String(),
		TCPMux:    s.Flags&registry.TCPMux != 0,
		MuxHelp:   s.Flags&registry.MuxHelp != 0,
	}
	in.setHealth(s.Health)
	if in.Public {
		in.Prog = s.Exe
	}
	return in
}

func (in *Instance) setHealth(h registry.Health) {
	in.Health, in.HealthOutput = h.Status.String(), h.Output
}

// rpcInstances presents an RPC entry under its number and, when /etc/rpc
// names the program, under its name too.
func rpcInstances(e registry.Entry, names *rpcent.Names) []Instance {
	info := &RPCInfo{Program: e.Prog, Name: names.Name(e.Prog), Version: e.Vers, Netid: e.Netid, Address: e.Addr, Owner: e.Owner}
	in := Instance{
		Service: strconv.FormatUint(uint64(e.Prog), 10) + "." + registry.ReservedZone,
		PID:     e.PID,
		Since:   e.Registered,
		RPC:     info,
	}
	in.setHealth(e.Health)
	switch e.Owner {
	case registry.OwnerSuperuser:
		in.UID = ptr(0)
	case registry.OwnerUnknown, "":
	default:
		if uid, err := strconv.ParseUint(e.Owner, 10, 32); err == nil {
			in.UID = ptr(uint32(uid))
		}
	}
	id := e.Netid.Lower()
	switch {
	case id.IsIP():
		nc, _ := netid.Lookup(id)
		in.Protocol = netid.ID(nc.Proto)
		if port, ok := netid.UaddrPort(e.Addr); ok {
			in.Port = strconv.Itoa(int(port))
		}
	case id.IsLoopback():
		in.Protocol = netid.Unix
		in.Port = e.Addr
	default:
		in.Protocol = id
		in.Port = e.Addr
	}
	out := []Instance{in}
	if info.Name != "" {
		named := in
		named.Service = info.Name + "." + registry.ReservedZone
		out = append(out, named)
	}
	return out
}

// A filter selects instances as httportmap's query does: each key may be
// repeated and matches any of its values; all keys given must match.
type filter struct {
	services []string // lower case, ASCII form
	users    []string // decimal uids or user names
	uids     []uint32
	pids     []int32
	progs    []string
	// passing keeps only the instances whose checks pass.
	passing bool
}

// FilterError reports a filter value that cannot match anything by its
// form, such as a pid that is not a number.
type FilterError struct {
	Key, Value string
}

// errBadFilter is what every *FilterError is.
var errBadFilter = errors.New("bad filter")

func (e *FilterError) Error() string {
	return fmt.Sprintf("bad %s filter %q", e.Key, e.Value)
}

func (e *FilterError) Unwrap() error { return errBadFilter }

func parseFilter(v url.Values) (filter, error) {
	var f filter
	for _, s := range v["service"] {
		name, err := asciiName(s)
		if err != nil {
			return f, &FilterError{"service", s}
		}
		f.services = append(f.services, strings.ToLower(name))
	}
	f.users = v["user"]
	for _, s := range v["uid"] {
		uid, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return f, &FilterError{"uid", s}
		}
		f.uids = append(f.uids, uint32(uid))
	}
	for _, s := range v["pid"] {
		pid, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return f, &FilterError{"pid", s}
		}
		f.pids = append(f.pids, int32(pid))
	}
	f.progs = v["prog"]
	if v.Has("passing") {
		p := v.Get("passing")
		b, err := strconv.ParseBool(p)
		if p != "" && err != nil {
			return f, &FilterError{"passing", p}
		}
		f.passing = p == "" || b
	}
	return f, nil
}

// match reports whether in passes f. uid= matches the owner's uid and user=
// its uid or login name; an instance whose owner is unknown matches
// neither. passing (or passing=1) keeps only passing instances. prog= matches the executable path and, for RPC programs, the
// program's number or /etc/rpc name.
func (f filter) match(in Instance, users *userNames) bool {
	if len(f.services) > 0 && !slices.Contains(f.services, strings.ToLower(in.Service)) {
		return false
	}
	if f.passing && in.Health != registry.Passing.String() {
		return false
	}
	if len(f.users) > 0 && !slices.ContainsFunc(f.users, func(u string) bool {
		return u == in.User() && u != "" || in.UID != nil && u == users.name(*in.UID)
	}) {
		return false
	}
	if len(f.uids) > 0 && (in.UID == nil || !slices.Contains(f.uids, *in.UID)) {
		return false
	}
	if len(f.pids) > 0 && !slices.Contains(f.pids, in.PID) {
		return false
	}
	if len(f.progs) > 0 && !slices.ContainsFunc(f.progs, func(p string) bool {
		if p == in.Prog && p != "" {
			return true
		}
		return in.RPC != nil && (p == strconv.FormatUint(uint64(in.RPC.Program), 10) || p != "" && p == in.RPC.Name)
	}) {
		return false
	}
	return true
}

func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(&limitedReader{f, limit})
	return buf.Bytes(), err
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file larger than the limit")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.f.Read(p)
	l.n -= int64(k)
	return k, err
}

// userNames resolves uids to login names from a passwd file once per
// request.
type userNames struct {
	path   string
	loaded bool
	byUID  map[uint32]string
}

func (u *userNames) name(uid uint32) string {
	if u == nil || u.path == "" {
		return ""
	}
	if !u.loaded {
		u.loaded = true
		u.byUID = map[uint32]string{}
		data, err := readBounded(u.path, 1<<20)
		if err != nil && len(data) == 0 {
			return ""
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.SplitN(sc.Text(), ":", 4)
			if len(f) < 3 {
				continue
			}
			id, err := strconv.ParseUint(f[2], 10, 32)
			if err != nil {
				continue
			}
			if _, ok := u.byUID[uint32(id)]; !ok {
				u.byUID[uint32(id)] = f[0]
			}
		}
	}
	return u.byUID[uid]
}
