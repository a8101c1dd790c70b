package httpmap_test

// This test wires the two faces as the daemon does, so it lives in the
// external test package: httpmap itself never imports rpcbind.

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
	"github.com/portmapd/portmapd/rpcbind"
)

// TestHTTPAndRPCOnOnePort serves RPC and HTTP from one TCP listener, as on
// port 111: the RPC server diverts connections whose first byte is not a
// record mark to the HTTP server.
func TestHTTPAndRPCOnOnePort(t *testing.T) {
	reg := registry.New(registry.Options{})
	internal := registry.Caller{Transport: registry.Internal}
	if ok, err := reg.Set(internal, registry.Entry{Prog: 100000, Vers: 2, Netid: "tcp", Addr: "0.0.0.0.0.111"}); !ok || err != nil {
		t.Fatal(ok, err)
	}
	// Nothing registers here: the Keeper need not run.
	life, err := lifetime.New(reg, lifetime.Config{NoPrune: true})
	if err != nil {
		t.Fatal(err)
	}
	defer life.Close()
	hs, err := httpmap.NewServer(reg, life, httpmap.Config{HTTPAddr: httpmap.Off, SocketPath: httpmap.Off, RPCNames: "testdata/rpc"})
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	go hs.Serve(hs.DivertListener())

	var mux oncrpc.ServeMux
	(&rpcbind.Portmapper{Registry: reg}).Register(&mux)
	rs := &oncrpc.Server{Handler: &mux, Divert: hs.Divert}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rs.ServeStream(ctx, ln, "tcp")
	addr := ln.Addr().String()

	t.Run("rpc", func(t *testing.T) {
		c, err := rpcbind.Dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		list, err := c.Dump(cctx)
		if err != nil || len(list) != 1 || list[0].Port != 111 {
			t.Fatalf("DUMP = %+v, %v", list, err)
		}
	})
	t.Run("http", func(t *testing.T) {
		resp, err := http.Get("http://" + addr + "/portmap")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), "\n100000.oncrpc.alt,0,,,111,") {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	})
	t.Run("rpc again after http", func(t *testing.T) {
		c, err := rpcbind.Dial(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		if err := c.Null(cctx, 100000, 2); err != nil {
			t.Fatal(err)
		}
	})
}
