package registry

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// The benchmarks run each operation at registry sizes 10 to 100000; the
// time per operation must not grow with the size (rpcbind scans a list and
// is 3x slower at 20000 entries).
var benchSizes = []int{10, 1000, 20000, 100000}

// filled returns a registry of n udp entries, programs 0x40000000.., vers 1.
func filled(b *testing.B, n int) *Registry {
	b.Helper()
	r := New(Options{})
	for i := range n {
		if ok, err := r.Set(root, Entry{Prog: 0x40000000 + uint32(i), Vers: 1, Netid: netid.UDP, Addr: "0.0.0.0.4.1"}); !ok || err != nil {
			b.Fatal("fill")
		}
	}
	return r
}

func forSizes(b *testing.B, f func(b *testing.B, r *Registry, n int)) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", n), func(b *testing.B) {
			r := filled(b, n)
			b.ReportAllocs()
			b.ResetTimer()
			f(b, r, n)
		})
	}
}

// batch is how many changes run between untimed resets that bring the
// registry back to its size.
const batch = 1024

func BenchmarkSet(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		for i := 0; i < b.N; i++ {
			prog := uint32(0x50000000 + i%batch)
			r.Set(root, Entry{Prog: prog, Vers: 1, Netid: netid.TCP, Addr: "0.0.0.0.4.2"})
			if i%batch == batch-1 {
				b.StopTimer()
				for j := range batch {
					r.Unset(root, 0x50000000+uint32(j), 1, "")
				}
				b.StartTimer()
			}
		}
	})
}

func BenchmarkSetMappingDuplicate(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		for i := 0; i < b.N; i++ {
			r.SetMapping(root, xdr.Mapping{Prog: 0x40000000 + uint32(i%n), Vers: 1, Prot: netid.ProtoUDP, Port: 0x401})
		}
	})
}

func BenchmarkUnset(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		add := func() {
			for j := range batch {
				r.Set(root, Entry{Prog: 0x50000000 + uint32(j), Vers: 1, Netid: netid.TCP, Addr: "0.0.0.0.4.2"})
			}
		}
		b.StopTimer()
		add()
		b.StartTimer()
		for i := 0; i < b.N; i++ {
			r.Unset(root, 0x50000000+uint32(i%batch), 1, netid.TCP)
			if i%batch == batch-1 {
				b.StopTimer()
				add()
				b.StartTimer()
			}
		}
	})
}

func BenchmarkUnsetAllNetids(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		add := func() {
			for j := range batch {
				for _, id := range []netid.ID{netid.TCP, netid.UDP, netid.TCP6} {
					r.Set(root, Entry{Prog: 0x50000000 + uint32(j), Vers: 1, Netid: id, Addr: "0.0.0.0.4.2"})
				}
			}
		}
		b.StopTimer()
		add()
		b.StartTimer()
		for i := 0; i < b.N; i++ {
			r.Unset(root, 0x50000000+uint32(i%batch), 1, "")
			if i%batch == batch-1 {
				b.StopTimer()
				add()
				b.StartTimer()
			}
		}
	})
}

func BenchmarkGetPort(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		for i := 0; i < b.N; i++ {
			if r.GetPort(0x40000000+uint32(i%n), 1, netid.ProtoUDP) != 0x401 {
				b.Fatal("GetPort")
			}
		}
	})
}

// BenchmarkGetPortFallback asks for a version that is not registered, so
// every call takes the fallback to another version.
func BenchmarkGetPortFallback(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		for i := 0; i < b.N; i++ {
			if r.GetPort(0x40000000+uint32(i%n), 7, netid.ProtoUDP) != 0x401 {
				b.Fatal("GetPort")
			}
		}
	})
}

func BenchmarkGetPortMiss(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		for i := 0; i < b.N; i++ {
			if r.GetPort(0x60000000+uint32(i%n), 1, netid.ProtoUDP) != 0 {
				b.Fatal("GetPort")
			}
		}
	})
}

func BenchmarkLookup(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		for i := 0; i < b.N; i++ {
			if _, ok := r.Lookup(0x40000000+uint32(i%n), 1, netid.UDP); !ok {
				b.Fatal("Lookup")
			}
		}
	})
}

// BenchmarkMappings is DUMP's walk: linear in the size by nature, shown
// for scale.
func BenchmarkMappings(b *testing.B) {
	forSizes(b, func(b *testing.B, r *Registry, n int) {
		for i := 0; i < b.N; i++ {
			k := 0
			for range r.Mappings() {
				k++
			}
			if k != n {
				b.Fatal("Mappings")
			}
		}
	})
}

// heapPer runs fill, which makes a registry of n things, once per
// iteration, and reports the heap each thing keeps as metric unit; the
// time it reports is the fill's.
func heapPer(b *testing.B, n int, unit string, fill func() *Registry) {
	var per float64
	for b.Loop() {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		r := fill()
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		per = float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
		runtime.KeepAlive(r)
		b.StartTimer()
	}
	b.ReportMetric(per, unit)
}

// BenchmarkMemory reports the heap a registration costs (B/entry) at
// 100,000 entries, each with an address of its own as a call decodes it,
// registered by the superuser over tcp and udp.
func BenchmarkMemory(b *testing.B) {
	const n = 100000
	heapPer(b, n, "B/entry", func() *Registry {
		r := New(Options{})
		for i := range n {
			id := netid.UDP
			if i%2 == 1 {
				id = netid.TCP
			}
			addr := fmt.Sprintf("10.0.%d.%d.%d.%d", i>>8&255, i&255, 4+i%200, i%256)
			if ok, err := r.Set(root, Entry{Prog: 0x40000000 + uint32(i/2), Vers: 1, Netid: id, Addr: addr}); !ok || err != nil {
				b.Fatalf("fill: %v", err)
			}
		}
		return r
	})
}

// BenchmarkNamedMemory reports the heap a named service costs (B/service)
// at 10,000, registered 64 to a process by root, each with a name of its
// own.
func BenchmarkNamedMemory(b *testing.B) {
	const n, perProcess = 10000, 64
	heapPer(b, n, "B/service", func() *Registry {
		r := New(Options{})
		for p := 0; p*perProcess < n; p++ {
			svcs := make([]Service, 0, perProcess)
			for i := p * perProcess; i < min(n, (p+1)*perProcess); i++ {
				svcs = append(svcs, Service{Name: fmt.Sprintf("svc%d.example.com", i), Network: netid.TCP, Port: uint16(1024 + i%60000)})
			}
			if _, err := r.RegisterNamed(root, Process{PID: int32(1000 + p), Start: uint64(p + 1), Exe: "/usr/bin/svc"}, svcs); err != nil {
				b.Fatal(err)
			}
		}
		return r
	})
}
