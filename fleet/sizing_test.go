package fleet

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/portmapd/portmapd/internal/etcdtest"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// The sizing simulation (TestFleetSizing), which make bench runs with
// -fleet.hosts=2000; without the flag, make test runs it small, to keep
// it working.
var (
	simHosts   = flag.Int("fleet.hosts", 0, "hosts TestFleetSizing simulates (0: a quick run of 10)")
	simRegs    = flag.Int("fleet.registrations", 50, "registrations of each simulated host, a fifth of them RPC")
	simTTL     = flag.Duration("fleet.ttl", DefaultTTL, "lease TTL of the simulated hosts")
	simSteady  = flag.Duration("fleet.steady", 30*time.Second, "how long the steady state is measured")
	simChurn   = flag.Float64("fleet.churn", 1.0/60, "registrations replaced per host per second at steady state")
	simClients = flag.Int("fleet.clients", 32, "etcd clients the simulated hosts share (a host of a real fleet has its own)")
)

// counter counts the log lines of one message, from every simulated
// host.
type counter struct {
	slog.Handler
	msg string
	n   *atomic.Int64
}

func (c counter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.n.Add(1)
	}
	return nil
}

func (c counter) Enabled(context.Context, slog.Level) bool { return true }

// etcdMetrics reads some of etcd's own counters from its /metrics.
func etcdMetrics(t *testing.T, endpoint string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for key, prefix := range map[string]string{
			"proposals": "etcd_server_proposals_committed_total ",
			"puts":      "etcd_debugging_mvcc_put_total ",
			"deletes":   "etcd_debugging_mvcc_delete_total ",
			"txns":      "etcd_debugging_mvcc_txn_total ",
			"ranges":    "etcd_debugging_mvcc_range_total ",
			"keepalive": `grpc_server_msg_received_total{grpc_method="LeaseKeepAlive",grpc_service="etcdserverpb.Lease",grpc_type="bidi_stream"} `,
			"grants":    `grpc_server_handled_total{grpc_code="OK",grpc_method="LeaseGrant",grpc_service="etcdserverpb.Lease",grpc_type="unary"} `,
		} {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				out[key] += f
			}
		}
	}
	return out
}

// delta is what etcd did between two readings, per second of d.
func delta(a, b map[string]float64, d time.Duration) string {
	var parts []string
	for _, k := range []string{"proposals", "txns", "puts", "deletes", "ranges", "grants", "keepalive"} {
		parts = append(parts, fmt.Sprintf("%s %.0f (%.0f/s)", k, b[k]-a[k], (b[k]-a[k])/d.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// simHost is one simulated host: a registry and the mirror that runs on
// a shared client.
type simHost struct {
	reg  *registry.Registry
	m    *Mirror
	rng  *rand.Rand
	pids []int32
}

// TestFleetSizing simulates a fleet against one etcd on loopback: every
// host a registry of -fleet.registrations entries with a mirror and its
// own lease (sharing -fleet.clients etcd clients). It measures, from
// etcd's own counters, what a mass start costs, the writes and
// keep-alives of the steady state with -fleet.churn, the latency of
// fleet lookups, etcd's database size, and what a mass restart of the
// daemons (within the TTL, so leases are taken over) and a restart of
// etcd cost. README's "Sizing a fleet" has the numbers of a run and
// what they mean at 10,000 hosts.
func TestFleetSizing(t *testing.T) {
	n, steady, ttl := *simHosts, *simSteady, *simTTL
	if n == 0 {
		n, steady, ttl = 10, 2*time.Second, 2*time.Second
	}
	regs := max(*simRegs, 5)
	srv := etcdtest.Start(t, etcdtest.Options{Args: []string{"--quota-backend-bytes", strconv.Itoa(8 << 30)}})
	clients := make([]*clientv3.Client, min(*simClients, n))
	for i := range clients {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	var published atomic.Int64
	log := slog.New(counter{Handler: slog.DiscardHandler, msg: "published the host's entries to etcd", n: &published})
	// Service names are drawn from four times as many as there are
	// hosts, so that a name runs on some ten hosts; every host has the
	// same few RPC programs, as a fleet of NFS servers does.
	names := 4 * n
	rpcProgs := []uint32{100003, 100005, 100021, 100024, 100227}
	hosts := make([]*simHost, n)
	for i := range hosts {
		reg := registry.New(registry.Options{})
		internal := registry.Caller{Transport: registry.Internal}
		nRPC := regs / 5
		for j := range nRPC {
			prog := rpcProgs[j%len(rpcProgs)]
			vers := uint32(1 + j/len(rpcProgs))
			id := netid.TCP
			if j%2 == 1 {
				id = netid.UDP
			}
			port := 2000 + j
			if _, err := reg.Set(internal, registry.Entry{Prog: prog, Vers: vers, Netid: id, Addr: fmt.Sprintf("0.0.0.0.%d.%d", port>>8, port&0xff)}); err != nil {
				t.Fatal(err)
			}
		}
		h := &simHost{reg: reg, rng: rand.New(rand.NewPCG(uint64(i), 1))}
		for j := range regs - nRPC {
			h.register(t, fmt.Sprintf("svc%d.example.com", h.rng.IntN(names)), uint16(10000+j), int32(1000+j))
		}
		m, err := New(reg, Config{Endpoints: []string{srv.Endpoint}, Host: fmt.Sprintf("host%05d", i), TTL: ttl,
			Timeout: 30 * time.Second, Logger: log, Interfaces: addrsOf(fmt.Sprintf("10.%d.%d.%d/16", i>>16&0xff, i>>8&0xff, i&0xff))})
		if err != nil {
			t.Fatal(err)
		}
		h.m = m
		hosts[i] = h
	}
	keys := 0
	for _, h := range hosts {
		saved := 0
		h.reg.Checkpoint(func(s registry.Saved) { saved = len(s.Entries) + len(s.Services) })
		keys += 2*saved + 1
	}
	t.Logf("simulating %d hosts of %d registrations (%d keys) on %d etcd clients, TTL %v", n, regs, keys, len(clients), ttl)

	var wg sync.WaitGroup
	start := func() context.CancelFunc {
		ctx, cancel := context.WithCancel(context.Background())
		for i, h := range hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cli := clients[i%len(clients)]
				h.m.client.Store(cli)
				(&publisher{Mirror: h.m, cli: cli}).publish(ctx)
			}()
		}
		return cancel
	}
	waitPublished := func(what string, want int64) time.Duration {
		t.Helper()
		began := time.Now()
		for published.Load() < want {
			if time.Since(began) > 10*time.Minute {
				t.Fatalf("%s: %d of %d hosts published", what, published.Load(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(began)
	}

	// A mass start: every host publishes at once, to an empty etcd.
	m0 := etcdMetrics(t, srv.Endpoint)
	stop := start()
	took := waitPublished("mass start", int64(n))
	m1 := etcdMetrics(t, srv.Endpoint)
	t.Logf("mass start: all %d hosts published in %v (%.0f keys/s): %s", n, took.Round(time.Millisecond), float64(keys)/took.Seconds(), delta(m0, m1, took))

	// The steady state: keep-alives, and registrations replaced at the
	// churn rate across the fleet.
	ctx, cancelChurn := context.WithCancel(context.Background())
	churned := make(chan int)
	go func() {
		every := time.Duration(float64(time.Second) / (*simChurn * float64(n)))
		tick := time.NewTicker(max(every, time.Millisecond))
		defer tick.Stop()
		rng := rand.New(rand.NewPCG(7, 7))
		count := 0
		for {
			select {
			case <-ctx.Done():
				churned <- count
				return
			case <-tick.C:
				hosts[rng.IntN(n)].replace(t, names)
				count++
			}
		}
	}()
	m1 = etcdMetrics(t, srv.Endpoint)
	time.Sleep(steady)
	cancelChurn()
	replaced := <-churned
	m2 := etcdMetrics(t, srv.Endpoint)
	t.Logf("steady state for %v, %d registrations replaced (%.1f/s): %s", steady, replaced, float64(replaced)/steady.Seconds(), delta(m1, m2, steady))

	// Lookups, as scope=fleet makes them: a name on some ten hosts, and
	// an RPC program on every host.
	asker := hosts[0].m
	var lat []time.Duration
	found := 0
	rng := rand.New(rand.NewPCG(9, 9))
	for range 200 {
		name := fmt.Sprintf("svc%d.example.com", rng.IntN(names))
		t0 := time.Now()
		ans, err := asker.Lookup(context.Background(), []string{name})
		lat = append(lat, time.Since(t0))
		if err != nil {
			t.Fatal(err)
		}
		found += len(ans.Instances)
	}
	slices.Sort(lat)
	t0 := time.Now()
	ans, err := asker.Lookup(context.Background(), []string{"100003.oncrpc.alt"})
	if err != nil {
		t.Fatal(err)
	}
	wide := time.Since(t0)
	t.Logf("lookups of a name: p50 %v, p90 %v, p99 %v, max %v, %.1f instances each; of an RPC program on every host: %v for %d instances (truncated %v)",
		lat[len(lat)/2].Round(time.Microsecond), lat[len(lat)*9/10].Round(time.Microsecond), lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond),
		float64(found)/float64(len(lat)), wide.Round(time.Microsecond), len(ans.Instances), ans.Truncated)

	st, err := clients[0].Status(context.Background(), srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd database: %.1f MiB (%.1f MiB in use), %d keys, %.0f bytes a key in use", float64(st.DbSize)/(1<<20), float64(st.DbSizeInUse)/(1<<20), keys, float64(st.DbSizeInUse)/float64(keys))

	// A mass restart of the daemons within the TTL: each takes its lease
	// over and writes only what changed.
	stop()
	wg.Wait()
	m3 := etcdMetrics(t, srv.Endpoint)
	before := published.Load()
	stop = start()
	took = waitPublished("mass restart", before+int64(n))
	m4 := etcdMetrics(t, srv.Endpoint)
	t.Logf("mass restart of the daemons: all republished in %v: %s", took.Round(time.Millisecond), delta(m3, m4, took))

	// A restart of etcd: leases outlive it, and each host catches up
	// from the index etcd held.
	srv.Stop()
	m5Began := time.Now()
	srv.Restart()
	restarted := time.Since(m5Began)
	m5 := etcdMetrics(t, srv.Endpoint)
	time.Sleep(2 * ttl)
	m6 := etcdMetrics(t, srv.Endpoint)
	resp, err := clients[0].Get(context.Background(), DefaultPrefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd restarted in %v; in the %v after: %s; %d keys held, %d expected", restarted.Round(time.Millisecond), 2*ttl, delta(m5, m6, 2*ttl), resp.Count, keys)
	if resp.Count != int64(keys) {
		t.Errorf("after etcd restarted: %d keys, want %d", resp.Count, keys)
	}
	stop()
	wg.Wait()
}

// register registers name on port for a process of its own.
func (h *simHost) register(t *testing.T, name string, port uint16, pid int32) {
	t.Helper()
	if _, err := h.reg.RegisterNamed(local(1000, pid), proc(1000, pid), []registry.Service{{Name: name, Network: netid.TCP, Port: port}}); err != nil {
		t.Fatal(err)
	}
	h.pids = append(h.pids, pid)
}

// replace ends one of the host's registrations and makes another, as a
// service that restarts elsewhere does.
func (h *simHost) replace(t *testing.T, names int) {
	i := h.rng.IntN(len(h.pids))
	pid := h.pids[i]
	h.pids = slices.Delete(h.pids, i, i+1)
	h.reg.DropProcess(pid, uint64(pid)*10)
	h.register(t, fmt.Sprintf("svc%d.example.com", h.rng.IntN(names)), uint16(20000+h.rng.IntN(10000)), pid+100000)
}
