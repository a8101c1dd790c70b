package httpmap

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// patience bounds every wait for something that is to happen: far longer
// than it takes, on a loaded machine. quiet is how long something that is
// not to happen is given to show that it does not.
const (
	patience = 30 * time.Second
	quiet    = 300 * time.Millisecond
)

// answer is a finished HTTP request.
type answer struct {
	status int
	index  uint64
	body   string
	err    error
}

// getAsync GETs url in the background.
func getAsync(ctx context.Context, url string, header http.Header) <-chan answer {
	out := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			out <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		index, _ := strconv.ParseUint(resp.Header.Get(IndexHeader), 10, 64)
		out <- answer{status: resp.StatusCode, index: index, body: string(b)}
	}()
	return out
}

// pending reports whether nothing has come from ch for a while.
func pending(ch <-chan answer) bool {
	select {
	case <-ch:
		return false
	case <-time.After(quiet):
		return true
	}
}

// await returns what comes from ch, failing after patience.
func await(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatal(a.err)
		}
		return a
	case <-time.After(patience):
		t.Fatal("no answer")
	}
	return answer{}
}

var internal = registry.Caller{Transport: registry.Internal}

func registerInternal(t *testing.T, reg *registry.Registry, pid int32, svcs ...registry.Service) []registry.Service {
	t.Helper()
	added, err := reg.RegisterNamed(internal, registry.Process{PID: pid, UID: 1000, Start: uint64(pid)}, svcs)
	if err != nil {
		t.Fatal(err)
	}
	return added
}

// TestBlockingQuery checks that a listing with index= waits for a change,
// that one that changes nothing does not wake it, and that it then
// answers with the change and a later index; that a lookup waits for a
// change of its own name; and that an index in the past answers at once.
func TestBlockingQuery(t *testing.T) {
	l := startLive(t, registry.Options{})
	e := registry.Entry{Prog: 300000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"}
	l.reg.Set(internal, e)
	base := "http://" + l.tcp + "/portmap"
	first := await(t, getAsync(context.Background(), base, nil))
	if first.index == 0 {
		t.Fatalf("no %s in %+v", IndexHeader, first)
	}
	t.Run("listing", func(t *testing.T) {
		ch := getAsync(context.Background(), base+"?index="+strconv.FormatUint(l.reg.Index(), 10)+"&wait=60s", nil)
		l.reg.Set(internal, e) // no change
		if !pending(ch) {
			t.Fatal("a change that changed nothing woke the query")
		}
		start := time.Now()
		registerInternal(t, l.reg, 10, registry.Service{Name: "new.example.com", Network: netid.TCP, Port: 8080})
		a := await(t, ch)
		t.Logf("woken %v after the change", time.Since(start))
		if a.status != 200 || !strings.Contains(a.body, "new.example.com") || a.index != l.reg.Index() {
			t.Errorf("%d, index %d (registry %d):\n%s", a.status, a.index, l.reg.Index(), a.body)
		}
	})
	t.Run("name", func(t *testing.T) {
		before := l.reg.Index()
		ch := getAsync(context.Background(), base+"/later.example.com?index="+strconv.FormatUint(before, 10), nil)
		registerInternal(t, l.reg, 11, registry.Service{Name: "unrelated.example.com", Network: netid.TCP, Port: 8081})
		if !pending(ch) {
			t.Fatal("a change of another name woke the lookup")
		}
		registerInternal(t, l.reg, 12, registry.Service{Name: "Later.example.com", Network: netid.TCP, Port: 8082})
		if a := await(t, ch); a.status != 200 || !strings.Contains(a.body, "Later.example.com") {
			t.Errorf("%d:\n%s", a.status, a.body)
		}
	})
	t.Run("index in the past", func(t *testing.T) {
		a := await(t, getAsync(context.Background(), base+"?index=1&wait=60s", nil))
		if a.status != 200 || a.index != l.reg.Index() {
			t.Errorf("%d, index %d", a.status, a.index)
		}
	})
	t.Run("index of another history", func(t *testing.T) {
		a := await(t, getAsync(context.Background(), base+"?index="+strconv.FormatUint(l.reg.Index()+1000, 10)+"&wait=60s", nil))
		if a.status != 200 {
			t.Errorf("%d", a.status)
		}
	})
	t.Run("not found, with the index to wait from", func(t *testing.T) {
		a := await(t, getAsync(context.Background(), base+"/none.example.com", nil))
		if a.status != 404 || a.index != l.reg.Index() {
			t.Errorf("%d, index %d", a.status, a.index)
		}
	})
}

// TestWaitCapped checks that wait= longer than Config.MaxWait is cut to
// it: the query answers, with the index it waited from.
func TestWaitCapped(t *testing.T) {
	l := startLiveWith(t, registry.Options{}, Config{MaxWait: time.Second})
	index := strconv.FormatUint(l.reg.Index(), 10)
	a := await(t, getAsync(context.Background(), "http://"+l.tcp+"/portmap?index="+index+"&wait=1h", nil))
	if a.status != 200 || strconv.FormatUint(a.index, 10) != index {
		t.Errorf("%d, index %d, want 200 and %s", a.status, a.index, index)
	}
}

// TestWaitFor checks the Go client's wait for a name to appear, and that
// WithPassing waits for a passing instance.
func TestWaitFor(t *testing.T) {
	l := startLive(t, registry.Options{})
	// A daemon's registry has changed before anyone asks (it registers
	// itself); this one must too, or WaitFor, asking before the
	// registration below, would get index 0, which it cannot wait from.
	registerInternal(t, l.reg, 21, registry.Service{Name: "other.example.com", Network: netid.TCP, Port: 9001})
	c := NewClient(l.tcp)
	type result struct {
		ins []Instance
		err error
	}
	done := make(chan result, 1)
	go func() {
		ins, err := c.WithPassing().WaitFor(context.Background(), "backup.example.com")
		done <- result{ins, err}
	}()
	svc := registerInternal(t, l.reg, 20, registry.Service{Name: "backup.example.com", Network: netid.TCP, Port: 9000, Checks: registry.Checks{TCP: true}})[0]
	select {
	case r := <-done:
		t.Fatalf("WaitFor returned for an instance not yet passing: %+v %v", r.ins, r.err)
	case <-time.After(quiet):
	}
	l.reg.SetHealth(svc, registry.Health{Status: registry.Passing})
	select {
	case r := <-done:
		if r.err != nil || len(r.ins) != 1 || r.ins[0].Health != "passing" {
			t.Errorf("WaitFor: %+v, %v", r.ins, r.err)
		}
	case <-time.After(patience):
		t.Fatal("WaitFor did not return")
	}
}

// TestWatchersBounded checks the caps on blocked requests, in total and
// from one source, and that loopback is not capped by source.
func TestWatchersBounded(t *testing.T) {
	obs := &routeCounter{}
	s := testServer(t, testRegistry(t), Config{MaxWatchers: 3, MaxWatchersPerSource: 1, Observer: obs})
	index := strconv.FormatUint(s.reg.Index(), 10)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		wg.Wait()
	}()
	serve := func(from, target string) <-chan int {
		out := make(chan int, 1)
		req := httptest.NewRequest("GET", target, nil).WithContext(ctx)
		req.RemoteAddr = from
		wg.Go(func() {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			out <- rec.Code
		})
		return out
	}
	block := "/portmap?index=" + index + "&wait=60s"
	code := func(ch <-chan int) int {
		select {
		case c := <-ch:
			return c
		case <-time.After(quiet):
			return 0 // still waiting
		}
	}
	if c := code(serve("192.0.2.1:1000", block)); c != 0 {
		t.Fatalf("first from 192.0.2.1: %d", c)
	}
	if c := code(serve("192.0.2.1:1001", "/portmap/events")); c != http.StatusTooManyRequests {
		t.Errorf("second from 192.0.2.1: %d, want 429", c)
	}
	for _, from := range []string{"127.0.0.1:1000", "127.0.0.1:1001"} {
		if c := code(serve(from, block)); c != 0 {
			t.Errorf("from %s: %d", from, c)
		}
	}
	if c := code(serve("192.0.2.2:1000", block)); c != http.StatusTooManyRequests {
		t.Errorf("past the total: %d, want 429", c)
	}
	if c := code(serve("192.0.2.2:1000", "/portmap")); c != http.StatusOK {
		t.Errorf("a listing without index= past the cap: %d", c)
	}
	// The daemon's metrics are told of both refusals.
	if _, limits := obs.lists(); !slices.Equal(limits, []string{"http watchers_per_source refused", "http watchers refused"}) {
		t.Errorf("limit hits observed %q, want the per-source cap, then the total", limits)
	}
}

// stream reads an event stream's messages, each as its fields.
type stream struct {
	sc   *bufio.Scanner
	body io.Closer
}

func openStream(t *testing.T, url string, header http.Header) *stream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), TypeEventStream) {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &stream{sc: bufio.NewScanner(resp.Body), body: resp.Body}
}

// next returns the next message's fields (event, id, data), skipping
// comments; it fails after patience.
func (s *stream) next(t *testing.T) map[string]string {
	t.Helper()
	got := make(chan map[string]string, 1)
	go func() {
		m := map[string]string{}
		for s.sc.Scan() {
			line := s.sc.Text()
			if line == "" {
				if len(m) > 0 && !(len(m) == 1 && m["retry"] != "") {
					got <- m
					return
				}
				continue
			}
			if strings.HasPrefix(line, ":") {
				continue
			}
			k, v, _ := strings.Cut(line, ": ")
			m[k] = v
		}
		got <- nil
	}()
	select {
	case m := <-got:
		if m == nil {
			t.Fatal("the stream ended")
		}
		return m
	case <-time.After(patience):
		s.body.Close()
		t.Fatal("no message")
	}
	return nil
}

// TestEventStream checks the stream's messages: the client's place at
// the start, an event for each change with its index as id and the
// reason of a removal, resuming with Last-Event-ID, a reset for an index
// no longer kept, and the remote view.
func TestEventStream(t *testing.T) {
	l := startLiveWith(t, registry.Options{FeedSize: 8}, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	url := "http://" + l.tcp + "/portmap/events"
	s := openStream(t, url, nil)
	start := s.next(t)
	if start["id"] != strconv.FormatUint(l.reg.Index(), 10) || start["event"] != "" {
		t.Fatalf("first message %q, want the index %d alone", start, l.reg.Index())
	}
	svcs := registerInternal(t, l.reg, 30, registry.Service{Name: "a.example.com", Network: netid.TCP, Port: 80, Checks: registry.Checks{TTL: time.Minute}})
	l.reg.SetHealth(svcs[0], registry.Health{Status: registry.Critical, Output: "no refresh"})
	l.reg.DropProcess(30, 30)
	for _, want := range []struct{ typ, reason string }{{"added", ""}, {"changed", `"reason":"no refresh"`}, {"removed", `"reason":"process exited"`}} {
		m := s.next(t)
		if m["event"] != want.typ || !strings.Contains(m["data"], `"service":"a.example.com"`) || !strings.Contains(m["data"], want.reason) {
			t.Errorf("message %q, want %s of a.example.com with %s", m, want.typ, want.reason)
		}
		if m["id"] != strconv.FormatUint(indexIn(t, m["data"]), 10) {
			t.Errorf("id %s is not the event's index: %s", m["id"], m["data"])
		}
	}
	t.Run("resume", func(t *testing.T) {
		r := openStream(t, url, http.Header{"Last-Event-ID": {start["id"]}})
		if m := r.next(t); m["event"] != "added" || !strings.Contains(m["data"], "a.example.com") {
			t.Errorf("resumed with %q", m)
		}
	})
	t.Run("reset", func(t *testing.T) {
		for i := range 10 {
			l.reg.Set(internal, registry.Entry{Prog: 300000 + uint32(i), Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})
		}
		r := openStream(t, url+"?index="+start["id"], nil)
		m := r.next(t)
		if m["event"] != EventReset || m["id"] != strconv.FormatUint(l.reg.Index(), 10) {
			t.Errorf("from an index no longer kept: %q, want a reset at %d", m, l.reg.Index())
		}
	})
	t.Run("remote view", func(t *testing.T) {
		r := openStream(t, url, http.Header{"X-Forwarded-For": {"192.0.2.7"}})
		r.next(t)
		registerInternal(t, l.reg, 31, registry.Service{Name: "secret.example.com", Network: netid.Unix, Path: "/run/secret.sock"},
			registry.Service{Name: "public.example.com", Network: netid.TCP, Port: 81})
		hidden := r.next(t)
		if hidden["event"] != "" || hidden["data"] != "" || hidden["id"] == "" {
			t.Errorf("a local socket's registration came to a remote viewer as %q", hidden)
		}
		if m := r.next(t); m["event"] != "added" || !strings.Contains(m["data"], "public.example.com") {
			t.Errorf("remote viewer got %q", m)
		}
	})
	t.Run("filter", func(t *testing.T) {
		r := openStream(t, url+"?service=wanted.example.com", nil)
		r.next(t)
		registerInternal(t, l.reg, 32, registry.Service{Name: "unwanted.example.com", Network: netid.TCP, Port: 82},
			registry.Service{Name: "Wanted.example.com", Network: netid.TCP, Port: 83})
		if m := r.next(t); m["data"] != "" {
			t.Errorf("another name's change came as %q", m)
		}
		if m := r.next(t); !strings.Contains(m["data"], "Wanted.example.com") {
			t.Errorf("got %q", m)
		}
	})
	t.Run("bad id", func(t *testing.T) {
		a := await(t, getAsync(context.Background(), url, http.Header{"Last-Event-ID": {"yesterday"}}))
		if a.status != http.StatusBadRequest {
			t.Errorf("%d %s", a.status, a.body)
		}
	})
}

func indexIn(t *testing.T, data string) uint64 {
	t.Helper()
	_, rest, _ := strings.Cut(data, `"index":`)
	end := strings.IndexAny(rest, ",}")
	n, err := strconv.ParseUint(rest[:max(end, 0)], 10, 64)
	if err != nil {
		t.Fatalf("no index in %s", data)
	}
	return n
}

// TestRefresh checks PUT on a registration: a TTL refreshed with a status
// and a note, and the refusals.
func TestRefresh(t *testing.T) {
	l := startLive(t, registry.Options{})
	child := sleeper(t, os.Geteuid())
	if code, body := l.register(t, os.Geteuid(), child.Process.Pid, "ttl.example.com", "8080", "ttl=1m"); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	if code, body := l.register(t, os.Geteuid(), child.Process.Pid, "plain.example.com", "8081"); code != 201 {
		t.Fatalf("register: %d %s", code, body)
	}
	ins, err := l.client.Refresh(context.Background(), "ttl.example.com", registry.Warning, "slow disk")
	if err != nil || len(ins) != 1 || ins[0].Health != "warning" || ins[0].HealthOutput != "slow disk" {
		t.Fatalf("Refresh: %+v, %v", ins, err)
	}
	if s := l.reg.LookupNamed("ttl.example.com")[0]; s.Health.Status != registry.Warning {
		t.Errorf("registry holds %+v", s.Health)
	}
	tests := []struct {
		name   string
		client *Client
		svc    string
		status int
	}{
		{"no ttl", l.client, "plain.example.com", http.StatusConflict},
		{"unregistered", l.client, "none.example.com", http.StatusNotFound},
		{"over TCP", NewClient(l.tcp), "ttl.example.com", http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.Refresh(context.Background(), tc.svc, registry.Passing, "")
			var he *Error
			if !errors.As(err, &he) || he.Status != tc.status {
				t.Errorf("Refresh: %v, want HTTP %d", err, tc.status)
			}
		})
	}
	if code, body := curl(t, os.Geteuid(), "--unix-socket", l.sock, "-X", "PUT", "http://localhost/portmap/ttl.example.com?status=fine"); code != 400 {
		t.Errorf("status=fine: %d %s", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	kept := make(chan error, 1)
	go func() { kept <- l.client.KeepAlive(ctx, "ttl.example.com", 50*time.Millisecond) }()
	deadline := time.Now().Add(patience)
	for l.reg.LookupNamed("ttl.example.com")[0].Health.Status != registry.Passing {
		if time.Now().After(deadline) {
			t.Fatal("KeepAlive did not refresh")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-kept; err != nil {
		t.Errorf("KeepAlive: %v", err)
	}
}

// TestResolve checks the Go client's resolution of DNS names by the DNS
// face's rules: passing TCP and UDP instances, each port once.
func TestResolve(t *testing.T) {
	l := startLive(t, registry.Options{})
	svcs := registerInternal(t, l.reg, 40,
		registry.Service{Name: "backup.example.com", Network: netid.TCP, Port: 9000},
		registry.Service{Name: "backup.example.com", Network: netid.UDP, Port: 9001},
		registry.Service{Name: "backup.example.com", Network: netid.TCP, Port: 9002, Checks: registry.Checks{TTL: time.Minute}},
		registry.Service{Name: "backup.example.com", Network: netid.Unix, Path: "/run/b.sock"})
	l.reg.SetHealth(svcs[2], registry.Health{Status: registry.Critical})
	for _, e := range []registry.Entry{
		{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1"},
		{Prog: 100003, Vers: 3, Netid: "tcp6", Addr: "::.8.1"},
		{Prog: 100003, Vers: 4, Netid: "udp", Addr: "0.0.0.0.8.2"},
	} {
		l.reg.Set(internal, e)
	}
	c := NewClient(l.tcp)
	host, _, _ := strings.Cut(l.tcp, ":")
	tests := []struct {
		name string
		want []Target
	}{
		{"_tcp.backup.example.com", []Target{{host, 9000, "tcp"}}},
		{"backup.example.com.", []Target{{host, 9000, "tcp"}, {host, 9001, "udp"}}},
		{"_v3._tcp.nfs.oncrpc.alt", []Target{{host, 2049, "tcp"}}},
		{"_udp.100003.oncrpc.alt", []Target{{host, 2050, "udp"}}},
	}
	for _, tc := range tests {
		got, err := c.Resolve(context.Background(), tc.name)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Resolve(%s) = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	var he *Error
	if _, err := c.Resolve(context.Background(), "_v3._udp.nfs.oncrpc.alt"); !errors.As(err, &he) || he.Status != 404 {
		t.Errorf("a version on no such protocol: %v", err)
	}
}

// TestWatchOutlivesTimeouts checks that a blocking query and an event
// stream last past the server's read and write timeouts, which bound
// every other request.
func TestWatchOutlivesTimeouts(t *testing.T) {
	reg := registry.New(registry.Options{})
	s := testServer(t, reg, Config{})
	s.http.ReadTimeout, s.http.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	base := "http://" + ln.Addr().String() + "/portmap"
	events := openStream(t, base+"/events", nil)
	events.next(t)
	query := getAsync(context.Background(), base+"?index="+strconv.FormatUint(reg.Index(), 10)+"&wait=60s", nil)
	time.Sleep(4 * s.http.ReadTimeout)
	registerInternal(t, reg, 50, registry.Service{Name: "late.example.com", Network: netid.TCP, Port: 80})
	if a := await(t, query); a.status != 200 || !strings.Contains(a.body, "late.example.com") {
		t.Errorf("blocking query: %d %s", a.status, a.body)
	}
	if m := events.next(t); !strings.Contains(m["data"], "late.example.com") {
		t.Errorf("event stream: %q", m)
	}
}
