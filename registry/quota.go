package registry

import (
	"errors"
	"fmt"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netlimit"
)

// Default caps on what one user may hold, used when the Options field is
// zero. A real host has tens of RPC registrations in all: an NFS server's
// nfsd, mountd, nlockmgr and statd make about 50, each a program version
// on up to four netids, and most of them are root's. A user's own TI-RPC
// service registers each version on the four visible netids. So 1000
// entries is some 250 program versions for one user, far above any real
// host, and still bounds what a user can make the daemon hold: with
// addresses bounded by checkAddr an entry carries at most 113 bytes of
// netid and address, so the byte cap only binds when the entry cap is
// raised.
const (
	DefaultMaxRPCPerUID      = 1000
	DefaultMaxRPCBytesPerUID = 1 << 20
	// DefaultMaxProcessesPerUID caps the processes of one uid that hold
	// named services, each watched until it exits. A user runs a few
	// services; 256 leaves room for worker pools that register each
	// worker.
	DefaultMaxProcessesPerUID = 256
)

// quotaLogEvery is how often a refusal is logged for one user: the first
// refusal at once, then one line per interval saying how many were not
// logged.
const quotaLogEvery = time.Minute

// ErrRefused is matched by every error with which Set refuses an entry,
// for its form or at a cap: rpcbind answers a refused SET with FALSE. The
// error's text says why.
var ErrRefused = errors.New("registration refused")

// errOverCap reports an owner already holding as many entries or bytes as
// it may, wrapped in a *refusedError.
var errOverCap = errors.New("the owner's registration cap is reached")

// errTableLimit reports an entry the table cannot hold: one whose netid,
// owner or network namespace would be one too many of its kind to tell
// apart (65,536), or whose address is 64 KiB long. No caller can make one:
// callers may only register the addresses netid.CheckUaddr accepts, owners
// are uids, and namespaces those of the host's processes.
var errTableLimit = errors.New("entry beyond the registry's table limits")

// A refusedError says why Set refused an entry: errOverCap, or the
// *netid.AddrError of an address no client can use. errors.Is matches both
// its reason and ErrRefused.
type refusedError struct {
	// Owner is who asked, as Caller.Owner says, for errOverCap.
	Owner  string
	Err    error
	Detail string
}

func (e *refusedError) Error() string {
	s := e.Err.Error()
	if e.Owner != "" {
		s += ": owner " + e.Owner
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func (e *refusedError) Unwrap() []error { return []error{ErrRefused, e.Err} }

// checkAddr refuses an address of a netid no portmapper client can create
// a transport for, or not of its netid's form, as netid.CheckUaddr says.
func checkAddr(id netid.ID, addr string) error {
	if err := netid.CheckUaddr(id, addr); err != nil {
		return &refusedError{Err: err}
	}
	return nil
}

// Refusals count the registrations refused because their owner had reached
// a cap, since the daemon started.
type Refusals struct {
	// RPC counts SETs refused at the per-uid entry or byte cap.
	RPC uint64
	// Named counts named registrations refused at the per-process or
	// per-uid process cap.
	Named uint64
}

// Refusals returns how many registrations the caps refused, by kind.
func (r *Registry) Refusals() Refusals {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.refused
}

// usage is what one owner's RPC entries hold.
type usage struct {
	entries, bytes int
}

// entryBytes is what an entry costs against its owner's byte cap: the
// strings its caller chose.
func entryBytes(e Entry) int { return len(e.Netid) + len(e.Addr) }

func (r *Registry) maxRPC() int {
	return orDefault(r.opts.MaxRPCPerUID, DefaultMaxRPCPerUID)
}

func (r *Registry) maxRPCBytes() int {
	return orDefault(r.opts.MaxRPCBytesPerUID, DefaultMaxRPCBytesPerUID)
}

func (r *Registry) maxProcesses() int {
	return orDefault(r.opts.MaxProcessesPerUID, DefaultMaxProcessesPerUID)
}

func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// account adds (sign 1) or takes away (sign -1) e from its owner's usage;
// r.mu must be held. An owner left with nothing is forgotten, and so is
// its log limiter once that has nothing left to say.
func (r *Registry) account(e Entry, sign int) {
	u := r.usage[e.Owner]
	u.entries += sign
	u.bytes += sign * entryBytes(e)
	if u.entries <= 0 {
		delete(r.usage, e.Owner)
		r.rpcLog.forget(e.Owner, r.opts.Now())
		return
	}
	r.usage[e.Owner] = u
}

// Caps, as an Observer's LimitHit names them.
const (
	LimitRPCPerUID       = "rpc_per_uid"
	LimitRPCBytesPerUID  = "rpc_bytes_per_uid"
	LimitNamedPerProcess = "named_per_process"
	LimitProcessesPerUID = "processes_per_uid"
)

// checkCap refuses e when its owner already holds the entry or byte cap,
// and says which (a Limit constant); r.mu must be held. The superuser is
// not capped: root's entries are the kernel's and the system services',
// and root could exhaust the host by other means anyway.
func (r *Registry) checkCap(e Entry) (string, error) {
	if e.Owner == OwnerSuperuser {
		return "", nil
	}
	u := r.usage[e.Owner]
	limit := LimitRPCPerUID
	switch {
	case u.entries+1 > r.maxRPC():
	case u.bytes+entryBytes(e) > r.maxRPCBytes():
		limit = LimitRPCBytesPerUID
	default:
		return "", nil
	}
	return limit, &refusedError{Owner: e.Owner, Err: errOverCap, Detail: fmt.Sprintf("holds %d entries of %d bytes, cap is %d entries or %d bytes", u.entries, u.bytes, r.maxRPC(), r.maxRPCBytes())}
}

// A rateLog says when a refusal for a key may be logged: the first at once,
// then at most one per interval, with the count of those not logged. Keys
// are forgotten when their user holds nothing any more and their interval
// is over with nothing held back (forgetting one sooner would let a user
// who empties and refills its quota be logged at every refusal), and
// beyond rateLogKeys the keys share one limit, so it stays small.
type rateLog struct {
	every time.Duration
	keys  *netlimit.KeyTable[rateLogState]
}

type rateLogState struct {
	next       time.Time
	suppressed uint64
}

// rateLogKeys bounds the keys a rateLog tells apart; past it, new keys
// share netlimit.OverflowKey's limit.
const rateLogKeys = 1024

func newRateLog(every time.Duration) rateLog {
	return rateLog{every: every, keys: netlimit.NewKeyTable(rateLogKeys, newRateLogState, (*rateLogState).quiet)}
}

func newRateLogState(time.Time) *rateLogState { return &rateLogState{} }

// allow reports whether a refusal for key may be logged at now, and how
// many were not logged since the last one.
func (l *rateLog) allow(key string, now time.Time) (ok bool, suppressed uint64) {
	_, s := l.keys.Get(key, now)
	if now.Before(s.next) {
		s.suppressed++
		return false, 0
	}
	suppressed = s.suppressed
	s.suppressed = 0
	s.next = now.Add(l.every)
	return true, suppressed
}

// forget forgets key if its interval is over and it has nothing left to
// report.
func (l *rateLog) forget(key string, now time.Time) { l.keys.Forget(key, now) }

// quiet reports whether s's interval is over with nothing held back.
func (s *rateLogState) quiet(now time.Time) bool {
	return !now.Before(s.next) && s.suppressed == 0
}

// refusedCap counts a refusal of kind ("rpc" or "named") at cap limit for
// key, tells the Observer, and returns a function that logs it, for
// changeSet.logLater, or nil when the key's rate allows no line now; r.mu
// must be held.
func (r *Registry) refusedCap(kind, limit, key string, err error) func() {
	if r.opts.Observer != nil {
		r.opts.Observer.LimitHit(kind, limit, "refused")
	}
	l := &r.rpcLog
	if kind == "named" {
		r.refused.Named++
		l = &r.namedLog
	} else {
		r.refused.RPC++
	}
	ok, suppressed := l.allow(key, r.opts.Now())
	if !ok {
		return nil
	}
	return func() {
		r.log.Warn("registration refused: cap reached", "kind", kind, "owner", key, "err", err, "not_logged_since_last", suppressed)
	}
}
