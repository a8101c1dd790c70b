package rpcbind

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/oncrpc"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// TestClientOverUnixStream: a unix stream connection has datagram methods
// too, but needs record marking like TCP.
func TestClientOverUnixStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rpcbind.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	mux := &oncrpc.ServeMux{}
	(&Portmapper{Registry: registry.New(registry.Options{})}).Register(mux)
	srv := &oncrpc.Server{Handler: mux, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.ServeStream(ctx, ln, "local"); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := Dial(ctxT(t), "unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, err := c.PmapSet(ctxT(t), xdr.Mapping{Prog: 0x2fff0001, Vers: 1, Prot: netid.ProtoTCP, Port: 1}); err != nil || !ok {
		t.Fatalf("SET over the local socket: %v %v", ok, err)
	}
}
