package daemon_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry/warmstart"
)

// TestWarmStart starts portmapd -w on the warm-start files Debian's
// rpcbind wrote, checks that it serves their registrations and removed the
// files, and that SIGTERM writes them again with everything it holds.
func TestWarmStart(t *testing.T) {
	warm := filepath.Join(t.TempDir(), "rpcbind")
	if err := os.Mkdir(warm, 0o770); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{warmstart.RpcbindFile, warmstart.PortmapFile} {
		b, err := os.ReadFile(filepath.Join("..", "..", "registry", "warmstart", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(warm, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := newDaemon(t, "-w", "--warm-start-dir", warm, "--no-prune")
	d.start()
	ms := d.mappings()
	for _, want := range []struct{ prog, prot, port uint32 }{
		{100003, netid.ProtoTCP, 2049}, {300019, netid.ProtoTCP, 10000}, {100021, netid.ProtoUDP, 4045}, {100021, netid.ProtoTCP, 4045},
	} {
		if got := ms[[2]uint32{want.prog, want.prot}]; got != want.port {
			t.Errorf("prog %d prot %d: port %d, want %d", want.prog, want.prot, got, want.port)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(warm, "*.xdr")); len(left) != 0 {
		t.Errorf("warm-start files not removed after reading: %v", left)
	}
	// They are in portmapd's own state now: a crash does not lose them.
	d.kill()
	d.start()
	if got := d.mappings()[[2]uint32{100003, netid.ProtoTCP}]; got != 2049 {
		t.Errorf("after SIGKILL and restart, nfs tcp port %d, want 2049", got)
	}
	d.stop()
	sv, err := warmstart.Read(warm)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, e := range sv.Entries {
		got[string(e.Netid)+" "+e.Addr+" "+e.Owner] = true
	}
	for _, want := range []string{"tcp 0.0.0.0.8.1 superuser", "tcp6 ::.8.1 superuser", "udp6 ::.78.80 superuser", "local /run/nfsacl.sock superuser", "tcp 0.0.0.0.39.16 65534", "udp 0.0.0.0.15.205 superuser"} {
		if !got[want] {
			t.Errorf("written warm-start files lack %q; have %v", want, got)
		}
	}
}
