package warmstart

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/portmapd/portmapd/netid"
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
			sv, err := Read(dir)
			if (err != nil) != tc.err {
				t.Fatalf("Read error %v, want error %v", err, tc.err)
			}
			golden(t, filepath.Join("testdata", "read-"+tc.name+".txt"), listing(sv.Entries))
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
		es = append(es, registry.Entry{Prog: r.Prog, Vers: r.Vers, Netid: netid.ID(r.Netid), Addr: r.Addr, Owner: r.Owner})
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

// rpcDir makes a directory as rpcbind makes /run/rpcbind: mode 0770,
// owned by its user (_rpc on Debian) and that user's group.
func rpcDir(t *testing.T) (dir string, uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a directory to rpcbind's user")
	}
	uid, gid, ok := rpcUser()
	if !ok {
		t.Skip("no rpcbind user (_rpc or rpc) on this host: apt-get install rpcbind")
	}
	dir = filepath.Join(t.TempDir(), "rpcbind")
	if err := os.Mkdir(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir, uid, gid
}

// TestWriteFollowsNoLinkOfRpcUser is issue 9's escalation from _rpc to
// root: _rpc, which owns /run/rpcbind, links the names root portmapd -w
// writes on exit to a root-only file. Write must replace the links, not
// write through them, and must give _rpc nothing but its own files.
func TestWriteFollowsNoLinkOfRpcUser(t *testing.T) {
	dir, uid, _ := rpcDir(t)
	victim := filepath.Join(filepath.Dir(dir), "victim")
	if err := os.WriteFile(victim, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The names of the old fixed temporary files, and the final names.
	for _, name := range []string{RpcbindFile + ".tmp", PortmapFile + ".tmp", PortmapFile} {
		link := filepath.Join(dir, name)
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	es := []registry.Entry{{Prog: 100024, Vers: 1, Netid: "udp", Addr: "0.0.0.0.3.4", Owner: "superuser"}}
	if err := Write(dir, es); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "secret\n" || fi.Sys().(*syscall.Stat_t).Uid != 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("the file _rpc linked to was written through: %q, owner %d, mode %v", b, fi.Sys().(*syscall.Stat_t).Uid, fi.Mode())
	}
	for _, name := range []string{RpcbindFile, PortmapFile} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || int(fi.Sys().(*syscall.Stat_t).Uid) != uid {
			t.Errorf("%s: mode %v owner %d, want a regular file 0600 owned by rpcbind's uid %d", name, fi.Mode(), fi.Sys().(*syscall.Stat_t).Uid, uid)
		}
	}
	sv, err := Read(dir)
	if err != nil || len(sv.Entries) != 1 || sv.Entries[0] != es[0] {
		t.Errorf("read back %+v, %v; want %+v", sv.Entries, err, es)
	}
}

// TestReadRefuses checks that Read takes nothing it was not meant to:
// not a link to another file, not a FIFO (without blocking), not a file
// a third user put in rpcbind's group-writable directory.
func TestReadRefuses(t *testing.T) {
	dir, _, _ := rpcDir(t)
	secret := filepath.Join(filepath.Dir(dir), "secret.xdr")
	copyFile(t, "testdata/rpcbind.xdr", secret)
	if err := os.Symlink(secret, filepath.Join(dir, RpcbindFile)); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, PortmapFile), 0o600); err != nil {
		t.Fatal(err)
	}
	sv, err := Read(dir)
	if len(sv.Entries) != 0 || err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), "FIFO") {
		t.Errorf("Read of a link and a FIFO: %d entries, error %v", len(sv.Entries), err)
	}
	for _, name := range []string{RpcbindFile, PortmapFile} {
		os.Remove(filepath.Join(dir, name))
	}
	copyFile(t, "testdata/rpcbind.xdr", filepath.Join(dir, RpcbindFile))
	if err := os.Chown(filepath.Join(dir, RpcbindFile), 12345, 12345); err != nil {
		t.Fatal(err)
	}
	sv, err = Read(dir)
	if len(sv.Entries) != 0 || err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
		t.Errorf("Read of a third user's file: %d entries, error %v", len(sv.Entries), err)
	}
}

// TestDirectoryRefused checks that a warm-start directory whose owner is
// unexpected, or that everyone may write, or that is a link, is neither
// read nor written, and that the error says why.
func TestDirectoryRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string) string
		want  string
	}{
		{"world-writable", func(t *testing.T, dir string) string {
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "lets every user write it"},
		{"another user's", func(t *testing.T, dir string) string {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give the directory away")
			}
			if err := os.Chown(dir, 12345, 12345); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "owned by uid 12345"},
		{"a link", func(t *testing.T, dir string) string {
			link := dir + "-link"
			if err := os.Symlink(dir, link); err != nil {
				t.Fatal(err)
			}
			return link
		}, "symbolic link"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rpcbind")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			copyFile(t, "testdata/rpcbind.xdr", filepath.Join(dir, RpcbindFile))
			path := tc.setup(t, dir)
			if _, err := Read(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Read: %v, want an error saying %q", err, tc.want)
			}
			if err := Write(path, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write: %v, want an error saying %q", err, tc.want)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, RpcbindFile)); len(b) == 0 {
				t.Error("Write replaced the file in a refused directory")
			}
		})
	}
}
