package daemon_test

// Tests of portmapd on a host with a history (issue 10): state left by a
// run as another user, damaged or odd state files, a second instance
// beside a running one. Each is named after what a user did.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/xdr"
)

// nobody is the unprivileged user the tests run portmapd as.
const nobody = 65534

// runAsNobody makes d run as nobody from now on: its directory (sockets, lock
// file) becomes nobody's, and portmapd is run from a copy nobody may
// execute. What the directory holds keeps its owner.
func runAsNobody(t *testing.T, d *daemon) {
	t.Helper()
	// t.TempDir's parent is root's and owner-only.
	if err := os.Chmod(filepath.Dir(d.dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d.dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(d.dir, "portmapd-bin")
	copyExecutable(t, portmapdBin(t), bin)
	t.Setenv("PORTMAPD_BIN", bin)
	d.cred = &syscall.Credential{Uid: nobody, Gid: nobody}
}

func copyExecutable(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// set registers prog on tcp port over the local socket.
func (d *daemon) set(prog uint32, port uint32) {
	d.t.Helper()
	c := d.rpcClient()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := c.PmapSet(ctx, xdr.Mapping{Prog: prog, Vers: 1, Prot: netid.ProtoTCP, Port: port})
	if err != nil || !ok {
		d.t.Fatalf("SET %d: %v %v", prog, ok, err)
	}
}

// startLog starts d and returns what it logs from then on.
func (d *daemon) startLog() func() string {
	d.t.Helper()
	from := len(d.log.String())
	d.start()
	// The daemon may answer before its output has been copied here; what
	// it logged at start is in once the line that ends the start is.
	if !eventually(10*time.Second, func() bool { return strings.Contains(d.log.String()[from:], "portmapd serving") }) {
		d.t.Fatalf("portmapd serves but did not say so:\n%s", d.log.String()[from:])
	}
	return func() string { return d.log.String()[from:] }
}

// journalFile is the state directory's current journal.
func journalFile(t *testing.T, state string) string {
	t.Helper()
	js, _ := filepath.Glob(filepath.Join(state, "journal.*"))
	var names []string
	for _, j := range js {
		if _, err := strconv.ParseUint(strings.TrimPrefix(filepath.Base(j), "journal."), 10, 64); err == nil {
			names = append(names, j)
		}
	}
	if len(names) != 1 {
		t.Fatalf("journals in %s: %v, want one", state, js)
	}
	return names[0]
}

// TestStateLeftInEveryState runs portmapd where an earlier run as root
// left its state directory, then changes that directory the ways hosts
// do, and runs portmapd again, as root or as nobody. Each way must give
// the one log line that says what is wrong (no spin, no silence), a
// daemon that serves, stops on SIGTERM with status 0, and saves
// registrations exactly when it can.
func TestStateLeftInEveryState(t *testing.T) {
	needRoot(t, "to leave state as root and run portmapd as another user")
	const saved, added = 0x31000001, 0x31000002
	for _, tc := range []struct {
		name   string
		nobody bool
		change func(t *testing.T, d *daemon)
		// says is what the log must say, times times (1 when 0).
		says  string
		times int
		// restored: the registration of the root run comes back;
		// saves: the one made now survives a restart.
		restored, saves bool
	}{
		{name: "user runs it after root did", nobody: true,
			says: "cannot use the state directory; serving without saving", restored: false, saves: false},
		{name: "user runs it after root did and opened the directory to all", nobody: true,
			change: func(t *testing.T, d *daemon) { must(t, os.Chmod(d.state, 0o755)) },
			says:   "owned by uid 0, not by this process's uid 65534"},
		{name: "user is given the directory but not its files", nobody: true,
			change: func(t *testing.T, d *daemon) { must(t, os.Chown(d.state, nobody, nobody)) },
			says:   "permission denied): restored 0 good changes from it; file kept as", times: 2, saves: true},
		{name: "user is given the directory and files with the owner's bits cleared", nobody: true,
			change: func(t *testing.T, d *daemon) { chownAll(t, d.state, nobody); must(t, os.Chmod(d.state, 0o500)) },
			says:   "state directory was not owner-only; made it 0700", restored: true, saves: true},
		{name: "root runs it in another user's directory",
			change: func(t *testing.T, d *daemon) { must(t, os.Chown(d.state, 12345, 12345)) },
			says:   "owned by uid 12345, not by this process's uid 0"},
		{name: "root runs it on a journal another user wrote",
			change: func(t *testing.T, d *daemon) { must(t, os.Chown(journalFile(t, d.state), 12345, 12345)) },
			says:   "wrong permissions: owned by uid 12345, not 0", restored: true, saves: true},
		{name: "root runs it with a FIFO for a journal",
			change: func(t *testing.T, d *daemon) {
				j := journalFile(t, d.state)
				must(t, os.Remove(j))
				must(t, syscall.Mkfifo(j, 0o600))
			},
			says: "not a regular file (a FIFO)", restored: false, saves: true},
		{name: "root runs it with the state directory a link",
			change: func(t *testing.T, d *daemon) {
				must(t, os.Rename(d.state, d.state+"-real"))
				must(t, os.Symlink(d.state+"-real", d.state))
			},
			says: "is a symbolic link (to "},
		{name: "root runs it with a damaged journal on a read-only mount",
			change: func(t *testing.T, d *daemon) {
				j := journalFile(t, d.state)
				f, err := os.OpenFile(j, os.O_WRONLY|os.O_APPEND, 0)
				must(t, err)
				_, err = f.Write([]byte{0, 0, 0})
				must(t, err)
				must(t, f.Close())
				readOnlyMount(t, d, d.state)
			},
			says: "left in place (cannot rename it: read-only file system)", restored: true},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			d := newDaemon(t, "--no-prune")
			d.start()
			d.set(saved, 1001)
			d.stop()
			if tc.change != nil {
				tc.change(t, d)
			}
			if tc.nobody {
				runAsNobody(t, d)
			}
			logged := d.startLog()
			times := max(tc.times, 1)
			if n := strings.Count(logged(), tc.says); n != times {
				t.Errorf("log says %q %d times, want %d:\n%s", tc.says, n, times, logged())
			}
			if n := strings.Count(logged(), "\n"); n > 12 {
				t.Errorf("%d log lines at start:\n%s", n, logged())
			}
			if got := d.has(saved, netid.ProtoTCP); got != tc.restored {
				t.Errorf("registration of the root run restored: %v, want %v", got, tc.restored)
			}
			d.set(added, 1002)
			d.stop()
			d.start()
			if got := d.has(added, netid.ProtoTCP); got != tc.saves {
				t.Errorf("registration survived a restart: %v, want %v", got, tc.saves)
			}
			d.stop()
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func chownAll(t *testing.T, dir string, uid int) {
	t.Helper()
	must(t, filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	}))
}

// readOnlyMount has d run in a private mount namespace where dir is
// mounted read-only.
func readOnlyMount(t *testing.T, d *daemon, dir string) {
	t.Helper()
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare not installed")
	}
	wrapper := filepath.Join(t.TempDir(), "portmapd-ro")
	script := `#!/bin/sh
exec unshare -m --propagation private sh -c 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"' sh "` + dir + `" "` + portmapdBin(t) + `" "$@"
`
	must(t, os.WriteFile(wrapper, []byte(script), 0o755))
	t.Setenv("PORTMAPD_BIN", wrapper)
}

// TestStopWhileRestoringAHugeJournal sends SIGTERM as soon as portmapd
// holds its state directory, while it reads a 256 MiB journal: it must
// stop with status 0 and leave the state as it was, so that the next
// start restores it. (Whether the signal lands before the journal is read
// whole depends on the machine, so the test says which it saw.)
func TestStopWhileRestoringAHugeJournal(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 256 MiB journal")
	}
	d := newDaemon(t, "--no-prune", "--state-compact-bytes", strconv.Itoa(1<<30))
	d.start()
	const prog = 0x31000003
	// A SET and an UNSET in a journal of their own; copied over and
	// over, they make a journal that is long to read and holds nothing.
	d.set(prog, 1003)
	c := d.rpcClient()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ok, err := c.PmapUnset(ctx, prog, 1); !ok || err != nil {
		t.Fatalf("UNSET: %v %v", ok, err)
	}
	c.Close()
	d.set(prog+1, 1004)
	d.kill()
	j := journalFile(t, d.state)
	b, err := os.ReadFile(j)
	must(t, err)
	// The journal's 20-byte header (see registry/journal), the SET and
	// UNSET records, then the last SET's record.
	const headerLen = 20
	tail := lastRecord(t, b[headerLen:])
	churn := b[headerLen : len(b)-len(tail)]
	f, err := os.OpenFile(j, os.O_WRONLY|os.O_TRUNC, 0)
	must(t, err)
	w := bufio.NewWriter(f)
	w.Write(b[:headerLen])
	for n := 0; n < 256<<20; n += len(churn) {
		w.Write(churn)
	}
	w.Write(tail)
	must(t, w.Flush())
	must(t, f.Close())

	d.cmd = exec.Command(portmapdBin(t), d.args...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	from := len(d.log.String())
	must(t, d.cmd.Start())
	waitLocked(t, d.cmd.Process.Pid, d.state)
	must(t, d.cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		d.kill()
		t.Fatal("no exit within 30s of SIGTERM")
	}
	d.cmd = nil
	logged := d.log.String()[from:]
	t.Logf("stopped before serving: %v", strings.Contains(logged, "portmapd stopped before serving"))
	d.start()
	if !d.has(prog+1, netid.ProtoTCP) || d.has(prog, netid.ProtoTCP) {
		t.Errorf("after the interrupted start, the state is not as saved:\n%s", d.log.String())
	}
}

// lastRecord returns the last record of a journal's records (after its
// header): length u32, checksum u32, payload.
func lastRecord(t *testing.T, recs []byte) []byte {
	t.Helper()
	var last []byte
	for len(recs) >= 8 {
		n := 8 + int(uint32(recs[0])<<24|uint32(recs[1])<<16|uint32(recs[2])<<8|uint32(recs[3]))
		if n > len(recs) {
			t.Fatalf("journal cut in a record")
		}
		last, recs = recs[:n], recs[n:]
	}
	return last
}

// waitLocked waits until process pid holds an flock on dir (it then reads
// the state there), as /proc/locks shows.
func waitLocked(t *testing.T, pid int, dir string) {
	t.Helper()
	var st syscall.Stat_t
	must(t, syscall.Stat(dir, &st))
	id := fmt.Sprintf(":%d ", st.Ino)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile("/proc/locks")
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 5 && f[4] == strconv.Itoa(pid) && strings.Contains(line, id) {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("portmapd %d never locked %s", pid, dir)
}

// runOnce runs portmapd with args until it exits or its output shows
// stopWhen (when not empty), then stops it with SIGTERM. It returns the
// exit status and the output.
func runOnce(t *testing.T, stopWhen string, args ...string) (int, string) {
	t.Helper()
	var out netns.Output
	cmd := exec.Command(portmapdBin(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-tick.C:
			if stopWhen != "" && strings.Contains(out.String(), stopWhen) {
				cmd.Process.Signal(syscall.SIGTERM)
				err = <-done
				break wait
			}
		case <-deadline:
			cmd.Process.Kill()
			<-done
			t.Fatalf("portmapd %v neither exited nor served:\n%s", args, out.String())
		}
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatal(err)
	return -1, ""
}

// TestSecondInstanceLeavesTheFirstAlone starts a second portmapd beside a
// running one in each way a user might, and checks that the first keeps
// its sockets, keeps answering, and keeps saving its own state.
func TestSecondInstanceLeavesTheFirstAlone(t *testing.T) {
	first := newDaemon(t, "--no-prune")
	first.start()
	const prog = 0x31000004
	first.set(prog, 1004)
	lock := filepath.Join(first.dir, "lock")
	other := t.TempDir()
	args := func(change ...string) []string {
		a := append([]string(nil), first.args...)
		for i := 0; i+1 < len(change); i += 2 {
			found := false
			for j := range a {
				if a[j] == change[i] {
					a[j+1] = change[i+1]
					found = true
				}
			}
			if !found {
				a = append(a, change[i], change[i+1])
			}
		}
		return a
	}
	otherRPC := filepath.Join(other, "rpcbind.sock")
	const inUse = "in use: a running process answers on it"

	t.Run("with-the-lock", func(t *testing.T) {
		code, out := runOnce(t, "", first.args...)
		want := fmt.Sprintf("another rpcbind is already running. Aborting (lock file %s is held by pid %d, portmapd)", lock, first.cmd.Process.Pid)
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("exit %d, output:\n%s\nwant 1 and %q", code, out, want)
		}
	})
	t.Run("without-the-lock", func(t *testing.T) {
		code, out := runOnce(t, "", args("--lock-file", "", "--state-dir", filepath.Join(other, "state"))...)
		if code != 1 || !strings.Contains(out, inUse) {
			t.Errorf("exit %d, output:\n%s\nwant 1 and the local socket in use", code, out)
		}
	})
	t.Run("without-the-lock-on-the-same-http-socket", func(t *testing.T) {
		_, out := runOnce(t, inUse, args("--lock-file", "", "--socket", otherRPC, "--state-dir", filepath.Join(other, "state2"))...)
		if !strings.Contains(out, inUse) {
			t.Errorf("output:\n%s\nwant the HTTP socket in use", out)
		}
	})
	t.Run("without-the-lock-on-the-same-state-directory", func(t *testing.T) {
		_, out := runOnce(t, "portmapd serving", args("--lock-file", "", "--socket", otherRPC, "--http-socket", filepath.Join(other, "portmapd.sock"))...)
		want := fmt.Sprintf("in use by another portmapd (pid %d)", first.cmd.Process.Pid)
		if !strings.Contains(out, want) {
			t.Errorf("output:\n%s\nwant %q", out, want)
		}
	})

	if _, err := os.Lstat(first.rpc); err != nil {
		t.Fatalf("the first one's local socket is gone: %v", err)
	}
	if !first.has(prog, netid.ProtoTCP) || !first.httpUp() {
		t.Fatalf("the first one no longer answers as before:\n%s", first.log.String())
	}
	first.set(prog+1, 1005)
	first.kill()
	first.start()
	if !first.has(prog, netid.ProtoTCP) || !first.has(prog+1, netid.ProtoTCP) {
		t.Errorf("the first one's saved state lost registrations:\n%s", first.log.String())
	}
}

// TestLocalSocketInADirectoryEveryoneWrites: portmapd refuses to make its
// sockets, as root, where any user could swap them, and says why.
func TestLocalSocketInADirectoryEveryoneWrites(t *testing.T) {
	d := newDaemon(t)
	open := filepath.Join(d.dir, "open")
	must(t, os.Mkdir(open, 0o777))
	must(t, os.Chmod(open, 0o777))
	for _, flag := range []string{"--socket", "--lock-file"} {
		code, out := runOnce(t, "", append(append([]string(nil), d.args...), flag, filepath.Join(open, "x"))...)
		if code != 1 || !strings.Contains(out, "mode 0777 lets every user write it") {
			t.Errorf("%s in a 0777 directory: exit %d, output:\n%s", flag, code, out)
		}
	}
	if des, _ := os.ReadDir(open); len(des) != 0 {
		t.Errorf("left in the refused directory: %v", des)
	}
}

// TestRpcUserLinksTheWarmStartFiles is issue 9's escalation as its
// reporter ran it: _rpc, which owns rpcbind's /run/rpcbind, links the
// names root portmapd -w writes on SIGTERM to a root-only file. The file
// must keep its contents and owner, and the warm-start files must be
// written in place of the links.
func TestRpcUserLinksTheWarmStartFiles(t *testing.T) {
	needRoot(t, "to leave state as root and run portmapd as another user")
	rpc, err := user.Lookup("_rpc")
	if err != nil {
		t.Skip("no _rpc user: apt-get install rpcbind")
	}
	uid, _ := strconv.Atoi(rpc.Uid)
	gid, _ := strconv.Atoi(rpc.Gid)
	d := newDaemon(t, "-w", "--warm-start-dir", filepath.Join(t.TempDir(), "rpcbind"))
	warm := d.args[len(d.args)-1]
	must(t, os.Mkdir(warm, 0o770))
	must(t, os.Chown(warm, uid, gid))
	victim := filepath.Join(d.dir, "victim")
	must(t, os.WriteFile(victim, []byte("secret\n"), 0o600))
	for _, name := range []string{"rpcbind.xdr.tmp", "portmap.xdr.tmp", "rpcbind.xdr"} {
		link := filepath.Join(warm, name)
		must(t, os.Symlink(victim, link))
		must(t, os.Lchown(link, uid, gid))
	}
	d.start()
	d.set(0x31000006, 1006)
	d.stop()
	var st syscall.Stat_t
	must(t, syscall.Stat(victim, &st))
	if b, _ := os.ReadFile(victim); string(b) != "secret\n" || st.Uid != 0 {
		t.Errorf("the file _rpc linked to now holds %q, owner %d", b, st.Uid)
	}
	for _, name := range []string{"rpcbind.xdr", "portmap.xdr"} {
		must(t, syscall.Lstat(filepath.Join(warm, name), &st))
		if st.Mode&syscall.S_IFMT != syscall.S_IFREG || int(st.Uid) != uid {
			t.Errorf("%s: mode %o owner %d, want a regular file of _rpc's", name, st.Mode, st.Uid)
		}
	}
}
