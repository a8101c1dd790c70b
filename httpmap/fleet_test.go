package httpmap

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// fakeFleet answers as a fleet's store would, from instances it holds,
// and remembers the names it was asked for.
type fakeFleet struct {
	ins       []FleetInstance
	err       error
	truncated bool

	mu    sync.Mutex
	asked [][]string
}

func (f *fakeFleet) Lookup(_ context.Context, names []string) (FleetAnswer, error) {
	f.mu.Lock()
	f.asked = append(f.asked, names)
	f.mu.Unlock()
	if f.err != nil {
		return FleetAnswer{}, f.err
	}
	var out []FleetInstance
	for _, in := range f.ins {
		if len(names) == 0 || slices.Contains(names, strings.ToLower(in.Service)) {
			out = append(out, in)
		}
	}
	return FleetAnswer{Instances: out, Truncated: f.truncated}, nil
}

// testFleet holds what two hosts published: a named service on both,
// one critical, and NFS on one.
func testFleet() *fakeFleet {
	since := time.Date(2026, 5, 4, 11, 0, 0, 0, time.UTC)
	return &fakeFleet{ins: []FleetInstance{
		{Host: "alpha", Addresses: []string{"192.0.2.1", "2001:db8::1"}, Instance: Instance{Service: "backup.example.com", UID: ptr(0), Port: "9000", Protocol: netid.TCP, Since: since, Health: "passing"}},
		{Host: "beta", Addresses: []string{"192.0.2.2"}, Instance: Instance{Service: "backup.example.com", UID: ptr(1000), Port: "9100", Protocol: netid.TCP, Since: since, Health: "critical"}},
		{Host: "beta", Addresses: []string{"192.0.2.2"}, Instance: Instance{Service: "100003.oncrpc.alt", UID: ptr(0), Port: "2049", Protocol: netid.TCP, Since: since, Health: "passing",
			RPC: &RPCInfo{Program: 100003, Version: 3, Netid: netid.TCP, Address: "0.0.0.0.8.1", Owner: "superuser"}}},
	}}
}

func TestFleetGolden(t *testing.T) {
	s := testServer(t, testRegistry(t), Config{Fleet: testFleet()})
	for _, tt := range []struct{ name, target, accept string }{
		{"fleet-csv", "/portmap?scope=fleet", ""},
		{"fleet-xml", "/portmap?scope=fleet", TypeXML},
		{"fleet-json", "/portmap?scope=fleet", TypeJSON},
		{"fleet-lookup-rpc-name", "/portmap/NFS.oncrpc.alt?scope=fleet", TypeJSON},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := csvGet(s, tt.target, tt.accept)
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", tt.target, rec.Code, rec.Body)
			}
			golden(t, tt.name+".txt", rec.Body.Bytes())
		})
	}
}

// TestFleetQueries covers what scope=fleet asks the store for, which
// filters apply after it, and every refusal.
func TestFleetQueries(t *testing.T) {
	tests := []struct {
		name   string
		fleet  *fakeFleet
		target string
		code   int
		// asked is what the store was asked for, nil when it was not.
		asked []string
		// rows are the CSV rows' service and host, or a word of the
		// error's body.
		want []string
	}{
		{name: "every name", target: "/portmap?scope=fleet", code: 200, asked: []string{},
			want: []string{"backup.example.com alpha", "backup.example.com beta", "100003.oncrpc.alt beta"}},
		{name: "a name", target: "/portmap/Backup.Example.com?scope=fleet", code: 200, asked: []string{"backup.example.com"},
			want: []string{"backup.example.com alpha", "backup.example.com beta"}},
		{name: "service= names", target: "/portmap?scope=fleet&service=backup.example.com&service=nfs.oncrpc.alt", code: 200,
			asked: []string{"backup.example.com", "100003.oncrpc.alt"},
			want:  []string{"backup.example.com alpha", "backup.example.com beta", "nfs.oncrpc.alt beta"}},
		{name: "a host", target: "/portmap?scope=fleet&host=beta", code: 200, asked: []string{},
			want: []string{"backup.example.com beta", "100003.oncrpc.alt beta"}},
		{name: "passing only", target: "/portmap/backup.example.com?scope=fleet&passing", code: 200, asked: []string{"backup.example.com"},
			want: []string{"backup.example.com alpha"}},
		{name: "a uid", target: "/portmap/backup.example.com?scope=fleet&uid=1000", code: 200, asked: []string{"backup.example.com"},
			want: []string{"backup.example.com beta"}},
		{name: "scope=local is the host's", target: "/portmap/app.example.com?scope=local", code: 200, want: []string{"App.Example.com", "App.Example.com"}},
		{name: "a name nobody publishes", target: "/portmap/none.example.com?scope=fleet", code: 404, asked: []string{"none.example.com"}, want: []string{"no such registration"}},
		{name: "a program /etc/rpc does not name", target: "/portmap/nosuch.oncrpc.alt?scope=fleet", code: 404, want: []string{"no such registration"}},
		{name: "another scope", target: "/portmap?scope=world", code: 400, want: []string{`"local" or "fleet"`}},
		{name: "a blocking query", target: "/portmap?scope=fleet&index=5", code: 400, want: []string{"blocking queries watch this host only"}},
		{name: "a bad filter", target: "/portmap?scope=fleet&pid=x", code: 400, want: []string{"bad pid filter"}},
		{name: "no fleet", fleet: nil, target: "/portmap?scope=fleet", code: 501, want: []string{"--etcd"}},
		{name: "the store does not answer", fleet: &fakeFleet{err: &FleetError{Err: errors.New("context deadline exceeded")}}, target: "/portmap?scope=fleet", code: 503,
			asked: []string{}, want: []string{"unavailable: context deadline exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fleet
			if f == nil && !strings.HasPrefix(tt.name, "no fleet") {
				f = testFleet()
			}
			cfg := Config{}
			if f != nil {
				cfg.Fleet = f
			}
			s := testServer(t, testRegistry(t), cfg)
			rec := csvGet(s, tt.target, "")
			if rec.Code != tt.code {
				t.Fatalf("%s: %d, want %d: %s", tt.target, rec.Code, tt.code, rec.Body)
			}
			if f != nil {
				switch {
				case tt.asked == nil && len(f.asked) != 0:
					t.Errorf("the store was asked %v", f.asked)
				case tt.asked != nil && (len(f.asked) != 1 || !slices.Equal(append([]string{}, f.asked[0]...), tt.asked)):
					t.Errorf("the store was asked %v, want %v", f.asked, tt.asked)
				}
			}
			body := rec.Body.String()
			if tt.code != 200 {
				for _, w := range tt.want {
					if !strings.Contains(body, w) {
						t.Errorf("body %q lacks %q", body, w)
					}
				}
				return
			}
			rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
			if err != nil {
				t.Fatalf("not CSV: %v\n%s", err, body)
			}
			// A fleet listing's last column is the host; a local
			// listing's is the versions.
			fleetRows := slices.Index(rows[0], "host") == 6
			var got []string
			for _, row := range rows[1:] {
				if fleetRows {
					got = append(got, row[0]+" "+row[6])
				} else {
					got = append(got, row[0])
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("rows %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFleetPage shows a browser the fleet's instances with their hosts,
// and says when the listing was cut.
func TestFleetPage(t *testing.T) {
	f := testFleet()
	f.truncated = true
	s := testServer(t, testRegistry(t), Config{Fleet: f})
	rec := csvGet(s, "/portmap/backup.example.com?scope=fleet", TypeHTML)
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	for _, want := range []string{"<code>backup.example.com</code> in the fleet", "<td>alpha</td>", "<code>2001:db8::1</code>", "critical", "(the first of more)", `href="/portmap/backup.example.com"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	if rec.Header().Get(TruncatedHeader) != "true" {
		t.Errorf("no %s header", TruncatedHeader)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}

// TestClientLookupFleet looks a name up across the fleet through the Go
// client, as portmapctl lookup --fleet does.
func TestClientLookupFleet(t *testing.T) {
	s := testServer(t, testRegistry(t), Config{Fleet: testFleet()})
	ts := httptest.NewServer(s)
	defer ts.Close()
	c := NewClient(strings.TrimPrefix(ts.URL, "http://"))
	ctx := context.Background()
	ins, err := c.WithPassing().LookupFleet(ctx, "backup.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || ins[0].Host != "alpha" || ins[0].Port != "9000" || !slices.Equal(ins[0].Addresses, []string{"192.0.2.1", "2001:db8::1"}) {
		t.Errorf("passing instances: %+v", ins)
	}
	_, err = c.LookupFleet(ctx, "none.example.com")
	var he *Error
	if !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("a name nobody publishes: %v", err)
	}
}

// TestExternal publishes only what another host's viewer may see, and
// none of the process behind it.
func TestExternal(t *testing.T) {
	p := registry.Process{PID: 4242, UID: 1000, GID: 1000, Start: 777, Exe: "/usr/bin/web"}
	in, ok := ExternalService(registry.Service{Name: "a.example.com", Network: netid.TCP, Port: 80, Process: p, Flags: registry.Public})
	if !ok || in.PID != 0 || in.StartTime != 0 || in.GID != nil || in.Prog != "/usr/bin/web" || in.Port != "80" {
		t.Errorf("a public TCP service: %+v, %v", in, ok)
	}
	if _, ok := ExternalService(registry.Service{Name: "a.example.com", Network: netid.Unix, Path: "/run/a.sock", Process: p}); ok {
		t.Error("an AF_UNIX service is published")
	}
	in, ok = ExternalEntry(registry.Entry{Prog: 100003, Vers: 3, Netid: "tcp6", Addr: "::.8.1", PID: 77, Owner: "superuser"})
	if !ok || in.Service != "100003.oncrpc.alt" || in.PID != 0 || in.Port != "2049" {
		t.Errorf("an RPC entry: %+v, %v", in, ok)
	}
	for _, e := range []registry.Entry{
		{Prog: 100005, Vers: 1, Netid: "local", Addr: "/run/mountd.sock"},
		{Prog: 100005, Vers: 1, Netid: "tcp", Addr: "not an address"},
	} {
		if _, ok := ExternalEntry(e); ok {
			t.Errorf("%+v is published", e)
		}
	}
	b, _ := json.Marshal(FleetInstance{Host: "alpha", Instance: in})
	for _, key := range []string{`"host":"alpha"`, `"service":"100003.oncrpc.alt"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	if strings.Contains(string(b), `"pid"`) {
		t.Errorf("JSON %s has a pid", b)
	}
}
