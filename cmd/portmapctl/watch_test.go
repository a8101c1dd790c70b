package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/syncio"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// TestWatch runs portmapctl watch NAME and checks that it prints NAME's
// changes, the reason of a removal with it, and nothing of other names.
func TestWatch(t *testing.T) {
	sock, reg := startHTTP(t)
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := new(syncio.Buffer), new(syncio.Buffer)
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"watch", "--http-socket", sock, "watched.example.com"}, out, errb) }()
	internal := registry.Caller{Transport: registry.Internal}
	p := registry.Process{PID: 4242, UID: 1000, Start: 1}
	wait := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("watch never printed %q:\n%s%s", what, out.String(), errb.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The stream starts from now: register until watch has seen one.
	deadline := time.Now().Add(30 * time.Second)
	for port := uint16(9000); !strings.Contains(out.String(), "added"); port++ {
		if _, err := reg.RegisterNamed(internal, p, []registry.Service{{Name: "watched.example.com", Network: netid.TCP, Port: port}}); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch printed nothing:\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	wait("watched.example.com tcp 9")
	reg.RegisterNamed(internal, p, []registry.Service{{Name: "other.example.com", Network: netid.TCP, Port: 8000}})
	reg.DropProcess(p.PID, p.Start)
	wait("(process exited)")
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), "other.example.com") {
		t.Errorf("watch of one name printed another's change:\n%s", out.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.Contains(line, "watched.example.com") {
			t.Errorf("line %q", line)
		}
	}
}

// TestRegisterWithChecks checks that register's check flags reach the
// registration.
func TestRegisterWithChecks(t *testing.T) {
	sock, reg := startHTTP(t)
	done := make(chan result, 1)
	go func() {
		done <- runCtl(t, "register", "--http-socket", sock, "--check-http", "/healthz", "--check-interval", "5s",
			"--deregister-after", "1m", "checked.example.com", "9100", "--", "sleep", "3")
	}()
	deadline := time.Now().Add(30 * time.Second)
	for len(reg.LookupNamed("checked.example.com")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("never registered")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := reg.LookupNamed("checked.example.com")[0].Checks
	want := registry.Checks{HTTP: "/healthz", Interval: 5 * time.Second, DeregisterAfter: time.Minute}
	if got != want {
		t.Errorf("checks %+v, want %+v", got, want)
	}
	if r := <-done; r.Exit != 0 {
		t.Errorf("register: %+v", r)
	}
}
