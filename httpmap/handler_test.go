package httpmap

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime/lifetimetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var testNow = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

// testRegistry holds a fixed mix of named services and RPC entries, with
// names that need escaping in every format.
func testRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	reg := registry.New(registry.Options{Now: func() time.Time { return testNow }})
	internal := registry.Caller{Transport: registry.Internal}
	alice := registry.Process{PID: 4242, UID: 1000, GID: 1000, Start: 777, Exe: "/usr/bin/web,server"}
	if _, err := reg.RegisterNamed(internal, alice, []registry.Service{
		{Name: "App.Example.com", Network: netid.TCP, Port: 8080, Flags: registry.Exclusive | registry.Public},
		{Name: "App.Example.com", Network: netid.Unix, Path: "/run/app/<sock>&\"x\".sock", Flags: registry.Exclusive | registry.Public},
	}); err != nil {
		t.Fatal(err)
	}
	root := registry.Process{PID: 812, UID: 0, GID: 0, Start: 99, Exe: "/usr/sbin/secretd"}
	if _, err := reg.RegisterNamed(internal, root, []registry.Service{
		{Name: "backup@region.example.com", Network: netid.UDP, Port: 5353},
	}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []registry.Entry{
		{Prog: 100000, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.0.111"},
		{Prog: 100003, Vers: 3, Netid: "udp6", Addr: "::.8.1"},
		{Prog: 100005, Vers: 1, Netid: "local", Addr: "/run/mountd.sock"},
		{Prog: 200123, Vers: 1, Netid: "tcp", Addr: "127.0.0.1.39.16"},
	} {
		if ok, err := reg.Set(internal, e); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if ok, err := reg.Set(registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1000, PID: 31}}, registry.Entry{Prog: 300000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.0"}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	return reg
}

func testServer(t *testing.T, reg *registry.Registry, cfg Config) *Server {
	t.Helper()
	if cfg.RPCNames == "" {
		cfg.RPCNames = "testdata/rpc"
	}
	if cfg.Passwd == "" {
		cfg.Passwd = "testdata/passwd"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "testhost"
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	s, err := NewServer(reg, lifetimetest.Run(t, reg), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

const (
	local  = "127.0.0.1:40000"
	remote = "192.0.2.7:40000"
)

func TestListGolden(t *testing.T) {
	s := testServer(t, testRegistry(t), Config{})
	tests := []struct {
		name, method, target, accept, remote, body, ctype string
	}{
		{name: "csv-default", target: "/portmap", remote: local},
		{name: "csv-star", target: "/portmap", accept: "*/*", remote: local},
		{name: "csv-remote", target: "/portmap", remote: remote},
		{name: "xml", target: "/portmap", accept: "application/xml", remote: local},
		{name: "xml-text", target: "/portmap", accept: "text/xml", remote: local},
		{name: "xml-remote", target: "/portmap", accept: "application/xml", remote: remote},
		{name: "json", target: "/portmap?pretty", accept: "application/json", remote: local},
		{name: "json-compact", target: "/portmap", accept: "application/json", remote: local},
		{name: "json-remote", target: "/portmap?pretty", accept: "application/json", remote: remote},
		{name: "filter-service", target: "/portmap?service=app.example.COM", remote: local},
		{name: "filter-services", target: "/portmap?service=app.example.com&service=nfs.oncrpc.alt", remote: local},
		{name: "filter-user", target: "/portmap?user=1000", remote: local},
		{name: "filter-user-name", target: "/portmap?user=alice", remote: local},
		{name: "filter-pid", target: "/portmap?pid=812", remote: local},
		{name: "filter-prog-exe", target: "/portmap?prog=/usr/bin/web,server", remote: local},
		{name: "filter-prog-rpc", target: "/portmap?prog=nfs&prog=100005", remote: local},
		{name: "filter-and", target: "/portmap?user=0&prog=100000", remote: local},
		{name: "filter-post-form", method: "POST", target: "/portmap", body: "service=backup@region.example.com&user=0", ctype: "application/x-www-form-urlencoded", remote: local},
		{name: "filter-bad-pid", target: "/portmap?pid=x", remote: local},
		{name: "lookup", target: "/portmap/APP.example.com", remote: local},
		{name: "lookup-remote", target: "/portmap/app.example.com", remote: remote},
		{name: "lookup-rpc-number", target: "/portmap/100003.oncrpc.alt?pretty", accept: "application/json", remote: local},
		{name: "lookup-rpc-name", target: "/portmap/NFS.oncrpc.alt", remote: local},
		{name: "lookup-missing", target: "/portmap/nothing.example.com", remote: local},
		{name: "lookup-missing-json", target: "/portmap/nothing.example.com", accept: "application/json", remote: local},
		{name: "not-acceptable", target: "/portmap", accept: "image/png", remote: local},
		{name: "register-over-tcp", method: "POST", target: "/portmap", body: "service=a.example.com&port=1", ctype: "application/x-www-form-urlencoded", remote: local},
		{name: "deregister-over-tcp", method: "DELETE", target: "/portmap/app.example.com", remote: local},
		{name: "bad-method", method: "PUT", target: "/portmap", remote: local},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req := httptest.NewRequest(method, tt.target, strings.NewReader(tt.body))
			req.RemoteAddr = tt.remote
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			var b bytes.Buffer
			fmt.Fprintf(&b, "%d %s\n\n", rec.Code, rec.Header().Get("Content-Type"))
			b.Write(rec.Body.Bytes())
			golden(t, tt.name+".golden", b.Bytes())
		})
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct{ accept, want string }{
		{"", TypeCSV},
		{"*/*", TypeCSV},
		{"text/*", TypeCSV},
		{"application/json", TypeJSON},
		{"application/*", TypeXML},
		{"text/xml", TypeTextXML},
		{"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8", TypeHTML},
		{"application/json;q=0.5, text/csv;q=0.4", TypeJSON},
		{"text/csv;q=0, */*", TypeXML},
		{"image/png", ""},
		{"text/html;q=0", ""},
		{strings.Repeat(",", 10000) + "application/json", TypeJSON},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			if got := negotiate(tt.accept); got != tt.want {
				t.Fatalf("negotiate(%q) = %q, want %q", tt.accept, got, tt.want)
			}
		})
	}
}

func TestExternalView(t *testing.T) {
	proxy := mustPrefix(t, "10.0.0.0/8")
	s := testServer(t, registry.New(registry.Options{}), Config{TrustedProxies: proxy})
	tests := []struct {
		name, remote string
		xff          []string
		want         bool
	}{
		{"loopback", "127.0.0.1:1", nil, false},
		{"loopback v6", "[::1]:1", nil, false},
		{"remote", "192.0.2.1:1", nil, true},
		{"untrusted proxy's forwarded-for ignored", "192.0.2.1:1", []string{"127.0.0.1"}, true},
		{"trusted proxy for a local client", "10.1.1.1:1", []string{"127.0.0.1"}, false},
		{"trusted proxy for a remote client", "10.1.1.1:1", []string{"127.0.0.1, 192.0.2.9"}, true},
		{"trusted chain", "10.1.1.1:1", []string{"192.0.2.9", "10.2.2.2"}, true},
		{"unreadable forwarded-for", "10.1.1.1:1", []string{"bogus"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/portmap", nil)
			req.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := s.external(senderFrom(req), req); got != tt.want {
				t.Fatalf("external = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStylesheetRendersXML(t *testing.T) {
	xsltproc, err := exec.LookPath("xsltproc")
	if err != nil {
		t.Skip("xsltproc not installed: apt-get install xsltproc")
	}
	s := testServer(t, testRegistry(t), Config{})
	dir := t.TempDir()
	for _, f := range []struct{ target, accept, file string }{
		{"/portmap", "application/xml", "portmap.xml"},
		{xslPath, "", "portmap.xsl"},
	} {
		req := httptest.NewRequest("GET", f.target, nil)
		req.RemoteAddr = local
		req.Header.Set("Accept", f.accept)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d", f.target, rec.Code)
		}
		if err := os.WriteFile(filepath.Join(dir, f.file), rec.Body.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(xsltproc, "--nonet", filepath.Join(dir, "portmap.xsl"), filepath.Join(dir, "portmap.xml")).CombinedOutput()
	if err != nil {
		t.Fatalf("xsltproc: %v\n%s", err, out)
	}
	golden(t, "xsl.golden", out)
	for _, want := range []string{"<title>Running applications</title>", "<td>App.Example.com</td>", "<td>nfs.oncrpc.alt</td>", "&lt;sock&gt;&amp;"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("rendered page lacks %q", want)
		}
	}
}

func mustPrefix(t *testing.T, s ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}
