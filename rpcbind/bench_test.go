package rpcbind

import (
	"context"
	"net/netip"
	"strconv"
	"testing"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/netid/ifaddrs"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/xdr"
)

// BenchmarkDump is a v2 DUMP over TCP on loopback, client and server in
// one process, at the registry sizes make bench uses.
func BenchmarkDump(b *testing.B) {
	for _, size := range []int{10, 1000, 20000} {
		b.Run("size="+strconv.Itoa(size), func(b *testing.B) {
			s := startServer(b)
			for i := range size {
				m := xdr.Mapping{Prog: 0x40000000 + uint32(i), Vers: 1, Prot: netid.ProtoUDP, Port: uint32(1024 + i%60000)}
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

// BenchmarkGetaddr is the GETADDR handler alone, merging a wildcard
// registration for a caller on another host, with the host's interfaces
// read on every call (as rpcbind does) or kept by an ifaddrs.Table. The
// numbers are in ifaddrs.Table's comment.
func BenchmarkGetaddr(b *testing.B) {
	table, err := ifaddrs.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer table.Close()
	for _, src := range []struct {
		name   string
		source ifaddrs.Source
	}{
		{"read", ifaddrs.ReadSource},
		{"table", table.Addrs},
	} {
		b.Run(src.name, func(b *testing.B) {
			h := newHarness(b)
			h.pm.Interfaces = src.source
			h.call(root, 3, xdr.RpcbProcSet, rpcbArgs(progT, 1, "tcp", "0.0.0.0.156.65")).boolean(b)
			list, err := ifaddrs.Read()
			if err != nil {
				b.Fatal(err)
			}
			// The last IPv4 address listed: the longest search.
			var local netip.Addr
			for _, a := range list {
				if a.Prefix.Addr().Is4() {
					local = a.Prefix.Addr()
				}
			}
			f := from{netid: "tcp", remote: "192.0.2.200:900", local: netip.AddrPortFrom(local, 111).String()}
			args := rpcbArgs(progT, 1, "tcp", "")
			b.ReportAllocs()
			for b.Loop() {
				if r := h.call(f, 4, xdr.RpcbProcGetaddr, args); !r.replied {
					b.Fatal("no reply")
				}
			}
		})
	}
}
