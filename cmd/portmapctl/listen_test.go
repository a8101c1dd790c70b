package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/tcpmux"
)

// startMux serves TCPMUX on loopback over reg and returns its address.
func startMux(t *testing.T, reg *registry.Registry) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- tcpmux.NewServer(reg, tcpmux.Config{}).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("tcpmux: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestRegisterListenRunsCommandPerConnection: register --listen takes the
// connections TCPMUX hands over for a name and runs the command on each,
// as its standard input and output, after portmapd's "+" (inetd's "+"
// mode): cat is an echo service. SIGTERM ends the registration and
// portmapctl, with status 0.
func TestRegisterListenRunsCommandPerConnection(t *testing.T) {
	sock, reg := startHTTP(t)
	mux := startMux(t, reg)
	done := make(chan result, 1)
	go func() {
		done <- runCtl(t, "register", "--http-socket", sock, "echo.example.com", "--listen", "--muxhelp", "--", "cat")
	}()
	for deadline := time.Now().Add(20 * time.Second); namedCount(reg, "echo.example.com") == 0; {
		select {
		case r := <-done:
			t.Fatalf("portmapctl ended first: %+v", r)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("echo.example.com was never registered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	svc := reg.LookupNamed("echo.example.com")[0]
	if svc.Flags&(registry.TCPMux|registry.MuxHelp) != registry.TCPMux|registry.MuxHelp {
		t.Errorf("registered with flags %v", svc.Flags)
	}
	for _, msg := range []string{"first\n", "second\n"} {
		c, err := net.Dial("tcp", mux)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "echo.example.com\r\n"+msg)
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(bufio.NewReader(c))
		c.Close()
		if err != nil || string(got) != "+\r\n"+msg {
			t.Fatalf("through cat: %q, %v", got, err)
		}
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Exit != 0 || strings.TrimSpace(r.Stderr) != "" {
			t.Errorf("after SIGTERM: %+v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("portmapctl ignored SIGTERM")
	}
	if n := waitUnregistered(reg, "echo.example.com"); n != 0 {
		t.Errorf("%d registrations left", n)
	}
}
