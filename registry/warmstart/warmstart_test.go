package warmstart

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// The files in testdata were written by Debian's rpcbind 1.2.6 -w on
// SIGTERM (testdata/record.sh); rpcbind-rpcinfo.txt is its listing then.

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s:\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

func listing(es []registry.Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "%d %d %s %s %s\n", e.Prog, e.Vers, e.Netid, e.Addr, e.Owner)
	}
	return b.String()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string // name in dir → testdata file, or "!" + literal bytes
		err   bool
	}{
		{"recorded", map[string]string{RpcbindFile: "rpcbind.xdr", PortmapFile: "portmap.xdr"}, false},
		{"portmap-only", map[string]string{PortmapFile: "portmap.xdr"}, false},
		{"none", nil, false},
		{"rpcbind-truncated", map[string]string{RpcbindFile: "!truncate", PortmapFile: "portmap.xdr"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, src := range tc.files {
				if src == "!truncate" {
					b, _ := os.ReadFile("testdata/rpcbind.xdr")
					os.WriteFile(filepath.Join(dir, name), b[:len(b)-60], 0o600)
					continue
				}
				copyFile(t, filepath.Join("testdata", src), filepath.Join(dir, name))
			}
			es, err := Read(dir)
			if (err != nil) != tc.err {
				t.Fatalf("Read error %v, want error %v", err, tc.err)
			}
			golden(t, filepath.Join("testdata", "read-"+tc.name+".txt"), listing(es))
		})
	}
}

// TestWriteAsRpcbind writes rpcbind's own list back and must produce the
// very bytes rpcbind wrote.
func TestWriteAsRpcbind(t *testing.T) {
	b, err := os.ReadFile("testdata/rpcbind.xdr")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := decodeRpcbList(b)
	if err != nil {
		t.Fatal(err)
	}
	var es []registry.Entry
	for _, r := range rs {
		es = append(es, registry.Entry{Prog: r.Prog, Vers: r.Vers, Netid: r.Netid, Addr: r.Addr, Owner: r.Owner})
	}
	dir := filepath.Join(t.TempDir(), "rpcbind")
	if err := Write(dir, es); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{RpcbindFile, PortmapFile} {
		got, _ := os.ReadFile(filepath.Join(dir, name))
		want, _ := os.ReadFile(filepath.Join("testdata", name))
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from rpcbind's:\n got %x\nwant %x", name, got, want)
		}
		fi, _ := os.Stat(filepath.Join(dir, name))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode())
		}
	}
}

// TestRpcbindReadsOurFiles writes warm-start files from a registry and has
// Debian's rpcbind -w start from them in a private namespace: it must list
// every registration and remove the files.
func TestRpcbindReadsOurFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a private network namespace")
	}
	for _, tool := range []string{"rpcbind", "rpcinfo", "ip", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	reg := registry.New(registry.Options{})
	super := registry.Caller{Transport: registry.Internal}
	user := registry.Caller{Transport: registry.Local, Cred: &registry.Cred{UID: 1000, PID: 1}}
	for _, e := range []struct {
		c registry.Caller
		e registry.Entry
	}{
		{super, registry.Entry{Prog: 100000, Vers: 4, Netid: "tcp", Addr: "0.0.0.0.0.111"}},
		{super, registry.Entry{Prog: 100003, Vers: 4, Netid: "tcp", Addr: "0.0.0.0.8.1"}},
		{super, registry.Entry{Prog: 100003, Vers: 4, Netid: "tcp6", Addr: "::.8.1"}},
		{user, registry.Entry{Prog: 400100, Vers: 2, Netid: "udp", Addr: "0.0.0.0.117.48"}},
		{user, registry.Entry{Prog: 400100, Vers: 2, Netid: "local", Addr: "/run/user-svc.sock"}},
	} {
		if _, err := reg.Set(e.c, e.e); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "rpcbind")
	if err := Write(dir, reg.Entries()); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("testdata/rpcbind-reads.sh", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("rpcbind-reads.sh: %v\n%s", err, out)
	}
	var kept []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] != "100000" && f[0] != "program" {
			kept = append(kept, line)
		}
	}
	golden(t, "testdata/rpcbind-reads-ours.txt", strings.Join(kept, "\n")+"\n")
	if !strings.HasSuffix(strings.TrimSpace(string(out)), "files left:") {
		t.Errorf("rpcbind left files behind:\n%s", out)
	}
}
