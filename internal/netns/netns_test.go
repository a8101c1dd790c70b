package netns_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/netns"
)

// TestTwoHosts joins two hosts, gives them addresses after a server
// listens on the wildcard, and reaches the server across the link over
// IPv4 and IPv6.
func TestTwoHosts(t *testing.T) {
	server := netns.NewHost(t, "srv")
	client := netns.NewHost(t, "cli")
	link := netns.Connect(t, server, client)
	ln, err := server.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, c.LocalAddr().String())
			c.Close()
		}
	}()
	server.AddAddr(link.A, "10.0.0.2/24")
	server.AddAddr(link.A, "fd00:1::2/64")
	client.AddAddr(link.B, "10.0.0.1/24")
	client.AddAddr(link.B, "fd00:1::1/64")
	for _, tc := range []struct{ network, addr, want string }{
		{"tcp4", "10.0.0.2:7", "10.0.0.2:7"},
		{"tcp6", "[fd00:1::2]:7", "[fd00:1::2]:7"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := client.WaitDial(ctx, tc.network, tc.addr); err != nil {
				t.Fatal(err)
			}
			c, err := client.Dial(tc.network, tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			got, _ := io.ReadAll(c)
			if string(got) != tc.want && !strings.HasSuffix(string(got), tc.want) {
				t.Errorf("server saw itself reached at %q, want %q", got, tc.want)
			}
		})
	}
	// Do enters the host only for its function.
	outside, _ := os.Readlink("/proc/self/ns/net")
	var inside string
	if err := server.Do(func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Readlink("/proc/self/ns/net")
	if inside == outside || after != outside {
		t.Errorf("namespaces: outside %s, inside Do %s, after %s", outside, inside, after)
	}
}

// TestRunDirectory checks that commands in a host share its /run, that it
// is 0755 as on a real host, and that CommandAs runs as that user.
func TestRunDirectory(t *testing.T) {
	h := netns.NewHost(t, "run")
	fi, err := os.Stat(h.Run)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("/run mode %o, want 0755", fi.Mode().Perm())
	}
	if out, err := h.Command("sh", "-c", "echo hi > /run/marker").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(h.Run, "marker")); err != nil || string(b) != "hi\n" {
		t.Errorf("marker in %s: %q %v", h.Run, b, err)
	}
	out, err := h.CommandAs("nobody", "sh", "-c", "id -un; touch /run/nobody-was-here 2>&1 || echo denied").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.Fields(string(out)); len(got) < 2 || got[0] != "nobody" || got[len(got)-1] != "denied" {
		t.Errorf("as nobody: %q, want nobody and a denied write to /run", out)
	}
}

// TestStartStop runs a process in a host and stops it.
func TestStartStop(t *testing.T) {
	h := netns.NewHost(t, "proc")
	p := h.Start(h.Command("sh", "-c", "echo started; exec sleep 60"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, "started"); err != nil {
		t.Fatal(err)
	}
	if !p.Stop(5 * time.Second) {
		t.Error("sleep ignored SIGTERM")
	}
}
