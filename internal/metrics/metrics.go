// Package metrics counts what the daemon does for Prometheus: it is the
// one package that imports client_golang. Each part of the daemon exposes
// a small observer interface (oncrpc.Observer, registry.Observer,
// lifetime.Observer, health.Observer, journal.Observer, httpmap.Observer,
// and netlimit's LimitHit, which they share); a *Metrics is all of them,
// and the daemon hands it to each part it builds. So the framework and
// the registry know nothing of Prometheus, and a daemon without metrics
// passes nil and pays one comparison where an event happens.
//
// Every metric lives in the Metrics' own registry, not client_golang's
// global one, under the portmapd_ prefix, named as CoreDNS names its own
// (subsystem, noun, unit, _total for counters). Labels take only values
// from small fixed sets: a call of a program other than the portmapper,
// or of an unknown version or procedure, is counted as "other".
package metrics

import (
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

const namespace = "portmapd"

// Metrics holds the daemon's metrics in a private registry. Its methods
// are safe for concurrent use; its observer methods never block.
type Metrics struct {
	reg *prometheus.Registry

	rpcCalls     *prometheus.CounterVec
	rpcMalformed *prometheus.CounterVec
	// calls caches rpcCalls' counters by transport, then by version,
	// procedure and result, so that counting a call costs a map load
	// and an atomic add.
	calls sync.Map // string -> *callTable

	changes    *prometheus.CounterVec
	prunes     *prometheus.CounterVec
	limits     *prometheus.CounterVec
	writes     *prometheus.CounterVec
	writeBytes prometheus.Counter
	fsync      prometheus.Histogram
	compacts   *prometheus.CounterVec
	compactDur prometheus.Histogram
	http       *prometheus.CounterVec
}

// New returns Metrics with every metric registered, and the Go runtime's
// and the process's own collectors beside them.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	counter := func(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}, labels)
		m.reg.MustRegister(v)
		return v
	}
	m.rpcCalls = counter("rpc", "requests_total",
		"RPC calls answered, by program, version, procedure, transport (netid) and result (the reply's status, no_reply, or deferred for a forwarded remote call).",
		"program", "version", "procedure", "transport", "result")
	m.rpcMalformed = counter("rpc", "malformed_total", "Messages dropped because they are not a readable RPC call, by transport.", "transport")
	m.changes = counter("registry", "changes_total",
		"Changes to the registry, by kind (rpc, named) and op (set, unset, register, deregister, health: a health check's status changed); pruning and process exits included.",
		"kind", "op")
	m.prunes = counter("registry", "prunes_total",
		"Registrations the daemon removed on its own, by kind and cause (process_exited, unbound, unwatchable, critical: a health check failed for longer than deregister_after).", "kind", "cause")
	m.limits = counter("", "limit_hits_total",
		"Limits that were hit, by where (a listener's netid or http, http-local, rpc, named, lifetime), limit and action taken.",
		"where", "limit", "action")
	m.writes = counter("state", "writes_total", "Batches of changes written and synced to the state directory, by result (ok, error).", "result")
	m.writeBytes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Subsystem: "state", Name: "write_bytes_total",
		Help: "Bytes written to the state directory's journal."})
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "state", Name: "fsync_duration_seconds",
		Help: "Time each fdatasync of the journal took.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)})
	m.compacts = counter("state", "compactions_total", "Rewrites of the saved state as a snapshot, by result (ok, error).", "result")
	m.compactDur = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Subsystem: "state", Name: "compaction_duration_seconds",
		Help: "Time each compaction took.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)})
	m.http = counter("http", "requests_total", "HTTP requests answered, by route (the pattern that matched, none when none did) and status code.", "route", "code")
	m.reg.MustRegister(m.writeBytes, m.fsync, m.compactDur,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: namespace}),
		buildInfo())
	return m
}

// buildInfo is portmapd_build_info: 1, with the version and Go version as
// labels, as CoreDNS's coredns_build_info.
func buildInfo() prometheus.Collector {
	version, goVersion := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		version, goVersion = bi.Main.Version, bi.GoVersion
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; its labels say which build is running.", ConstLabels: prometheus.Labels{"version": version, "goversion": goVersion}})
	g.Set(1)
	return g
}

// Handler serves the metrics in Prometheus's text (or negotiated) format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the private registry, for tests that gather it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// WatchRegistry adds the gauges of what reg holds, read when scraped:
// portmapd_registry_registrations{kind="rpc"|"named"}.
func (m *Metrics) WatchRegistry(reg *registry.Registry) {
	gauge := func(kind string, f func() int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Subsystem: "registry", Name: "registrations",
			Help: "Registrations held, by kind (rpc entries, named services).", ConstLabels: prometheus.Labels{"kind": kind}},
			func() float64 { return float64(f()) })
	}
	m.reg.MustRegister(gauge("rpc", reg.Len), gauge("named", reg.NamedLen))
}

// The procedures of the portmapper's versions 2, 3 and 4 (RFC 1833), as
// labels.
var procNames = [3][]string{
	{"NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"},
	{"NULL", "SET", "UNSET", "GETADDR", "DUMP", "CALLIT", "GETTIME", "UADDR2TADDR", "TADDR2UADDR"},
	{"NULL", "SET", "UNSET", "GETADDR", "DUMP", "BCAST", "GETTIME", "UADDR2TADDR", "TADDR2UADDR",
		"GETVERSADDR", "INDIRECT", "GETADDRLIST", "GETSTAT"},
}

// Results a call is counted under.
var results = [...]string{"success", "prog_unavail", "prog_mismatch", "proc_unavail", "garbage_args", "system_err",
	"rpc_mismatch", "auth_error", "no_reply", "deferred"}

const (
	resultRPCMismatch = 6 + iota
	resultAuthError
	resultNoReply
	resultDeferred
	maxProcs = 13
	// otherSlot is the version or procedure index of one not in
	// procNames.
	otherSlot = 3
)

// A callTable holds one transport's counters, made on first use.
type callTable struct {
	transport string
	// c is indexed by version slot (2, 3, 4, other), procedure (or
	// maxProcs for other) and result.
	c [4][maxProcs + 1][len(results)]atomic.Pointer[prometheus.Counter]
}

// resultOf is the result a call is counted under, by the header of its
// reply and whether the reply was deferred.
func resultOf(h *xdr.ReplyHeader, deferred bool) int {
	switch {
	case deferred:
		return resultDeferred
	case h == nil:
		return resultNoReply
	case h.Stat == xdr.MsgDenied && h.Reject == xdr.RPCMismatch:
		return resultRPCMismatch
	case h.Stat == xdr.MsgDenied:
		return resultAuthError
	case int(h.Accept) < resultRPCMismatch:
		return int(h.Accept)
	}
	return int(xdr.SystemErr)
}

// CallServed counts a call (oncrpc.Observer).
func (m *Metrics) CallServed(c *oncrpc.Call, reply *xdr.ReplyHeader, deferred bool) {
	t, ok := m.calls.Load(c.Peer.Transport)
	if !ok {
		t, _ = m.calls.LoadOrStore(c.Peer.Transport, &callTable{transport: c.Peer.Transport})
	}
	vs, ps := otherSlot, maxProcs
	if c.Prog == xdr.PmapProg && c.Vers >= xdr.PmapVers && c.Vers <= xdr.RpcbVers4 {
		vs = int(c.Vers - xdr.PmapVers)
		if int(c.Proc) < len(procNames[vs]) {
			ps = int(c.Proc)
		}
	}
	r := resultOf(reply, deferred)
	slot := &t.(*callTable).c[vs][ps][r]
	counter := slot.Load()
	if counter == nil {
		counter = m.newCallCounter(t.(*callTable).transport, vs, ps, r)
		slot.Store(counter)
	}
	(*counter).Inc()
}

// newCallCounter returns the counter of a call table's slot. Two calls
// that race to make it get the same one from the CounterVec.
func (m *Metrics) newCallCounter(transport string, vs, ps, r int) *prometheus.Counter {
	program, version, procedure := "other", "other", "other"
	if vs != otherSlot {
		program, version = strconv.Itoa(xdr.PmapProg), strconv.Itoa(vs+xdr.PmapVers)
		if ps != maxProcs {
			procedure = procNames[vs][ps]
		}
	}
	c := m.rpcCalls.WithLabelValues(program, version, procedure, transport, results[r])
	return &c
}

// Malformed counts a dropped message (oncrpc.Observer).
func (m *Metrics) Malformed(transport string) { m.rpcMalformed.WithLabelValues(transport).Inc() }

// LimitHit counts a limit hit (netlimit.Observer, and the LimitHit of
// the other observers).
func (m *Metrics) LimitHit(where, limit, action string) {
	m.limits.WithLabelValues(where, limit, action).Inc()
}

// Changed counts the registry's changes (registry.Observer).
func (m *Metrics) Changed(changes []registry.Change) {
	for _, c := range changes {
		kind, op := "rpc", "set"
		switch c.Op {
		case registry.OpUnset:
			op = "unset"
		case registry.OpRegister:
			kind, op = "named", "register"
		case registry.OpDeregister:
			kind, op = "named", "deregister"
		case registry.OpServiceHealth:
			kind, op = "named", "health"
		case registry.OpEntryHealth:
			op = "health"
		}
		m.changes.WithLabelValues(kind, op).Inc()
	}
}

// Removed counts a registration the daemon removed (lifetime.Observer,
// health.Observer).
func (m *Metrics) Removed(kind, cause string) { m.prunes.WithLabelValues(kind, cause).Inc() }

// StateWritten counts a journal write (journal.Observer).
func (m *Metrics) StateWritten(bytes int, sync time.Duration, err error) {
	if err != nil {
		m.writes.WithLabelValues("error").Inc()
		return
	}
	m.writes.WithLabelValues("ok").Inc()
	m.writeBytes.Add(float64(bytes))
	m.fsync.Observe(sync.Seconds())
}

// StateCompacted counts a compaction (journal.Observer).
func (m *Metrics) StateCompacted(took time.Duration, err error) {
	if err != nil {
		m.compacts.WithLabelValues("error").Inc()
		return
	}
	m.compacts.WithLabelValues("ok").Inc()
	m.compactDur.Observe(took.Seconds())
}

// HTTPServed counts an HTTP request (httpmap.Observer).
func (m *Metrics) HTTPServed(route string, code int) {
	if route == "" {
		route = "none"
	}
	m.http.WithLabelValues(route, strconv.Itoa(code)).Inc()
}
