package httpmap

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/audit"
	"github.com/portmapd/portmapd/registry"
)

// TestAuditTrail: a registration and a deregistration are one audit line
// each, naming the checks the daemon was asked to run; a TTL refresh,
// which neither adds nor removes a registration and which a service
// repeats all its life, writes none, so that it cannot spend its
// source's bound of lines before the registrations it is there for.
func TestAuditTrail(t *testing.T) {
	// Every line is written before its request is answered, and the
	// buffer is read once the trail is closed.
	var buf bytes.Buffer
	trail := audit.New(slog.New(slog.NewTextHandler(&buf, nil)), audit.Options{})
	l := startLiveWith(t, registry.Options{}, Config{Audit: trail})
	child := sleeper(t, os.Geteuid())
	ctx := context.Background()
	reg := Registration{PID: int32(child.Process.Pid), Services: []ServiceSpec{
		{Service: "ttl.example.com", Port: "8080", Checks: &CheckSpec{TTL: "1m", DeregisterAfter: "5m"}}}}
	if _, err := l.client.Register(ctx, reg); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := l.client.Refresh(ctx, "ttl.example.com", registry.Warning, "slow"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.client.Deregister(ctx, reg); err != nil {
		t.Fatal(err)
	}
	trail.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	pid := "service_pid=" + strconv.Itoa(child.Process.Pid)
	want := []string{
		`msg=audit op=register service=ttl.example.com endpoint=8080 network=tcp ` + pid + ` checks="ttl=1m0s deregister_after=5m0s" result=done`,
		`msg=audit op=deregister service=ttl.example.com endpoint=8080 network=tcp ` + pid + ` checks="ttl=1m0s deregister_after=5m0s" result=done`,
	}
	if len(lines) != len(want) {
		t.Fatalf("audit trail:\n%s\nwant %d lines", buf.String(), len(want))
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("audit line %d:\n%s\nwant it to hold\n%s", i, lines[i], w)
		}
	}
}
