package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime/lifetimetest"
)

// startHTTP serves the HTTP face on a local socket of its own and returns
// the socket's path and the registry behind it.
func startHTTP(t *testing.T) (string, *registry.Registry) {
	t.Helper()
	reg := registry.New(registry.Options{})
	sock := filepath.Join(t.TempDir(), "portmapd.sock")
	srv, err := httpmap.NewServer(reg, lifetimetest.Run(t, reg), httpmap.Config{HTTPAddr: httpmap.Off, SocketPath: sock, Logger: slog.New(slog.DiscardHandler)})
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

// waitUnregistered waits for portmapd to remove name, which it does as
// soon as it sees the registering process exit, and reports how many
// registrations of it are left after a generous while.
func waitUnregistered(reg *registry.Registry, name string) int {
	for deadline := time.Now().Add(10 * time.Second); namedCount(reg, name) > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	return namedCount(reg, name)
}

// TestRegisterLastsAsLongAsTheCommand: the registration exists while the
// command runs and is gone when it ends; the command's exit status is
// portmapctl's.
func TestRegisterLastsAsLongAsTheCommand(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed: apt-get install curl")
	}
	sock, reg := startHTTP(t)
	// portmapctl registers the command once it has started, so the
	// command may look before the registration is there: it asks again
	// for a generous while.
	r := runCtl(t, "register", "--http-socket", sock, "job.example.com", "9100", "--",
		"sh", "-c", "for i in $(seq 200); do curl -sf --unix-socket "+sock+" http://localhost/portmap/job.example.com && exit 3; sleep 0.05; done; exit 3")
	if r.Exit != 3 {
		t.Fatalf("exit %d, want the command's 3; stderr: %s", r.Exit, r.Stderr)
	}
	if !strings.Contains(r.Stdout, "job.example.com,") || !strings.Contains(r.Stdout, ",9100") {
		t.Errorf("the command did not see its registration:\n%s", r.Stdout)
	}
	if n := waitUnregistered(reg, "job.example.com"); n != 0 {
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
	reg.RegisterNamed(registry.Caller{Transport: registry.Internal}, p, []registry.Service{{Name: "gone.example.com", Network: netid.TCP, Port: 9000}})
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
		{Name: "xn--caf-dma.example.com", Network: netid.TCP, Port: 9000},
		{Name: "plain.example.com", Network: netid.TCP, Port: 9001},
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
		if _, err := reg.RegisterNamed(internal, p, []registry.Service{{Name: "root.example.com", Network: netid.TCP, Port: uint16(p.PID)}}); err != nil {
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

// TestRegisterShortCommand: the registration lasts as long as the
// command, however short: a command that ends at once makes portmapctl
// exit with its status every time, never fail at random, and leaves
// nothing registered.
func TestRegisterShortCommand(t *testing.T) {
	sock, reg := startHTTP(t)
	for _, tt := range []struct {
		name string
		argv []string
		exit int
	}{
		{"true", []string{"true"}, 0},
		{"exit 3", []string{"sh", "-c", "exit 3"}, 3},
		{"killed", []string{"sh", "-c", "kill -9 $$"}, 128 + 9},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for i := 0; i < 30; i++ {
				r := runCtl(t, append([]string{"register", "--http-socket", sock, "short.example.com", "9100", "--"}, tt.argv...)...)
				if r.Exit != tt.exit {
					t.Fatalf("run %d: exit %d, want %d; stderr %q", i, r.Exit, tt.exit, r.Stderr)
				}
				if r.Stderr != "" && !strings.Contains(r.Stderr, "before short.example.com could be registered for it: nothing is registered") {
					t.Fatalf("run %d: stderr %q", i, r.Stderr)
				}
			}
			if n := waitUnregistered(reg, "short.example.com"); n != 0 {
				t.Errorf("%d registrations left", n)
			}
		})
	}
}

// TestRegisterCommandOverFirst: a command that has ended before portmapd
// looks at it is reported as such, with its status, and nothing is
// registered.
func TestRegisterCommandOverFirst(t *testing.T) {
	sock, reg := startHTTP(t)
	for _, tt := range []struct {
		argv []string
		want error
		msg  string
	}{
		{[]string{"true"}, nil, "portmapctl: true ended (exit status 0) before over.example.com could be registered for it: nothing is registered\n"},
		{[]string{"sh", "-c", "exit 3"}, &exitError{code: 3}, "portmapctl: sh -c exit 3 ended (exit status 3) before over.example.com could be registered for it: nothing is registered\n"},
	} {
		t.Run(strings.Join(tt.argv, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			cmd := &cobra.Command{}
			cmd.SetContext(context.Background())
			cmd.SetOut(&out)
			cmd.SetErr(&errb)
			r := registered{
				cmd: cmd, g: &globals{timeout: 30 * time.Second}, client: httpmap.NewLocalClient(sock),
				spec: httpmap.ServiceSpec{Service: "over.example.com", Port: "9100"}, argv: tt.argv,
				started: func(p *os.Process) {
					for !exited(p.Pid) {
						time.Sleep(time.Millisecond)
					}
				},
			}
			err := r.run()
			if fmt.Sprint(err) != fmt.Sprint(tt.want) || errb.String() != tt.msg {
				t.Fatalf("got %v, stderr %q; want %v, %q", err, errb.String(), tt.want, tt.msg)
			}
			if n := namedCount(reg, "over.example.com"); n != 0 {
				t.Errorf("%d registrations left", n)
			}
		})
	}
}

// A failure is a command line that must exit 1 with exactly stderr.
type failure struct {
	name   string
	args   []string
	stderr string
}

func runFailures(t *testing.T, tests []failure) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, tt.args...)
			if r.Exit != 1 || r.Stderr != tt.stderr {
				t.Fatalf("exit %d, stderr %q; want 1, %q", r.Exit, r.Stderr, tt.stderr)
			}
		})
	}
}

// TestNotRunning: when portmapd is not there, the HTTP commands say so,
// where they looked and which flag looks elsewhere, and register does not
// start its command.
func TestNotRunning(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	refused := refusedSocket(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedTCP := ln.Addr().String()
	ln.Close()
	marker := filepath.Join(dir, "started")
	hint := "; --http-socket PATH looks at another socket, --http HOST asks over TCP\n"
	tests := []failure{
		{"list", []string{"list", "--http-socket", missing}, "portmapctl: portmapd is not running: there is no socket " + missing + hint},
		{"lookup", []string{"lookup", "--http-socket", refused, "x.example.com"}, "portmapctl: portmapd is not running: nothing listens on its HTTP socket " + refused + hint},
		{"removals", []string{"removals", "--http-socket", missing}, "portmapctl: portmapd is not running: there is no socket " + missing + hint},
		{"list over TCP", []string{"list", "--http", closedTCP}, "portmapctl: portmapd is not reachable: nothing listens at " + closedTCP + "; --http HOST[:PORT] asks another\n"},
		{"register", []string{"register", "--http-socket", missing, "x.example.com", "1", "--", "touch", marker},
			"portmapctl: portmapd is not running: there is no socket " + missing + "; --http-socket PATH looks at another socket\n"},
	}
	runFailures(t, tests)
	if _, err := os.Stat(marker); err == nil {
		t.Error("register started its command with portmapd not running")
	}
}

// TestNoPortmapper: the RPC commands whose messages are not rpcinfo's say,
// after libtirpc's line, that no portmapper runs where they looked and
// which flags look elsewhere.
func TestNoPortmapper(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := []failure{
		{"getport tcp", []string{"getport", "--server", closed, "127.0.0.1", "100000", "2", "tcp"},
			"portmapctl: RPC: Remote system error - Connection refused\nportmapctl: no portmapper (portmapd or rpcbind) is running at tcp " + closed + "; --server HOST:PORT or --port PORT asks another\n"},
		{"set v2", []string{"set", "--server", closed, "300000", "1", "tcp", "4000"},
			"portmapctl: RPC: Unable to receive; errno = Connection refused\nportmapctl: no portmapper (portmapd or rpcbind) is running at udp " + closed + "; --server HOST:PORT asks another\n"},
		{"unset v3", []string{"unset", "--server", closed, "--version", "3", "300000", "1"},
			"portmapctl: RPC: Remote system error - Connection refused\nportmapctl: no portmapper (portmapd or rpcbind) is running at tcp " + closed + "; --server HOST:PORT asks another\n"},
	}
	runFailures(t, tests)
}
