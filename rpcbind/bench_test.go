package rpcbind

import (
	"context"
	"strconv"
	"testing"

	"github.com/portmapd/portmapd/registry"
)

// BenchmarkDump is a v2 DUMP over TCP on loopback, client and server in
// one process, at the registry sizes make bench uses.
func BenchmarkDump(b *testing.B) {
	for _, size := range []int{10, 1000, 20000} {
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			s := startServer(b)
			for i := range size {
				m := registry.Mapping{Prog: 0x40000000 + uint32(i), Vers: 1, Prot: registry.ProtoUDP, Port: uint32(1024 + i%60000)}
				if _, err := s.reg.SetMapping(registry.Caller{Transport: registry.Internal}, m); err != nil {
					b.Fatal(err)
				}
			}
			c := s.client(b, "tcp", "")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				list, err := c.Dump(ctx)
				if err != nil || len(list) < size {
					b.Fatalf("dump: %d entries, %v", len(list), err)
				}
			}
		})
	}
}
