package registry

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portmapd/portmapd/netid"
)

// DefaultMaxNamedPerProcess is the number of named services one process may
// hold when Options.MaxNamedPerProcess is zero. httportmap allows 10; a
// process serving several names on both TCP and a local socket needs more.
const DefaultMaxNamedPerProcess = 64

// ReservedZone is the namespace under which every RPC program appears by
// number and by name. It is below .alt, the special-use TLD for names
// outside the DNS (RFC 9476), so it can never clash with a real domain, and
// nobody may register a name under it.
const ReservedZone = "oncrpc.alt"

// maxNameLen is the longest service name, the longest DNS name in its
// dotted text form (RFC 1035 §2.3.4).
const maxNameLen = 253

// Errors of named registration. They are wrapped in a *NamedError that
// tells which service and why. Like every error of the registry's rules,
// their text is the reason alone, with no package name before it, so that
// a face can show it to whoever asked as it is.
var (
	ErrBadName      = errors.New("bad service name")
	ErrReservedName = errors.New("name is in the reserved namespace " + ReservedZone)
	ErrBadEndpoint  = errors.New("bad endpoint")
	ErrExclusive    = errors.New("exclusive conflict")
	ErrCapReached   = errors.New("registration cap reached") // of a process's services or a uid's processes
	ErrNotYours     = errors.New("process belongs to another user")
	ErrNotFound     = errors.New("no such registration")
	ErrBadCheck     = errors.New("bad check")
)

// NamedFlags qualify a named registration.
type NamedFlags uint8

// Flags of a named registration.
const (
	// Exclusive lets only one process of a uid hold the name: httportmap's
	// pm_exclusive. Processes of other uids hold the name separately.
	Exclusive NamedFlags = 1 << iota
	// Public advertises the registering process's executable path.
	Public
	// TCPMux makes the service reachable by its name through the TCPMUX
	// listener (RFC 1078; package tcpmux): a TCP port is spliced to, an
	// AF_UNIX socket is a hand-off socket that is passed each connection.
	TCPMux
	// MuxHelp lists the name in the TCPMUX listener's HELP (xinetd's
	// MUXHELP); a name is never listed without it.
	MuxHelp
)

// String lists the flags as httportmap's letters, X for exclusive and P for
// public, then M for tcpmux and H for muxhelp, so that logs and the HTML
// page stay compact.
func (f NamedFlags) String() string {
	var b strings.Builder
	if f&Exclusive != 0 {
		b.WriteByte('X')
	}
	if f&Public != 0 {
		b.WriteByte('P')
	}
	if f&TCPMux != 0 {
		b.WriteByte('M')
	}
	if f&MuxHelp != 0 {
		b.WriteByte('H')
	}
	return b.String()
}

// A Process identifies the process a named registration lives with. The
// start time (clock ticks since boot, /proc/PID/stat field 22) and the
// executable tell a process from a later one that reuses its pid.
type Process struct {
	PID      int32
	UID, GID uint32
	Start    uint64
	Exe      string
}

// same reports whether p and q are the same process incarnation.
func (p Process) same(q Process) bool {
	return p.PID == q.PID && p.Start == q.Start
}

// A Service is one named registration: a name, where the service listens,
// and the process that registered it.
type Service struct {
	// Name as registered; matched case-insensitively.
	Name string
	// Network is netid.TCP, netid.UDP or netid.Unix.
	Network netid.ID
	// Port is the TCP or UDP port; zero for netid.Unix.
	Port uint16
	// Path is the absolute AF_UNIX path, or an @ and an abstract name,
	// for netid.Unix.
	Path  string
	Flags NamedFlags
	// Process is whose life the registration shares; set by the registry
	// from the process it was given, never from the request.
	Process
	// Registered is when the service was added.
	Registered time.Time
	// Checks are what the daemon verifies of the service (checks.go),
	// and Health what they last found; the registry sets a new
	// registration's Health, registry/health the later ones.
	Checks Checks
	Health Health
}

// Endpoint returns where the service listens as httportmap's port column
// shows it: a decimal port or an absolute path.
func (s Service) Endpoint() string {
	if s.Network == netid.Unix {
		return s.Path
	}
	return strconv.FormatUint(uint64(s.Port), 10)
}

// A ServiceKey tells a named registration from every other, as a
// deregistration or a change of health names the service it acts on: its
// name in lower case, its endpoint, and its process's pid and start time.
type ServiceKey struct {
	name    string
	network netid.ID
	port    uint16
	path    string
	proc    procKey
}

// Key returns s's ServiceKey.
func (s Service) Key() ServiceKey {
	return ServiceKey{strings.ToLower(s.Name), s.Network, s.Port, s.Path, procKey{s.PID, s.Start}}
}

func (s Service) sameEndpoint(t Service) bool {
	return s.Network == t.Network && s.Port == t.Port && s.Path == t.Path
}

// A NamedError says which service of a request failed and why. Err is one of
// the Err* values above, or ErrNotLocal.
type NamedError struct {
	Name string
	Err  error
	// Holder is the uid and pid holding the name, for ErrExclusive.
	Holder *Process
	// Detail adds what was wrong, for ErrBadName and ErrBadEndpoint.
	Detail string
}

func (e *NamedError) Error() string {
	var b strings.Builder
	b.WriteString(e.Err.Error())
	if e.Name != "" {
		fmt.Fprintf(&b, ": %q", e.Name)
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Holder != nil {
		fmt.Fprintf(&b, " is held by uid %d (pid %d)", e.Holder.UID, e.Holder.PID)
	}
	return b.String()
}

func (e *NamedError) Unwrap() error { return e.Err }

// ValidateName checks a service name: domain style (app.example.com) or
// e-mail style (me@example.com). The domain follows RFC 1035's label rules,
// relaxed as RFC 1123 does to allow a leading digit (so 100003.oncrpc.alt is
// a name); the local part of an e-mail style name is an RFC 5322
// dot-atom of at most 64 characters. The whole is at most 253 characters.
// It does not check the reserved namespace; see IsReservedName.
func ValidateName(name string) error {
	bad := func(detail string) error {
		return &NamedError{Name: name, Err: ErrBadName, Detail: detail}
	}
	if name == "" {
		return bad("empty")
	}
	if len(name) > maxNameLen {
		return bad("longer than 253 characters")
	}
	domain := name
	if at := strings.IndexByte(name, '@'); at >= 0 {
		local := name[:at]
		domain = name[at+1:]
		if err := validateLocalPart(local); err != "" {
			return bad(err)
		}
	}
	if err := validateDomain(domain); err != "" {
		return bad(err)
	}
	return nil
}

func validateLocalPart(local string) string {
	switch {
	case local == "":
		return "empty local part before @"
	case len(local) > 64:
		return "local part longer than 64 characters"
	case local[0] == '.' || local[len(local)-1] == '.' || strings.Contains(local, ".."):
		return "misplaced dot in local part"
	}
	if c, bad := firstBadChar(local, func(c byte) bool { return isAtext(c) || c == '.' }); bad {
		return c + " not allowed in local part"
	}
	return ""
}

// firstBadChar describes the first character of s that ok refuses: the
// rune, quoted, as a person typed it ('é', not the byte 'Ã' that starts
// its UTF-8 form), or the byte when s is not UTF-8 there. Every character
// outside ASCII is refused, since ok sees only ASCII bytes.
func firstBadChar(s string, ok func(byte) bool) (string, bool) {
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			if !ok(s[i]) {
				return fmt.Sprintf("character %q", rune(s[i])), true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return fmt.Sprintf("byte %#02x (not UTF-8)", s[i]), true
		}
		return fmt.Sprintf("character %q", r), true
	}
	return "", false
}

func isAtext(c byte) bool {
	return isLetDig(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

func isLetDig(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func validateDomain(d string) string {
	if d == "" {
		return "empty domain"
	}
	for label := range strings.SplitSeq(d, ".") {
		switch {
		case label == "":
			return "empty label"
		case len(label) > 63:
			return "label longer than 63 characters"
		case label[0] == '-' || label[len(label)-1] == '-':
			return "label starts or ends with a hyphen"
		}
		if c, bad := firstBadChar(label, func(c byte) bool { return isLetDig(c) || c == '-' }); bad {
			return c + " not allowed in a domain label"
		}
	}
	return ""
}

// IsReservedName reports whether name is ReservedZone or below it, in any
// case.
func IsReservedName(name string) bool {
	n := lowerASCII(name)
	if at := strings.LastIndexByte(n, '@'); at >= 0 {
		n = n[at+1:]
	}
	return n == ReservedZone || strings.HasSuffix(n, "."+ReservedZone)
}

// lowerASCII returns a name in lower case without allocating when it
// already is.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// namedNode is a service with its place on the registration-ordered list.
type namedNode struct {
	Service
	key string // lower-case name
	// seq numbers the nodes in registration order, from 1, never
	// reused: a listing's place between its pages (NamedAfter).
	seq uint64
	link[namedNode]
}

func (n *namedNode) chainLink() *link[namedNode] { return &n.link }

type procKey struct {
	pid   int32
	start uint64
}

// namedTable holds the named services. It is guarded by Registry.mu so that
// a listing sees the RPC entries and the named services at one instant.
type namedTable struct {
	// order holds every service in registration order.
	order  chain[namedNode, *namedNode]
	byName map[string][]*namedNode
	byProc map[procKey][]*namedNode
	// procsByUID counts the processes in byProc of each uid.
	procsByUID map[uint32]int
	seq        uint64 // the last node's
}

func newNamedTable() namedTable {
	return namedTable{
		byName:     make(map[string][]*namedNode),
		byProc:     make(map[procKey][]*namedNode),
		procsByUID: make(map[uint32]int),
	}
}

// find returns the node holding s (same name, endpoint and process).
func (t *namedTable) find(s Service) *namedNode {
	for _, n := range t.byName[lowerASCII(s.Name)] {
		if n.sameEndpoint(s) && n.Process.same(s.Process) {
			return n
		}
	}
	return nil
}

func (r *Registry) maxNamed() int {
	if r.opts.MaxNamedPerProcess > 0 {
		return r.opts.MaxNamedPerProcess
	}
	return DefaultMaxNamedPerProcess
}

// mayRegisterFor checks that c may act for p: only local callers whose
// credentials the kernel gave (or the daemon itself), for a process of
// their own uid unless they are root. A loopback TCP caller is refused:
// anyone on the host could forge its origin with a proxy, and its uid is
// unknown.
func mayRegisterFor(c Caller, p Process) error {
	switch c.Transport {
	case Internal:
		return nil
	case Local:
		if c.Cred == nil {
			return ErrNotLocal
		}
		if c.Cred.UID != 0 && c.Cred.UID != p.UID {
			return &NamedError{Err: ErrNotYours, Detail: fmt.Sprintf("pid %d is uid %d, caller is uid %d", p.PID, p.UID, c.Cred.UID)}
		}
		return nil
	}
	return ErrNotLocal
}

// CheckService validates one requested service as RegisterNamed does:
// its name, the reserved namespace and its endpoint. A front end may call
// it to refuse a bad request before doing any work for it.
func CheckService(s Service) error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if IsReservedName(s.Name) {
		return &NamedError{Name: s.Name, Err: ErrReservedName}
	}
	badEndpoint := func(d string) error {
		return &NamedError{Name: s.Name, Err: ErrBadEndpoint, Detail: d}
	}
	switch s.Network {
	case netid.TCP, netid.UDP:
		if s.Port == 0 || s.Path != "" {
			return badEndpoint("a " + string(s.Network) + " service needs a port from 1 to 65535 and no path")
		}
	case netid.Unix:
		if s.Port != 0 || !IsUnixPath(s.Path) {
			return badEndpoint("a unix service needs an absolute path or an @abstract name, and no port")
		}
		if len(s.Path) > 107 {
			return badEndpoint("path longer than an AF_UNIX address holds")
		}
		for i := 0; i < len(s.Path); i++ {
			if s.Path[i] < 0x20 || s.Path[i] == 0x7f {
				return badEndpoint("control character in path")
			}
		}
	default:
		return badEndpoint(fmt.Sprintf("network %q is not tcp, udp or unix", s.Network))
	}
	if s.Flags&(TCPMux|MuxHelp) != 0 && s.Network == netid.UDP {
		return badEndpoint("TCPMUX reaches a tcp port or a unix hand-off socket, not a udp port")
	}
	return checkChecks(s)
}

// IsUnixPath reports whether p names an AF_UNIX socket as a named service
// gives it: an absolute path, or @ and a name in the abstract namespace.
func IsUnixPath(p string) bool {
	return strings.HasPrefix(p, "/") || len(p) > 1 && p[0] == '@'
}

// RegisterNamed registers svcs for process p on behalf of c, all or none.
// Each service's name is validated and must be outside ReservedZone. A name
// is held per uid: when p's uid already holds it through another process,
// and either that registration or the new one is Exclusive, the request
// fails with ErrExclusive naming the holder; the same process may add
// endpoints to its own exclusive name, so one batch can register several
// ports under it, as httportmap allows. A service the process already has
// (same name and endpoint) is not added twice. The process may hold at
// most Options.MaxNamedPerProcess services, and its uid, unless it is
// root, services in at most Options.MaxProcessesPerUID processes: each is
// watched until it exits. A refusal at either cap is counted and logged.
func (r *Registry) RegisterNamed(c Caller, p Process, svcs []Service) ([]Service, error) {
	if err := mayRegisterFor(c, p); err != nil {
		return nil, err
	}
	for _, s := range svcs {
		if err := CheckService(s); err != nil {
			return nil, err
		}
	}
	var added []Service
	var err error
	r.commit(func(cs *changeSet) {
		added, err = r.registerNamed(cs, p, svcs)
		return
	})
	return added, err
}

// registerNamed does RegisterNamed's work with r.mu held, adding the
// services it registers to cs, or its log line when a cap refuses them.
func (r *Registry) registerNamed(cs *changeSet, p Process, svcs []Service) ([]Service, error) {
	t := &r.named
	now := r.opts.Now()
	add := make([]Service, 0, len(svcs))
	for _, s := range svcs {
		k := lowerASCII(s.Name)
		dup := false
		for _, n := range t.byName[k] {
			if n.UID != p.UID {
				continue
			}
			if !n.Process.same(p) {
				if n.Flags&Exclusive != 0 || s.Flags&Exclusive != 0 {
					holder := n.Process
					return nil, &NamedError{Name: s.Name, Err: ErrExclusive, Holder: &holder}
				}
				continue
			}
			if n.sameEndpoint(s) {
				dup = true
			}
		}
		for _, prev := range add {
			if lowerASCII(prev.Name) == k && prev.sameEndpoint(s) {
				dup = true
			}
		}
		if dup {
			continue
		}
		s.Process = p
		s.Registered = now
		s.Health = initialHealth(s.Checks, now)
		add = append(add, s)
	}
	held := len(t.byProc[procKey{p.PID, p.Start}])
	var capErr error
	limit := LimitNamedPerProcess
	switch {
	case held+len(add) > r.maxNamed():
		capErr = &NamedError{Err: ErrCapReached, Detail: fmt.Sprintf("pid %d holds %d, asked for %d more, per-process cap is %d", p.PID, held, len(add), r.maxNamed())}
	case held == 0 && len(add) > 0 && p.UID != 0 && t.procsByUID[p.UID] >= r.maxProcesses():
		limit = LimitProcessesPerUID
		capErr = &NamedError{Err: ErrCapReached, Detail: fmt.Sprintf("uid %d has services in %d processes, per-uid cap is %d", p.UID, t.procsByUID[p.UID], r.maxProcesses())}
	}
	if capErr != nil {
		cs.logLater = r.refusedCap("named", limit, strconv.FormatUint(uint64(p.UID), 10), capErr)
		return nil, capErr
	}
	for _, s := range add {
		t.insert(s)
		cs.addService(OpRegister, s, "")
	}
	return add, nil
}

// removable returns which services c may remove: its own uid's, or
// everybody's for root and the daemon itself.
func removable(c Caller) (func(*namedNode) bool, error) {
	switch {
	case c.Transport == Internal:
		return func(*namedNode) bool { return true }, nil
	case c.Transport == Local && c.Cred != nil:
		uid := c.Cred.UID
		return func(n *namedNode) bool { return uid == 0 || n.UID == uid }, nil
	}
	return nil, ErrNotLocal
}

// DeregisterNamed removes svcs, all or none. Each is matched by name (in
// any case) and endpoint among the services of c's uid (any uid for root
// and Internal callers); when s.PID is non-zero only that process's
// services match. Every match is removed; a service with no match fails
// the request with ErrNotFound.
func (r *Registry) DeregisterNamed(c Caller, svcs []Service) ([]Service, error) {
	return r.deregister(c, func(mine func(*namedNode) bool) ([]*namedNode, error) {
		var victims []*namedNode
		seen := make(map[*namedNode]bool)
		for _, s := range svcs {
			found := false
			for _, n := range r.named.byName[lowerASCII(s.Name)] {
				if mine(n) && (s.PID == 0 || s.PID == n.PID) && n.sameEndpoint(s) {
					found = true
					if !seen[n] {
						seen[n] = true
						victims = append(victims, n)
					}
				}
			}
			if !found {
				return nil, &NamedError{Name: s.Name, Err: ErrNotFound, Detail: string(s.Network) + " " + s.Endpoint()}
			}
		}
		return victims, nil
	})
}

// DeregisterName removes every service named name (in any case) that c may
// remove: its own uid's, or any uid's for root. It reports ErrNotFound when
// there was none.
func (r *Registry) DeregisterName(c Caller, name string) ([]Service, error) {
	return r.deregister(c, func(mine func(*namedNode) bool) ([]*namedNode, error) {
		var victims []*namedNode
		for _, n := range r.named.byName[lowerASCII(name)] {
			if mine(n) {
				victims = append(victims, n)
			}
		}
		if len(victims) == 0 {
			return nil, &NamedError{Name: name, Err: ErrNotFound}
		}
		return victims, nil
	})
}

// deregister removes, on behalf of c, the services that pick chooses with
// r.mu held, given which of them c may remove; when pick fails, nothing is
// removed.
func (r *Registry) deregister(c Caller, pick func(mine func(*namedNode) bool) ([]*namedNode, error)) ([]Service, error) {
	mine, err := removable(c)
	if err != nil {
		return nil, err
	}
	var removed []Service
	r.commit(func(cs *changeSet) {
		var victims []*namedNode
		if victims, err = pick(mine); err == nil {
			removed = r.removeServices(cs, victims, "")
		}
		return
	})
	return removed, err
}

// DropProcess removes every service of the process with pid and start
// time, as when it has exited, and returns them.
func (r *Registry) DropProcess(pid int32, start uint64) []Service {
	var removed []Service
	r.commit(func(cs *changeSet) {
		// Latest first, and a copy: remove edits the index slice.
		victims := slices.Clone(r.named.byProc[procKey{pid, start}])
		slices.Reverse(victims)
		removed = r.removeServices(cs, victims, ReasonProcessExit)
		return
	})
	return removed
}

// removeServices removes nodes, adds their removal to cs and returns their
// services. A reason says the daemon removed them on its own, and keeps
// each as a recent event. r.mu must be held.
func (r *Registry) removeServices(cs *changeSet, nodes []*namedNode, reason string) []Service {
	out := make([]Service, 0, len(nodes))
	for _, n := range nodes {
		r.named.remove(n)
		out = append(out, n.Service)
		why := reason
		if why == "" {
			why = ReasonDeregistered
		}
		cs.addService(OpDeregister, n.Service, why)
		if reason != "" {
			r.addEvent(Event{Time: r.opts.Now(), Kind: "named", What: describeService(n.Service), Reason: reason})
		}
	}
	return out
}

// ProcessServices returns how many services the process with pid and start
// time holds.
func (r *Registry) ProcessServices(pid int32, start uint64) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.named.byProc[procKey{pid, start}])
}

// LookupNamed returns the services registered under name, in any case, in
// registration order.
func (r *Registry) LookupNamed(name string) []Service {
	r.mu.RLock()
	defer r.mu.RUnlock()
	nodes := r.named.byName[lowerASCII(name)]
	out := make([]Service, len(nodes))
	for i, n := range nodes {
		out[i] = n.Service
	}
	return out
}

// NamedLen returns the number of named services.
func (r *Registry) NamedLen() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.named.order.n
}

// NamedServices returns every named service in registration order.
func (r *Registry) NamedServices() []Service {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.named.services()
}

// Snapshot returns the RPC entries in DUMP order and the named services in
// registration order, as they were at one instant.
func (r *Registry) Snapshot() ([]Entry, []Service) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.entries(), r.named.services()
}

func (t *namedTable) services() []Service {
	out := make([]Service, 0, t.order.n)
	for n := t.order.head; n != nil; n = n.next {
		out = append(out, n.Service)
	}
	return out
}

func (t *namedTable) insert(s Service) {
	t.seq++
	n := &namedNode{Service: s, key: lowerASCII(s.Name), seq: t.seq}
	t.order.pushBack(n)
	t.byName[n.key] = append(t.byName[n.key], n)
	pk := procKey{s.PID, s.Start}
	if len(t.byProc[pk]) == 0 {
		t.procsByUID[s.UID]++
	}
	t.byProc[pk] = append(t.byProc[pk], n)
}

func (t *namedTable) remove(n *namedNode) {
	t.order.remove(n)
	dropFromIndex(t.byName, n.key, n)
	pk := procKey{n.PID, n.Start}
	dropFromIndex(t.byProc, pk, n)
	if len(t.byProc[pk]) == 0 {
		if t.procsByUID[n.UID]--; t.procsByUID[n.UID] <= 0 {
			delete(t.procsByUID, n.UID)
		}
	}
}

// dropFromIndex removes n from the slice that index holds under k, and
// the key when that leaves the slice empty.
func dropFromIndex[K, N comparable](index map[K][]N, k K, n N) {
	nodes := index[k]
	i := slices.Index(nodes, n)
	if i < 0 {
		return
	}
	nodes = slices.Delete(nodes, i, i+1)
	if len(nodes) == 0 {
		delete(index, k)
		return
	}
	index[k] = nodes
}
