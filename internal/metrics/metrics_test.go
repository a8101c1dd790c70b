package metrics_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/portmapd/portmapd/internal/metrics"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// server is a portmapper served on UDP, TCP and a local socket with m
// observing, as the daemon builds it.
type server struct {
	m                  *metrics.Metrics
	udp, tcp, unixPath string
	// self is how many entries the portmapper registered for itself.
	self int
}

func startServer(t testing.TB) *server { return startServerObserved(t, true) }

// startServerObserved starts a server counting into metrics, or with no
// Observer at all when observed is false.
func startServerObserved(t testing.TB, observed bool) *server {
	t.Helper()
	m := metrics.New()
	reg := registry.New(registry.Options{Observer: m})
	m.WatchRegistry(reg)
	mux := &oncrpc.ServeMux{}
	pm := &rpcbind.Portmapper{Registry: reg}
	pm.Register(mux)
	self := pm.SelfEntries([]rpcbind.Endpoint{{Netid: netid.TCP, Addr: netid.WildcardUaddr(netid.TCP, 111)}})
	for _, e := range self {
		if _, err := reg.Set(registry.Caller{Transport: registry.Internal}, e); err != nil {
			t.Fatal(err)
		}
	}
	srv := &oncrpc.Server{Handler: mux, Logger: slog.New(slog.DiscardHandler)}
	if observed {
		srv.Observer = m
	}
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rpcbind.sock")
	local, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	go func() { _ = srv.ServeUDP(ctx, udp, "udp"); done <- struct{}{} }()
	go func() { _ = srv.ServeStream(ctx, tcp, "tcp"); done <- struct{}{} }()
	go func() { _ = srv.ServeStream(ctx, local, "local"); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		for range 3 {
			<-done
		}
	})
	return &server{m: m, udp: udp.LocalAddr().String(), tcp: tcp.Addr().String(), unixPath: path, self: len(self)}
}

func (s *server) dial(t testing.TB, network string) *rpcbind.Client {
	t.Helper()
	addr := map[string]string{"udp": s.udp, "tcp": s.tcp, "unix": s.unixPath}[network]
	c, err := rpcbind.Dial(context.Background(), network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scrape reads the metrics as Prometheus does: through the handler, in
// the text format.
func (s *server) scrape(t testing.TB) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	s.m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// counted returns the calls of the portmapper's version vers and
// procedure proc that fam counts, whatever their transport and result.
func counted(fam *dto.MetricFamily, vers, proc string) int {
	n := 0
	for _, m := range fam.GetMetric() {
		if label(m, "program") == strconv.Itoa(xdr.PmapProg) && label(m, "version") == vers && label(m, "procedure") == proc {
			n += int(m.GetCounter().GetValue())
		}
	}
	return n
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestMetricsAgreeWithGETSTAT drives calls of every portmapper version
// over UDP, TCP and the local socket, with some answered with errors,
// then asks GETSTAT and scrapes /metrics: for each version and procedure,
// the calls GETSTAT counts are the calls /metrics counts for the
// portmapper, over every transport and result but the calls denied before
// dispatch (auth_error, rpc_mismatch) and those the dispatcher refused
// (prog_mismatch, proc_unavail), which GETSTAT does not see either.
func TestMetricsAgreeWithGETSTAT(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, network := range []string{"udp", "tcp", "unix"} {
		c := s.dial(t, network)
		for vers := uint32(2); vers <= 4; vers++ {
			if err := c.Null(ctx, xdr.PmapProg, vers); err != nil {
				t.Fatalf("%s NULL v%d: %v", network, vers, err)
			}
		}
		if _, err := c.PmapSet(ctx, xdr.Mapping{Prog: 300000, Vers: 1, Prot: netid.ProtoTCP, Port: 4000}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetPort(ctx, 300000, 1, netid.ProtoTCP); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Dump(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PmapUnset(ctx, 300000, 1); err != nil {
			t.Fatal(err)
		}
		for _, vers := range []uint32{3, 4} {
			r := xdr.RPCB{Prog: 300001, Vers: 1, Netid: "udp", Addr: "127.0.0.1.15.160"}
			if _, err := c.RpcbSet(ctx, vers, r); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetAddr(ctx, vers, r); err != nil {
				t.Fatal(err)
			}
			if _, err := c.RpcbDump(ctx, vers); err != nil {
				t.Fatal(err)
			}
			if _, err := c.GetTime(ctx, vers); err != nil {
				t.Fatal(err)
			}
			if _, err := c.RpcbUnset(ctx, vers, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.GetAddrList(ctx, xdr.RPCB{Prog: xdr.PmapProg, Vers: 4, Netid: "tcp"}); err != nil {
			t.Fatal(err)
		}
		// Errors: arguments that do not decode, an unknown procedure,
		// version and program.
		for _, bad := range []struct {
			prog, vers, proc uint32
			args             func(*xdr.Encoder)
		}{
			{xdr.PmapProg, 2, xdr.PmapProcSet, func(e *xdr.Encoder) { e.Uint32(1) }},
			{xdr.PmapProg, 2, 99, nil},
			{xdr.PmapProg, 5, 0, nil},
			{300002, 1, 0, nil},
		} {
			if err := c.Call(ctx, bad.prog, bad.vers, bad.proc, bad.args, nil); err == nil {
				t.Fatalf("call %+v succeeded", bad)
			}
		}
	}
	stats, err := s.dial(t, "unix").GetStat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The server counts a call for /metrics once its reply is sent, so
	// the reply to GETSTAT can reach us before GETSTAT itself is
	// counted: wait for it (every earlier call was counted before the
	// next call on its connection was read).
	var fams map[string]*dto.MetricFamily
	var fam *dto.MetricFamily
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		fams = s.scrape(t)
		fam = fams["portmapd_rpc_requests_total"]
		if fam == nil {
			t.Fatalf("no portmapd_rpc_requests_total in %v", fams)
		}
		if counted(fam, "4", "GETSTAT") > 0 || time.Now().After(deadline) {
			break
		}
	}
	got := map[string]int{}
	transports := map[string]bool{}
	for _, m := range fam.GetMetric() {
		transports[label(m, "transport")] = true
		switch label(m, "result") {
		case "auth_error", "rpc_mismatch", "prog_mismatch", "proc_unavail":
			continue
		}
		if label(m, "program") != strconv.Itoa(xdr.PmapProg) {
			continue
		}
		got[label(m, "version")+" "+label(m, "procedure")] += int(m.GetCounter().GetValue())
	}
	for _, tr := range []string{"udp", "tcp", "local"} {
		if !transports[tr] {
			t.Errorf("no calls counted on transport %s: %v", tr, transports)
		}
	}
	names := map[uint32][]string{
		2: {"NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"},
		3: {"NULL", "SET", "UNSET", "GETADDR", "DUMP", "CALLIT", "GETTIME", "UADDR2TADDR", "TADDR2UADDR"},
		4: {"NULL", "SET", "UNSET", "GETADDR", "DUMP", "BCAST", "GETTIME", "UADDR2TADDR", "TADDR2UADDR", "GETVERSADDR", "INDIRECT", "GETADDRLIST", "GETSTAT"},
	}
	compared := 0
	for i, vs := range stats {
		vers := uint32(i) + xdr.PmapVers
		for proc, name := range names[vers] {
			key := fmt.Sprintf("%d %s", vers, name)
			want := int(vs.Info[proc])
			if got[key] != want {
				t.Errorf("version %d %s: GETSTAT counts %d calls, /metrics %d", vers, name, want, got[key])
			}
			compared += want
			delete(got, key)
		}
	}
	for key, n := range got {
		t.Errorf("/metrics counts %d calls of %s, which GETSTAT does not know", n, key)
	}
	if compared == 0 {
		t.Fatal("GETSTAT counted nothing")
	}
	// The errors are counted too, under their own results.
	results := map[string]bool{}
	for _, m := range fam.GetMetric() {
		results[label(m, "result")] = true
	}
	for _, r := range []string{"success", "garbage_args", "proc_unavail", "prog_mismatch", "prog_unavail"} {
		if !results[r] {
			t.Errorf("no call counted with result %s: %v", r, results)
		}
	}
	// Each SET and UNSET that changed the registry is one change, as is
	// each of the portmapper's own entries.
	changes := fams["portmapd_registry_changes_total"]
	byOp := map[string]float64{}
	for _, m := range changes.GetMetric() {
		byOp[label(m, "kind")+" "+label(m, "op")] = m.GetCounter().GetValue()
	}
	// Per transport: one v2 SET (one entry), one v2 UNSET (the tcp
	// entry), and a SET and UNSET of versions 3 and 4 each.
	if want := map[string]float64{"rpc set": float64(9 + s.self), "rpc unset": 9}; byOp["rpc set"] != want["rpc set"] || byOp["rpc unset"] != want["rpc unset"] {
		t.Errorf("registry changes %v, want %v", byOp, want)
	}
	if g := fams["portmapd_registry_registrations"]; g == nil {
		t.Error("no portmapd_registry_registrations gauge")
	} else {
		for _, m := range g.GetMetric() {
			if label(m, "kind") == "rpc" && m.GetGauge().GetValue() != float64(s.self) {
				t.Errorf("rpc registrations gauge %v, want %d (the portmapper's own)", m.GetGauge().GetValue(), s.self)
			}
		}
	}
}

// BenchmarkGetport is a v2 GETPORT over TCP on loopback without metrics
// and with them, to show what counting a call costs.
func BenchmarkGetport(b *testing.B) {
	for _, observed := range []bool{false, true} {
		b.Run("metrics="+strconv.FormatBool(observed), func(b *testing.B) {
			s := startServerObserved(b, observed)
			c := s.dial(b, "tcp")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.GetPort(ctx, xdr.PmapProg, 2, netid.ProtoTCP); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCallServed is the cost of counting one call, alone.
func BenchmarkCallServed(b *testing.B) {
	m := metrics.New()
	c := &oncrpc.Call{CallHeader: xdr.CallHeader{Prog: xdr.PmapProg, Vers: 2, Proc: xdr.PmapProcGetport}}
	c.Peer.Transport = "udp"
	reply := xdr.Accepted(1, xdr.Success)
	b.ReportAllocs()
	for b.Loop() {
		m.CallServed(c, &reply, false)
	}
}

// TestRegistryChangesByOp: each kind of change the registry makes is
// counted under its own kind and op; a change of health is not a SET.
func TestRegistryChangesByOp(t *testing.T) {
	m := metrics.New()
	reg := registry.New(registry.Options{Observer: m})
	internal := registry.Caller{Transport: registry.Internal}
	e := registry.Entry{Prog: 300000, Vers: 1, Netid: netid.TCP, Addr: "0.0.0.0.4.1"}
	if ok, err := reg.Set(internal, e); !ok || err != nil {
		t.Fatal(ok, err)
	}
	e, _ = reg.LookupExact(e.Prog, e.Vers, e.Netid)
	if !reg.SetEntryHealth(e, registry.Health{Status: registry.Critical, Output: "no answer"}) {
		t.Fatal("entry health unchanged")
	}
	svcs, err := reg.RegisterNamed(internal, registry.Process{PID: 7, UID: 1000, Start: 7},
		[]registry.Service{{Name: "a.example.com", Network: netid.TCP, Port: 80}})
	if err != nil {
		t.Fatal(err)
	}
	if !reg.SetHealth(svcs[0], registry.Health{Status: registry.Warning, Output: "slow"}) {
		t.Fatal("service health unchanged")
	}
	if _, err := reg.DeregisterNamed(internal, svcs); err != nil {
		t.Fatal(err)
	}
	if ok, err := reg.Unset(internal, e.Prog, e.Vers, e.Netid); !ok || err != nil {
		t.Fatal(ok, err)
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "portmapd_registry_changes_total" {
			continue
		}
		for _, c := range f.GetMetric() {
			got[label(c, "kind")+" "+label(c, "op")] = c.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"rpc set": 1, "rpc health": 1, "named register": 1, "named health": 1, "named deregister": 1, "rpc unset": 1}
	if !maps.Equal(got, want) {
		t.Errorf("changes counted %v, want %v", got, want)
	}
}
