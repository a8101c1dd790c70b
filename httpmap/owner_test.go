package httpmap

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry"
)

// spoofedRegistry has root.example.com registered by root and, beside it
// (exclusivity is per uid), by nobody, first.
func spoofedRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	reg := registry.New(registry.Options{Now: func() time.Time { return testNow }})
	internal := registry.Caller{Transport: registry.Internal}
	for _, p := range []struct {
		proc registry.Process
		port uint16
	}{
		{registry.Process{PID: 900, UID: 65534, GID: 65534, Start: 1}, 6666},
		{registry.Process{PID: 100, UID: 0, GID: 0, Start: 1}, 443},
	} {
		if _, err := reg.RegisterNamed(internal, p.proc, []registry.Service{
			{Name: "root.example.com", Network: netid.TCP, Port: p.port, Flags: registry.Exclusive},
		}); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := reg.Set(internal, registry.Entry{Prog: 100000, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.0.111"}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	return reg
}

// TestOwnerFilters: uid= and user= select one user's instances of a name,
// in lookups and in the listing.
func TestOwnerFilters(t *testing.T) {
	s := testServer(t, spoofedRegistry(t), Config{})
	tests := []struct {
		target string
		code   int
		ports  []string
	}{
		{"/portmap/root.example.com", 200, []string{"6666", "443"}},
		{"/portmap/root.example.com?uid=0", 200, []string{"443"}},
		{"/portmap/root.example.com?user=root", 200, []string{"443"}},
		{"/portmap/root.example.com?user=0", 200, []string{"443"}},
		{"/portmap/root.example.com?uid=65534", 200, []string{"6666"}},
		{"/portmap/root.example.com?uid=1000", 404, nil},
		{"/portmap/root.example.com?uid=0&uid=65534", 200, []string{"6666", "443"}},
		{"/portmap?uid=0", 200, []string{"443", "111", "111"}},
		{"/portmap?uid=0&service=root.example.com", 200, []string{"443"}},
		{"/portmap/root.example.com?uid=root", 400, nil},
		{"/portmap/root.example.com?uid=-1", 400, nil},
		{"/portmap/root.example.com?uid=4294967296", 400, nil},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.target, nil)
			req.RemoteAddr = remote
			req.Header.Set("Accept", TypeJSON)
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tt.code)
			}
			if tt.code != 200 {
				return
			}
			var l Listing
			if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
				t.Fatal(err)
			}
			var ports []string
			for _, in := range l.Instances {
				ports = append(ports, in.Port)
			}
			if strings.Join(ports, " ") != strings.Join(tt.ports, " ") {
				t.Fatalf("ports %v, want %v", ports, tt.ports)
			}
		})
	}
}

// TestClientWithOwner: a client that trusts only root's instance of a name
// never sees, or dials, another user's.
func TestClientWithOwner(t *testing.T) {
	hs := httptest.NewServer(testServer(t, spoofedRegistry(t), Config{}))
	defer hs.Close()
	c := NewClient(strings.TrimPrefix(hs.URL, "http://"))
	ctx := context.Background()
	for _, tt := range []struct {
		owner string
		ports []string
	}{
		{"", []string{"6666", "443"}},
		{"0", []string{"443"}},
		{"root", []string{"443"}},
		{"nobody", []string{"6666"}},
	} {
		t.Run("owner "+tt.owner, func(t *testing.T) {
			ins, err := c.WithOwner(tt.owner).Lookup(ctx, "root.example.com")
			if err != nil {
				t.Fatal(err)
			}
			var ports []string
			for _, in := range ins {
				ports = append(ports, in.Port)
			}
			if strings.Join(ports, " ") != strings.Join(tt.ports, " ") {
				t.Fatalf("ports %v, want %v", ports, tt.ports)
			}
		})
	}
	var e *Error
	if _, err := c.WithOwner("1000").Lookup(ctx, "root.example.com"); !errors.As(err, &e) || e.Status != 404 {
		t.Fatalf("lookup for an owner with none: %v", err)
	}
	if _, err := c.WithOwner("1000").Dial(ctx, "root.example.com"); !errors.As(err, &e) || e.Status != 404 {
		t.Fatalf("dial for an owner with none: %v", err)
	}
}
