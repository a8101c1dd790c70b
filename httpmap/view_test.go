package httpmap

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// What a viewer on another host may see, stated independently of the code
// under test: a registry seeded twice, once with everything and once with
// only what the rule allows (TCP and UDP ports, and removals of those).
// Everything else carries one of these secrets somewhere: an AF_UNIX path
// or a pid, uid or program of a process that has only such registrations.
var remoteSecrets = []string{"/run/secret", "5119", "5120", "6001", "1002", "hiddend"}

// seedStep is one change to the registry; hidden steps add only what a
// remote viewer must not see.
type seedStep struct {
	hidden bool
	do     func(t *testing.T, reg *registry.Registry)
}

func seedViewRegistry(t *testing.T, withHidden bool) *registry.Registry {
	t.Helper()
	reg := registry.New(registry.Options{Now: func() time.Time { return testNow }})
	internal := registry.Caller{Transport: registry.Internal}
	alice := registry.Process{PID: 4242, UID: 1000, GID: 1000, Start: 777, Exe: "/usr/bin/web"}
	hider := registry.Process{PID: 5119, UID: 1002, GID: 1002, Start: 888, Exe: "/usr/sbin/hiddend"}
	goneMixed := registry.Process{PID: 7001, UID: 1000, GID: 1000, Start: 1, Exe: "/usr/bin/web"}
	goneHider := registry.Process{PID: 5120, UID: 1002, GID: 1002, Start: 2, Exe: "/usr/sbin/hiddend"}
	named := func(p registry.Process, svcs ...registry.Service) func(*testing.T, *registry.Registry) {
		return func(t *testing.T, reg *registry.Registry) {
			if _, err := reg.RegisterNamed(internal, p, svcs); err != nil {
				t.Fatal(err)
			}
		}
	}
	tcp := func(name string, port uint16) registry.Service {
		return registry.Service{Name: name, Network: netid.TCP, Port: port, Flags: registry.Public}
	}
	unix := func(name, path string) registry.Service {
		return registry.Service{Name: name, Network: netid.Unix, Path: path, Flags: registry.Public | registry.Exclusive}
	}
	set := func(c registry.Caller, e registry.Entry) func(*testing.T, *registry.Registry) {
		return func(t *testing.T, reg *registry.Registry) {
			if ok, err := reg.Set(c, e); !ok || err != nil {
				t.Fatal(e, ok, err)
			}
		}
	}
	prune := func(c registry.Caller, e registry.Entry) func(*testing.T, *registry.Registry) {
		return func(t *testing.T, reg *registry.Registry) {
			set(c, e)(t, reg)
			got, ok := reg.LookupExact(e.Prog, e.Vers, e.Netid)
			if !ok || !reg.Prune(got, "nothing is bound to it") {
				t.Fatalf("prune %v failed", e)
			}
		}
	}
	drop := func(p registry.Process) func(*testing.T, *registry.Registry) {
		return func(t *testing.T, reg *registry.Registry) { reg.DropProcess(p.PID, p.Start) }
	}
	// health sets the health of name's instance at endpoint.
	health := func(name, endpoint string, h registry.Health) func(*testing.T, *registry.Registry) {
		return func(t *testing.T, reg *registry.Registry) {
			for _, sv := range reg.LookupNamed(name) {
				if sv.Endpoint() == endpoint && reg.SetHealth(sv, h) {
					return
				}
			}
			t.Fatalf("no health change of %s at %s", name, endpoint)
		}
	}
	checked := func(sv registry.Service, c registry.Checks) registry.Service {
		sv.Checks = c
		return sv
	}
	user1002 := registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1002, PID: 6001}}
	steps := []seedStep{
		{do: named(alice, tcp("app.example.com", 8080), registry.Service{Name: "udp.example.com", Network: netid.UDP, Port: 5353})},
		{hidden: true, do: named(alice, unix("app.example.com", "/run/secret/app.sock"), unix("sock-only.example.com", "/run/secret/only.sock"))},
		{hidden: true, do: named(hider, unix("secret.example.com", "/run/secret/s.sock"))},
		{do: set(internal, registry.Entry{Prog: 100000, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.0.111"})},
		{hidden: true, do: set(internal, registry.Entry{Prog: 100005, Vers: 1, Netid: "local", Addr: "/run/secret/mountd.sock"})},
		{do: set(internal, registry.Entry{Prog: 100005, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.2.236"})},
		// Entries no client could have SET, as a journal or rpcbind's
		// warm-start files from an older version may bring back.
		{hidden: true, do: set(internal, registry.Entry{Prog: 300001, Vers: 1, Netid: "x", Addr: "/run/secret/x"})},
		{hidden: true, do: set(internal, registry.Entry{Prog: 300002, Vers: 1, Netid: "tcp", Addr: "/run/secret/not-a-uaddr"})},
		{hidden: true, do: set(user1002, registry.Entry{Prog: 300003, Vers: 1, Netid: "unix", Addr: "/run/secret/u.sock"})},
		{do: set(internal, registry.Entry{Prog: 300004, Vers: 1, Netid: "tcp6", Addr: "::1.15.160"})},
		// Removals, oldest first.
		{do: prune(internal, registry.Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})},
		{hidden: true, do: prune(user1002, registry.Entry{Prog: 400001, Vers: 1, Netid: "local", Addr: "/run/secret/gone-rpc.sock"})},
		{hidden: true, do: prune(internal, registry.Entry{Prog: 400002, Vers: 1, Netid: "tcp /run/secret/trick", Addr: "0.0.0.0.4.2"})},
		{do: named(goneMixed, tcp("gone.example.com", 9000))},
		{hidden: true, do: named(goneMixed, unix("gone.example.com", "/run/secret/gone.sock"))},
		{hidden: true, do: named(goneHider, unix("gone-sock.example.com", "/run/secret/gone-sock.sock"))},
		{do: drop(goneMixed)},
		{hidden: true, do: drop(goneHider)},
		// Health: a checked port's status and output are shown as
		// they are; a socket's checks and what they found are not.
		{do: named(alice, checked(tcp("checked.example.com", 8081), registry.Checks{TCP: true, HTTP: "/healthz", Interval: 5 * time.Second}))},
		{do: health("checked.example.com", "8081", registry.Health{Status: registry.Warning, Output: "HTTP 429 from /healthz"})},
		{hidden: true, do: named(hider, checked(unix("checked-sock.example.com", "/run/secret/checked.sock"), registry.Checks{HTTP: "/hiddend/health"}))},
		{hidden: true, do: health("checked-sock.example.com", "/run/secret/checked.sock", registry.Health{Status: registry.Warning, Output: "HTTP 429 from /run/secret/checked.sock"})},
		// A TCPMUX hand-off socket in the abstract namespace.
		{hidden: true, do: named(hider, checked(registry.Service{Name: "mux.example.com", Network: netid.Unix, Path: "@/run/secret/mux", Flags: registry.TCPMux | registry.MuxHelp},
			registry.Checks{TTL: time.Minute}))},
	}
	for _, st := range steps {
		if st.hidden && !withHidden {
			continue
		}
		st.do(t, reg)
	}
	return reg
}

// TestRemoteViewIsTheRule: for every route and every format, a viewer on
// another host gets exactly what a local viewer gets from a registry that
// holds only what the rule allows, and never a secret of the rest.
func TestRemoteViewIsTheRule(t *testing.T) {
	full := testServer(t, seedViewRegistry(t, true), Config{})
	allowed := testServer(t, seedViewRegistry(t, false), Config{})
	routes := []struct {
		name, method, target, body string
	}{
		{name: "list", target: "/portmap"},
		{name: "head", method: http.MethodHead, target: "/portmap"},
		{name: "httportmap post", method: http.MethodPost, target: "/portmap", body: "user=1000"},
		{name: "filter user", target: "/portmap?user=1000"},
		{name: "filter hidden user", target: "/portmap?user=1002"},
		{name: "filter hidden pid", target: "/portmap?pid=5119"},
		{name: "filter removals only", target: "/portmap?service=."},
		{name: "name with both", target: "/portmap/app.example.com"},
		{name: "name with a socket only", target: "/portmap/sock-only.example.com"},
		{name: "name of a hidden process", target: "/portmap/secret.example.com"},
		{name: "rpc name with a local entry", target: "/portmap/mountd.oncrpc.alt"},
		{name: "rpc number with a local entry", target: "/portmap/100005.oncrpc.alt"},
		{name: "rpc on a netid not IP", target: "/portmap/300001.oncrpc.alt"},
		{name: "rpc tcp without a uaddr", target: "/portmap/300002.oncrpc.alt"},
		{name: "rpc on unix", target: "/portmap/300003.oncrpc.alt"},
		{name: "passing only", target: "/portmap?passing"},
		{name: "name passing only", target: "/portmap/checked.example.com?passing"},
		{name: "blocking query of the past", target: "/portmap?index=1&wait=1s"},
	}
	formats := []struct {
		name, accept, query string
	}{
		{name: "csv default"},
		{name: "csv", accept: TypeCSV},
		{name: "xml", accept: TypeXML},
		{name: "text xml", accept: TypeTextXML},
		{name: "json", accept: TypeJSON},
		{name: "html", accept: TypeHTML},
		{name: "format=json", query: "format=json"},
		{name: "csv for a browser", accept: browserAccept, query: "format=csv"},
	}
	// The page says that local sockets are hidden, and the removal counts
	// are totals: those are the only differences allowed.
	note := regexp.MustCompile(`; local sockets hidden from this remote view`)
	counts := regexp.MustCompile(`"removed": ?\{[^}]*\}`)
	// The registries differ in how many changes made them, so the index
	// the page's event stream starts from differs too.
	index := regexp.MustCompile(`index=\d+`)
	get := func(s *Server, from, method, target, accept, body string) (int, http.Header, string) {
		if method == "" {
			method = http.MethodGet
		}
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.RemoteAddr = from
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Code, rec.Header(), rec.Body.String()
	}
	for _, rt := range routes {
		for _, f := range formats {
			t.Run(rt.name+"/"+f.name, func(t *testing.T) {
				target := rt.target
				if f.query != "" {
					sep := "?"
					if strings.Contains(target, "?") {
						sep = "&"
					}
					target += sep + f.query
				}
				code, hdr, got := get(full, remote, rt.method, target, f.accept, rt.body)
				wantCode, wantHdr, want := get(allowed, local, rt.method, target, f.accept, rt.body)
				for _, secret := range remoteSecrets {
					// The page's links repeat the viewer's own query.
					if strings.Contains(got, secret) && !strings.Contains(target, secret) {
						t.Errorf("remote view shows %q:\n%s", secret, got)
					}
				}
				got, want = index.ReplaceAllString(got, ""), index.ReplaceAllString(want, "")
				if got, want = note.ReplaceAllString(got, ""), note.ReplaceAllString(want, ""); code != wantCode ||
					counts.ReplaceAllString(got, "") != counts.ReplaceAllString(want, "") ||
					hdr.Get("Content-Type") != wantHdr.Get("Content-Type") {
					t.Errorf("remote view differs from what the rule allows:\n--- remote (%d %s)\n%s\n--- allowed (%d %s)\n%s",
						code, hdr.Get("Content-Type"), got, wantCode, wantHdr.Get("Content-Type"), want)
				}
			})
		}
	}
	t.Run("event stream", func(t *testing.T) {
		// The whole history of each registry, as the stream sends it
		// to a client that resumes from its start and then leaves.
		events := func(s *Server, from string) string {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, eventsPath, nil)
			req.RemoteAddr = from
			req.Header.Set("Last-Event-ID", "0")
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			return rec.Body.String()
		}
		got, want := events(full, remote), events(allowed, local)
		for _, secret := range remoteSecrets {
			if strings.Contains(got, secret) {
				t.Errorf("remote event stream shows %q:\n%s", secret, got)
			}
		}
		// What the remote viewer may not see comes as its id alone;
		// the rest is the allowed registry's history, but for the
		// indices, since the registries made different numbers of
		// changes.
		shown := func(stream string) string {
			var out []string
			for _, msg := range strings.Split(stream, "\n\n") {
				if strings.HasPrefix(msg, "id: ") && !strings.Contains(msg, "\n") {
					continue
				}
				msg = regexp.MustCompile(`(?m)^id: \d+$`).ReplaceAllString(msg, "")
				out = append(out, regexp.MustCompile(`"index":\d+`).ReplaceAllString(msg, ""))
			}
			return strings.Join(out, "\n\n")
		}
		if !strings.Contains(want, `"health":"warning"`) || !strings.Contains(want, "event: removed") {
			t.Fatalf("the allowed history lacks a change of health or a removal, so the test proves nothing:\n%s", want)
		}
		if shown(got) != shown(want) {
			t.Errorf("remote event stream differs from what the rule allows:\n--- remote\n%s\n--- allowed\n%s", got, want)
		}
	})
	t.Run("local viewers see it all", func(t *testing.T) {
		_, _, all := get(full, local, "", "/portmap?pretty", TypeJSON, "")
		for _, secret := range remoteSecrets {
			if !strings.Contains(all, secret) {
				t.Errorf("the seeded registry lacks %q, so the test proves nothing about it", secret)
			}
		}
		_, _, remoteAll := get(full, remote, "", "/portmap?pretty", TypeJSON, "")
		if got, want := counts.FindString(remoteAll), counts.FindString(all); got != want || !strings.Contains(got, `"named": 3`) {
			t.Errorf("remote removal counts %q, want the totals %q", got, want)
		}
	})
}

// TestRemovedInstance reads back what the registry writes for a removal;
// anything in another form is hidden from remote viewers.
func TestRemovedInstance(t *testing.T) {
	tests := []struct {
		kind, what string
		visible    bool
	}{
		{"named", "app.example.com tcp 8080 pid 42", true},
		{"named", "app.example.com udp 53 pid 42", true},
		{"named", "app.example.com unix /run/app.sock pid 42", false},
		{"named", "app.example.com tcp 8080", false},
		{"rpc", "prog 100003 vers 3 tcp 0.0.0.0.8.1 pid 42", true},
		{"rpc", "prog 100003 vers 3 udp6 ::.8.1", true},
		{"rpc", "prog 100003 vers 3 local /run/x.sock pid 42", false},
		{"rpc", "prog 100003 vers 3 tcp /run/x.sock pid 42", false},
		{"rpc", "prog 100003 vers 3 x 0.0.0.0.8.1", false},
		{"rpc", "prog 100003 vers 3 tcp /run/x 0.0.0.0.8.1 pid 42", false},
		{"rpc", "prog 100003 vers 3 tcp 0.0.0.0.8.1 uid 42", false},
		{"other", "app.example.com tcp 8080 pid 42", false},
	}
	for _, tt := range tests {
		t.Run(tt.kind+" "+tt.what, func(t *testing.T) {
			in, ok := removedInstance(Removal{Kind: tt.kind, What: tt.what})
			if got := ok && reachable(in); got != tt.visible {
				t.Fatalf("visible = %v (%+v), want %v", got, in, tt.visible)
			}
		})
	}
}

// TestRemoteViewOfRemovalsFromTheRegistry: the registry's own descriptions
// of removals, not hand-written ones, are read back, so a change of their
// form shows here rather than hiding every removal silently.
func TestRemoteViewOfRemovalsFromTheRegistry(t *testing.T) {
	s := testServer(t, seedViewRegistry(t, true), Config{})
	req := httptest.NewRequest("GET", "/portmap?service=.&pretty", nil)
	req.RemoteAddr = remote
	req.Header.Set("Accept", TypeJSON)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	for _, want := range []string{`"what": "prog 400000 vers 1 tcp 0.0.0.0.4.1"`, `"what": "gone.example.com tcp 9000 pid 7001"`} {
		if !bytes.Contains(rec.Body.Bytes(), []byte(want)) {
			t.Errorf("remote removals lack %s:\n%s", want, rec.Body.String())
		}
	}
}
