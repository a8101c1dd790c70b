package httpmap

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/peer"
	"github.com/portmapd/portmapd/registry"
)

// TestListenRegistersHandoffSocket: Listen registers the name for TCPMUX
// with an abstract hand-off socket, as the caller's, with the flags it
// was given; its listener takes hand-overs from the daemon's process
// alone; Close deregisters.
func TestListenRegistersHandoffSocket(t *testing.T) {
	s := startLive(t, registry.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := s.client.ListenService(ctx, ServiceSpec{Service: "Listen.example.com", MuxHelp: true, Exclusive: true})
	if err != nil {
		t.Fatal(err)
	}
	svcs := s.reg.LookupNamed("listen.example.com")
	want := registry.TCPMux | registry.MuxHelp | registry.Exclusive
	if len(svcs) != 1 || svcs[0].Network != netid.Unix || svcs[0].Path != l.Path() || !strings.HasPrefix(l.Path(), "@") ||
		svcs[0].Flags != want || svcs[0].PID != int32(os.Getpid()) {
		t.Fatalf("registered %+v, listening at %s", svcs, l.Path())
	}
	// The listing and the page show the flags.
	for format, want := range map[string][]string{
		"json": {`"tcpmux":true`, `"muxhelp":true`},
		"html": {`>tcpmux</span>`, `>muxhelp</span>`},
	} {
		resp, err := http.Get("http://" + s.tcp + "/portmap/listen.example.com?format=" + format)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range want {
			if !strings.Contains(string(body), w) {
				t.Errorf("%s lacks %s:\n%s", format, w, body)
			}
		}
	}
	// The daemon here is this process.
	if err := l.fromDaemon(peer.Cred{PID: int32(os.Getpid())}); err != nil {
		t.Errorf("the daemon's hand-over refused: %v", err)
	}
	if err := l.fromDaemon(peer.Cred{PID: 1}); err == nil {
		t.Error("a hand-over from pid 1 taken")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if svcs := s.reg.LookupNamed("listen.example.com"); len(svcs) != 0 {
		t.Errorf("after Close: %+v", svcs)
	}
}

// TestListenNeedsLocalSocket: only the local socket registers.
func TestListenNeedsLocalSocket(t *testing.T) {
	if _, err := NewClient("127.0.0.1:1").Listen(context.Background(), "a.example.com"); err == nil {
		t.Fatal("Listen over TCP succeeded")
	}
}

// TestLocalDialSkipsHandoffSockets: a local client dials a service at an
// @abstract name, but never a TCPMUX hand-off socket, which takes
// connections from the daemon alone.
func TestLocalDialSkipsHandoffSockets(t *testing.T) {
	s := startLive(t, registry.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	abstract := "@portmapd-test-" + strconv.Itoa(os.Getpid())
	ul, err := net.Listen("unix", abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	go func() {
		for {
			c, err := ul.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello\n")
			c.Close()
		}
	}()
	if _, err := s.client.Register(ctx, Registration{Services: []ServiceSpec{{Service: "abstract.example.com", Port: Port(abstract)}}}); err != nil {
		t.Fatal(err)
	}
	c, err := s.client.Dial(ctx, "abstract.example.com")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "hello\n" {
		t.Fatalf("read %q", got)
	}
	l, err := s.client.Listen(ctx, "handoff.example.com")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := s.client.Dial(ctx, "handoff.example.com"); !errors.Is(err, ErrNoInstance) {
		t.Fatalf("dialling a hand-off socket: %v", err)
	}
}
