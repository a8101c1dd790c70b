//go:build linux

package lifetime

import (
	"net"
	"testing"
)

// BenchmarkReadTable compares the two readers of the socket table on a
// host with many bound sockets, where the text of /proc/net costs most.
func BenchmarkReadTable(b *testing.B) {
	const sockets = 2000
	for range sockets {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Skipf("opening %d UDP sockets: %v", sockets, err)
		}
		b.Cleanup(func() { c.Close() })
	}
	for _, bc := range []struct {
		name string
		read func() (*Table, error)
	}{
		{"proc", func() (*Table, error) { return ReadTable("/proc") }},
		{"sockdiag", ReadKernelTable},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if bc.name == "sockdiag" {
				// Else ReadKernelTable would quietly measure /proc.
				if _, err := readSockDiag(openSockDiag); err != nil {
					b.Skipf("no sock_diag: %v", err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
