package main

import (
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/registry"
)

// startHTTP serves the HTTP face on a local socket of its own and returns
// the socket's path and the registry behind it.
func startHTTP(t *testing.T) (string, *registry.Registry) {
	t.Helper()
	reg := registry.New(registry.Options{})
	sock := filepath.Join(t.TempDir(), "portmapd.sock")
	srv, err := httpmap.NewServer(reg, httpmap.Config{HTTPAddr: httpmap.Off, SocketPath: sock, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := httpmap.ListenUnix(sock, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock, reg
}

func namedCount(reg *registry.Registry, name string) int { return len(reg.LookupNamed(name)) }

// TestRegisterLastsAsLongAsTheCommand: the registration exists while the
// command runs and is gone when it ends; the command's exit status is
// portmapctl's.
func TestRegisterLastsAsLongAsTheCommand(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed: apt-get install curl")
	}
	sock, reg := startHTTP(t)
	r := runCtl(t, "register", "--http-socket", sock, "job.example.com", "9100", "--",
		"sh", "-c", "curl -s --unix-socket "+sock+" http://localhost/portmap/job.example.com; exit 3")
	if r.Exit != 3 {
		t.Fatalf("exit %d, want the command's 3; stderr: %s", r.Exit, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "job.example.com,") || !strings.Contains(r.Stdout, ",9100") {
		t.Errorf("the command did not see its registration:\n%s", r.Stdout)
	}
	if n := namedCount(reg, "job.example.com"); n != 0 {
		t.Errorf("%d registrations left after the command ended", n)
	}
	t.Run("lookup and list", func(t *testing.T) {
		r := runCtl(t, "lookup", "--http-socket", sock, "nothing.example.com")
		if r.Exit == 0 {
			t.Errorf("lookup of an unregistered name succeeded: %+v", r)
		}
		r = runCtl(t, "list", "--http-socket", sock)
		if r.Exit != 0 {
			t.Errorf("list: %+v", r)
		}
	})
	t.Run("refusal is reported", func(t *testing.T) {
		r := runCtl(t, "register", "--http-socket", sock, "nfs.oncrpc.alt", "9100", "--", "true")
		if r.Exit == 0 || !strings.Contains(r.Stderr, "oncrpc.alt") {
			t.Errorf("registering a reserved name: exit %d, stderr %q", r.Exit, r.Stderr)
		}
	})
}

// TestRemovals shows the daemon's own removals, RPC and named, and their
// counts; removals that callers asked for are not among them.
func TestRemovals(t *testing.T) {
	sock, reg := startHTTP(t)
	r := runCtl(t, "removals", "--http-socket", sock)
	if r.Exit != 0 || r.Stdout != "removed since portmapd started: 0 rpc, 0 named\n" {
		t.Fatalf("before any removal: %+v", r)
	}
	root := registry.Caller{Transport: registry.Local, Cred: &registry.Cred{PID: 1}}
	reg.Set(root, registry.Entry{Prog: 400000, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.4.1"})
	e, _ := reg.LookupExact(400000, 1, "tcp")
	reg.Prune(e, "registering process 1 has exited and nothing is bound to tcp port 1025")
	p := registry.Process{PID: 77, UID: 1000, Start: 5}
	reg.RegisterNamed(registry.Caller{Transport: registry.Internal}, p, []registry.Service{{Name: "gone.example.com", Network: registry.NetTCP, Port: 9000}})
	reg.DropProcess(p.PID, p.Start)
	reg.Set(root, registry.Entry{Prog: 400001, Vers: 1, Netid: "udp", Addr: "0.0.0.0.4.2"})
	reg.Unset(root, 400001, 1, "")

	r = runCtl(t, "removals", "--http-socket", sock)
	if r.Exit != 0 {
		t.Fatalf("removals: %+v", r)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	want := []struct{ what, reason string }{
		{"rpc    prog 400000 vers 1 tcp 0.0.0.0.4.1 pid 1", "nothing is bound to tcp port 1025"},
		{"named  gone.example.com tcp 9000 pid 77", "process exited"},
	}
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "TIME ") || lines[3] != "removed since portmapd started: 1 rpc, 1 named" {
		t.Fatalf("removals printed:\n%s", r.Stdout)
	}
	for i, w := range want {
		if !strings.Contains(lines[i+1], w.what) || !strings.HasSuffix(lines[i+1], w.reason) {
			t.Errorf("line %d %q, want %q ... %q", i+1, lines[i+1], w.what, w.reason)
		}
	}
}

// TestListShowsBothFormsOfAName: a name registered in Unicode is held in
// its ASCII form; list and lookup show the Unicode form beside it, and
// lookup finds it by either.
func TestListShowsBothFormsOfAName(t *testing.T) {
	sock, reg := startHTTP(t)
	p := registry.Process{PID: 77, UID: 1000, Start: 5}
	if _, err := reg.RegisterNamed(registry.Caller{Transport: registry.Internal}, p, []registry.Service{
		{Name: "xn--caf-dma.example.com", Network: registry.NetTCP, Port: 9000},
		{Name: "plain.example.com", Network: registry.NetTCP, Port: 9001},
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"list", []string{"list"}, []string{"café.example.com (xn--caf-dma.example.com)  ", "\nplain.example.com  "}},
		{"lookup by the Unicode form", []string{"lookup", "café.example.com"}, []string{"café.example.com (xn--caf-dma.example.com)  "}},
		{"lookup by the ASCII form", []string{"lookup", "xn--caf-dma.example.com"}, []string{"café.example.com (xn--caf-dma.example.com)  "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, append(tt.args, "--http-socket", sock)...)
			if r.Exit != 0 {
				t.Fatalf("%+v", r)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, r.Stdout)
				}
			}
		})
	}
}

// TestLookupOwner: --owner shows one user's instances of a name that
// several users registered.
func TestLookupOwner(t *testing.T) {
	sock, reg := startHTTP(t)
	internal := registry.Caller{Transport: registry.Internal}
	for _, p := range []registry.Process{{PID: 900, UID: 65534, Start: 1}, {PID: 100, UID: 0, Start: 1}} {
		if _, err := reg.RegisterNamed(internal, p, []registry.Service{{Name: "root.example.com", Network: registry.NetTCP, Port: uint16(p.PID)}}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		owner string
		exit  int
		ports []string
	}{
		{"", 0, []string{"900", "100"}},
		{"0", 0, []string{"100"}},
		{"root", 0, []string{"100"}},
		{"65534", 0, []string{"900"}},
		{"4242", 1, nil},
	}
	for _, tt := range tests {
		t.Run("owner "+tt.owner, func(t *testing.T) {
			r := runCtl(t, "lookup", "--http-socket", sock, "--owner", tt.owner, "root.example.com")
			if r.Exit != tt.exit {
				t.Fatalf("%+v", r)
			}
			var ports []string
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n")[1:] {
				ports = append(ports, strings.Fields(line)[4])
			}
			if strings.Join(ports, " ") != strings.Join(tt.ports, " ") {
				t.Fatalf("ports %v, want %v:\n%s", ports, tt.ports, r.Stdout)
			}
		})
	}
}
