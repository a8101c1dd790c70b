package warmstart

// FuzzRead runs Read over any pair of warm-start files. Run it with
//
//	go test -run '^$' -fuzz '^FuzzRead$' -fuzztime 60s ./registry/warmstart
//
// Invariants: no panic; no string longer than the file or than maxString;
// what Read returns whole, Write writes so that Read returns it again.

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/portmapd/portmapd/registry"
)

// writeWarmFiles writes the warm-start files with the given contents to a
// new directory.
func writeWarmFiles(t *testing.T, rpcbindXDR, portmapXDR []byte) string {
	t.Helper()
	dir := t.TempDir()
	for name, b := range map[string][]byte{RpcbindFile: rpcbindXDR, PortmapFile: portmapXDR} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// checkRead reads the warm-start files made of rpcbindXDR and portmapXDR
// and checks what fuzzing checks. It returns what Read returned.
func checkRead(t *testing.T, rpcbindXDR, portmapXDR []byte) ([]registry.Entry, error) {
	t.Helper()
	sv, err := Read(writeWarmFiles(t, rpcbindXDR, portmapXDR))
	es := sv.Entries
	for _, e := range es {
		for _, s := range []string{string(e.Netid), e.Addr, e.Owner} {
			// The portmap list's entries are made up here, never longer
			// than "0.0.0.0.255.255"; the rpcbind list's are from the file.
			if len(s) > maxString || len(s) > max(len(rpcbindXDR), len("0.0.0.0.255.255")) {
				t.Fatalf("%d-byte string from files of %d and %d bytes", len(s), len(rpcbindXDR), len(portmapXDR))
			}
		}
		if e.Prog == 100000 {
			t.Errorf("the portmapper's own entry %+v was restored", e)
		}
	}
	if err != nil {
		return es, err
	}
	dir2 := filepath.Join(t.TempDir(), "again")
	if err := Write(dir2, es); err != nil {
		t.Fatalf("Write: %v", err)
	}
	sv2, err := Read(dir2)
	if err != nil {
		t.Fatalf("Read of what Write wrote: %v", err)
	}
	if es2 := sv2.Entries; !reflect.DeepEqual(es, es2) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", sv2.Entries, es)
	}
	return es, nil
}

func FuzzRead(f *testing.F) {
	rpcb, err := os.ReadFile("testdata/rpcbind.xdr")
	if err != nil {
		f.Fatal(err)
	}
	pmap, err := os.ReadFile("testdata/portmap.xdr")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rpcb, pmap)
	f.Add([]byte{}, pmap)
	f.Add(rpcb, []byte{})
	f.Add(rpcb[:len(rpcb)-60], pmap)
	f.Add([]byte{0, 0, 0, 0}, []byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}, []byte{0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, rpcbindXDR, portmapXDR []byte) {
		checkRead(t, rpcbindXDR, portmapXDR)
	})
}
