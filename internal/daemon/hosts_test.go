package daemon_test

// The tests in this file run portmapd the way real hosts do, each in a
// throwaway host of its own (internal/netns): with its default paths in a
// /run of mode 0755, as root, as an unprivileged user, with -s, detached,
// beside someone else's sockets, and after other runs left their files.
// Each is named after what a user did.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/httpmap"
	pmd "github.com/portmapd/portmapd/internal/daemon"
	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/netid"
	"github.com/portmapd/portmapd/registry/warmstart"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// hostTimeout bounds every wait in these tests: generous, since the
// machine may be loaded; a pass never waits for it.
const hostTimeout = 20 * time.Second

// unprivileged is the user that unprivileged runs and other users'
// services run as.
const unprivileged = "nobody"

// publicDir returns a directory every user may read and enter, removed
// when t ends (t.TempDir's are root's alone).
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "portmapd-host-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tools returns portmapd and portmapctl where every user may run them.
func tools(t *testing.T) (portmapd, portmapctl string) {
	t.Helper()
	dir := publicDir(t)
	portmapd, portmapctl = filepath.Join(dir, "portmapd"), filepath.Join(dir, "portmapctl")
	copyExecutable(t, portmapdBin(t), portmapd)
	copyExecutable(t, portmapctlCmd.bin(t), portmapctl)
	return portmapd, portmapctl
}

// lookupID returns the uid and gid of the named user, skipping t when the
// host has no such user.
func lookupID(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no user %q on this host: %v", name, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// rpcNull calls the portmapper's NULL procedure from inside h.
func rpcNull(h *netns.Host, network, addr string) error {
	return h.Do(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := rpcbind.Dial(ctx, network, addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Null(ctx, xdr.PmapProg, xdr.PmapVers)
	})
}

// waitRPC waits until the portmapper answers over TCP and UDP at addr
// inside h; it fails t if p exits first.
func waitRPC(t *testing.T, h *netns.Host, p *netns.Proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(hostTimeout)
	for {
		errTCP, errUDP := rpcNull(h, "tcp", addr), rpcNull(h, "udp", addr)
		if errTCP == nil && errUDP == nil {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("portmapd exited (%v) before it served:\n%s", p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("portmapd does not answer at %s (tcp: %v, udp: %v):\n%s", addr, errTCP, errUDP, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM to p and fails t unless it exits.
func stop(t *testing.T, p *netns.Proc) {
	t.Helper()
	if !p.Stop(hostTimeout) {
		t.Fatalf("portmapd ignored SIGTERM:\n%s", p.Output())
	}
}

// mappingsAt returns the v2 table from the local socket at sock.
func mappingsAt(t *testing.T, sock string) map[[2]uint32]uint32 {
	t.Helper()
	c, err := dialUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := c.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[[2]uint32]uint32{}
	for _, m := range ms {
		out[[2]uint32{m.Prog, m.Prot}] = m.Port
	}
	return out
}

// namedAt returns the named services the HTTP socket at sock lists, as
// name → uid ("" when unknown).
func namedAt(t *testing.T, sock string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ins, err := httpmap.NewLocalClient(sock).List(ctx, httpmap.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, in := range ins {
		if in.RPC == nil {
			out[in.Service] = in.User()
		}
	}
	return out
}

// run runs cmd and fails t unless it succeeds.
func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// waitFor polls cond until it holds, failing t with what after
// hostTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if !eventually(hostTimeout, cond) {
		t.Fatalf("timed out waiting until %s", what)
	}
}

// ownerOf returns the uid owning path.
func ownerOf(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Uid)
}

// linesWith returns the lines of out that contain s.
func linesWith(out, s string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestUserRunsUnprivilegedAfterRootRun: portmapd ran as root with its
// defaults and was killed, leaving its state directory (root's, 0700),
// its sockets and its lock in /run. A user then runs `make run`, which
// serves on port 1111 as that user; it must serve promptly and stop on
// Ctrl-C.
func TestUserRunsUnprivilegedAfterRootRun(t *testing.T) {
	h := netns.NewHost(t, "after")
	bin, ctl := tools(t)
	uid, gid := lookupID(t, unprivileged)

	root := h.Start(h.Command(bin, "-f"))
	waitRPC(t, h, root, "127.0.0.1:111")
	run(t, h.Command(ctl, "set", "300100", "1", "tcp", "4000"))
	root.Kill()
	for _, left := range []string{"portmapd", "rpcbind.sock", "portmapd.sock", "rpcbind.lock"} {
		if _, err := os.Lstat(filepath.Join(h.Run, left)); err != nil {
			t.Fatalf("the root run left no /run/%s: %v", left, err)
		}
	}

	// make run from a checkout: the repository's Makefile, with the
	// binary already built (GO=true stands for the build).
	checkout := publicDir(t)
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(checkout, "Makefile"), mk, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(checkout, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyExecutable(t, bin, filepath.Join(checkout, "bin", "portmapd"))
	dev := filepath.Join(publicDir(t), "dev")
	if err := os.Mkdir(dev, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dev, uid, gid); err != nil {
		t.Fatal(err)
	}
	p := h.Start(h.CommandAs(unprivileged, "make", "-s", "-C", checkout, "run", "GO=true", "DEV_DIR="+dev))
	waitRPC(t, h, p, "127.0.0.1:1111")
	if !strings.Contains(p.Output(), "not root, so serving RPC on unprivileged port 1111") {
		t.Errorf("make run did not say why it serves on 1111:\n%s", p.Output())
	}
	// Ctrl-C: SIGINT to the foreground process group.
	if err := syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(hostTimeout):
		t.Fatalf("make run ignored Ctrl-C:\n%s", p.Output())
	}
}

// TestAdminRunsWithDashS: an administrator runs portmapd -s -w, so that it
// serves as an unprivileged user once its sockets are open. Everything
// after the drop must work: saving registrations, HTTP registration over
// the socket by other users, pruning another user's dead service, and on
// SIGTERM writing warm-start files that rpcbind -w reads. A restart with
// -s restores what was saved.
func TestAdminRunsWithDashS(t *testing.T) {
	h := netns.NewHost(t, "dashs")
	bin, ctl := tools(t)
	runAs := pmd.DefaultRunAs()
	uid, gid := lookupID(t, runAs)
	if uid == 0 {
		t.Skipf("-s would run as %s, which is root here", runAs)
	}
	args := []string{bin, "-f", "-s", "--prune-grace", "300ms", "--prune-interval", "100ms", "--http", "127.0.0.1:8111"}
	p := h.Start(h.Command(append(args, "-w")...))
	waitRPC(t, h, p, "127.0.0.1:111")
	rpcSock, httpSock := filepath.Join(h.Run, "rpcbind.sock"), filepath.Join(h.Run, "portmapd.sock")

	t.Run("gave up root", func(t *testing.T) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{
			"Uid:":    strings.Repeat(strconv.Itoa(uid)+" ", 4),
			"Gid:":    strings.Repeat(strconv.Itoa(gid)+" ", 4),
			"Groups:": "",
			"CapInh:": "0000000000000000",
			"CapPrm:": "0000000000000000",
			"CapEff:": "0000000000000000",
			"CapAmb:": "0000000000000000",
		}
		for _, line := range strings.Split(string(status), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			if w, ok := want[f[0]]; ok {
				if got := strings.Join(f[1:], " "); got != strings.TrimSpace(w) {
					t.Errorf("%s %q, want %q", f[0], got, strings.TrimSpace(w))
				}
			}
		}
		// Of the files it holds open, none is root's but the lock that
		// keeps a second portmapper out.
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.Cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.Cmd.Process.Pid, fd.Name()))
			if err != nil || !strings.HasPrefix(target, "/") || target == "/dev/null" || strings.HasSuffix(target, "/rpcbind.lock") {
				continue
			}
			var st unix.Stat_t
			if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%s", p.Cmd.Process.Pid, fd.Name()), &st); err != nil {
				continue
			}
			if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Uid == 0 {
				t.Errorf("descriptor %s is root's file %s", fd.Name(), target)
			}
		}
	})

	// Someone else's services, registered with the daemon that is no
	// longer root: one that stays, one that exits.
	listener, err := h.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	kept := listener.Addr().(*net.TCPAddr).Port
	run(t, h.Command(ctl, "set", "300100", "1", "tcp", strconv.Itoa(kept)))
	run(t, h.CommandAs(unprivileged, ctl, "set", "--version", "3", "300200", "1", "tcp", "4242"))
	h.Start(h.Command(ctl, "register", "kept.example.com", "9200", "--", "sleep", "600"))
	web := h.Start(h.CommandAs(unprivileged, ctl, "register", "web.example.com", "9100", "--", "sleep", "600"))

	t.Run("HTTP registration over the socket", func(t *testing.T) {
		nobody, _ := lookupID(t, unprivileged)
		waitFor(t, "both named services are listed", func() bool {
			n := namedAt(t, httpSock)
			_, ok := n["kept.example.com"]
			return ok && n["web.example.com"] == strconv.Itoa(nobody)
		})
		web.Kill()
		waitFor(t, "web.example.com ends with its process", func() bool {
			_, ok := namedAt(t, httpSock)["web.example.com"]
			return !ok
		})
	})

	t.Run("pruning another user's dead service", func(t *testing.T) {
		waitFor(t, "prog 300200 is pruned", func() bool {
			_, ok := mappingsAt(t, rpcSock)[[2]uint32{300200, netid.ProtoTCP}]
			return !ok
		})
		lines := linesWith(p.Output(), "pruned registration")
		if len(lines) != 1 || !strings.Contains(lines[0], "prog=300200") || !strings.Contains(lines[0], "owner=65534") || !strings.Contains(lines[0], "has exited") {
			t.Errorf("pruning logged %q", lines)
		}
		if _, ok := mappingsAt(t, rpcSock)[[2]uint32{300100, netid.ProtoTCP}]; !ok {
			t.Error("prog 300100, whose port is bound, was pruned too")
		}
	})

	t.Run("state written after the drop", func(t *testing.T) {
		state := filepath.Join(h.Run, "portmapd")
		if got := ownerOf(t, state); got != uid {
			t.Errorf("state directory owned by uid %d, want %d (%s)", got, uid, runAs)
		}
		files, _ := filepath.Glob(filepath.Join(state, "journal.*"))
		if len(files) == 0 {
			t.Fatal("no journal in the state directory")
		}
		for _, f := range files {
			if got := ownerOf(t, f); got != uid {
				t.Errorf("%s owned by uid %d, want %d", f, got, uid)
			}
		}
		if strings.Contains(p.Output(), "level=ERROR") {
			t.Errorf("errors logged:\n%s", p.Output())
		}
	})

	stop(t, p)
	warm := filepath.Join(h.Run, "rpcbind")
	t.Run("warm-start files written on exit", func(t *testing.T) {
		for _, name := range []string{warmstart.RpcbindFile, warmstart.PortmapFile} {
			if got := ownerOf(t, filepath.Join(warm, name)); got != uid {
				t.Errorf("%s owned by uid %d, want %d", name, got, uid)
			}
		}
		saved, err := warmstart.Read(warm)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range saved.Entries {
			found = found || e.Prog == 300100
		}
		if !found {
			t.Errorf("warm-start files lack prog 300100: %+v", saved.Entries)
		}
	})

	t.Run("restored after a restart", func(t *testing.T) {
		p := h.Start(h.Command(args...))
		waitRPC(t, h, p, "127.0.0.1:111")
		if _, ok := mappingsAt(t, rpcSock)[[2]uint32{300100, netid.ProtoTCP}]; !ok {
			t.Error("prog 300100 not restored")
		}
		named := namedAt(t, httpSock)
		if _, ok := named["kept.example.com"]; !ok {
			t.Errorf("kept.example.com not restored: %v", named)
		}
		if _, ok := named["web.example.com"]; ok {
			t.Error("web.example.com, whose process exited, came back")
		}
		stop(t, p)
	})

	t.Run("restored by a run as root, without -s", func(t *testing.T) {
		p := h.Start(h.Command(bin, "-f", "--http", "127.0.0.1:8111"))
		waitRPC(t, h, p, "127.0.0.1:111")
		if _, ok := mappingsAt(t, rpcSock)[[2]uint32{300100, netid.ProtoTCP}]; !ok {
			t.Errorf("prog 300100 not restored:\n%s", p.Output())
		}
		if got := ownerOf(t, filepath.Join(h.Run, "portmapd")); got != 0 {
			t.Errorf("state directory owned by uid %d, want root's", got)
		}
		stop(t, p)
	})

	t.Run("rpcbind -w reads the warm-start files", func(t *testing.T) {
		rpcbindBin, err := exec.LookPath("rpcbind")
		if err != nil {
			t.Skip("rpcbind not installed (apt-get install rpcbind)")
		}
		rb := h.Start(h.Command(rpcbindBin, "-w", "-f"))
		waitRPC(t, h, rb, "127.0.0.1:111")
		out := run(t, h.Command("rpcinfo", "-p", "127.0.0.1"))
		listed := false
		for _, l := range strings.Split(out, "\n") {
			listed = listed || strings.Join(strings.Fields(l), " ") == fmt.Sprintf("300100 1 tcp %d", kept)
		}
		if !listed {
			t.Errorf("rpcbind -w does not list prog 300100 on port %d:\n%s", kept, out)
		}
		stop(t, rb)
	})
}

// startServingHTTP starts portmapd -f in h and waits until it serves RPC
// and has said where it serves HTTP.
func startServingHTTP(t *testing.T, h *netns.Host, bin string) *netns.Proc {
	t.Helper()
	p := h.Start(h.Command(bin, "-f"))
	waitRPC(t, h, p, "127.0.0.1:111")
	waitFor(t, "portmapd says where it serves HTTP", func() bool { return strings.Contains(p.Output(), `msg="serving HTTP"`) })
	return p
}

// TestHTTPPortTaken: something else already listens on :8111 when
// portmapd starts. The HTTP face is optional: portmapd says so in one
// line naming the address and the flag, and serves RPC, the HTTP socket
// and HTTP on port 111.
func TestHTTPPortTaken(t *testing.T) {
	h := netns.NewHost(t, "http")
	bin, _ := tools(t)
	other, err := h.Listen("tcp", ":8111")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	p := startServingHTTP(t, h, bin)
	lines := linesWith(p.Output(), "8111")
	if len(lines) != 1 || !strings.Contains(lines[0], "addr=:8111") || !strings.Contains(lines[0], "--http off") || !strings.Contains(lines[0], "address already in use") {
		t.Errorf("want one line naming :8111 and --http off, got %q", lines)
	}
	serving := linesWith(p.Output(), `msg="serving HTTP"`)
	if len(serving) != 1 || !strings.Contains(serving[0], "socket=/run/portmapd.sock") || !strings.Contains(serving[0], "rpc_tcp_port=111") || strings.Contains(serving[0], "diverted") {
		t.Errorf("serving line %q", serving)
	}
	namedAt(t, filepath.Join(h.Run, "portmapd.sock"))
	if err := httpGet(h, "127.0.0.1:111"); err != nil {
		t.Errorf("HTTP on port 111: %v", err)
	}
	stop(t, p)
}

// TestHTTPSocketTaken: another process answers on /run/portmapd.sock when
// portmapd starts. portmapd leaves it alone, says so in one line, and
// serves RPC and HTTP on :8111.
func TestHTTPSocketTaken(t *testing.T) {
	h := netns.NewHost(t, "sock")
	bin, _ := tools(t)
	sock := filepath.Join(h.Run, "portmapd.sock")
	other, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	p := startServingHTTP(t, h, bin)
	lines := linesWith(p.Output(), "portmapd.sock")
	var unavailable []string
	for _, l := range lines {
		if strings.Contains(l, "unavailable") {
			unavailable = append(unavailable, l)
		}
	}
	if len(unavailable) != 1 || !strings.Contains(unavailable[0], "socket=/run/portmapd.sock") || !strings.Contains(unavailable[0], "--http-socket off") {
		t.Errorf("want one line naming the socket and --http-socket off, got %q", lines)
	}
	if err := httpGet(h, "127.0.0.1:8111"); err != nil {
		t.Errorf("HTTP on :8111: %v", err)
	}
	// The other process still has its socket.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("the other process's socket is gone: %v", err)
	}
	c.Close()
	stop(t, p)
	if c, err := net.Dial("unix", sock); err != nil {
		t.Errorf("after portmapd stopped, the other process's socket is gone: %v", err)
	} else {
		c.Close()
	}
}

// httpGet fetches /portmap from addr inside h.
func httpGet(h *netns.Host, addr string) error {
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) {
			return h.Dial("tcp", addr)
		}},
	}
	resp, err := client.Get("http://" + addr + "/portmap")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "\n100000.oncrpc.alt,") {
		return fmt.Errorf("status %s, body %q", resp.Status, body)
	}
	return nil
}

// hungPasswd makes a FIFO to stand for /etc/passwd, so that looking a
// user up blocks in opening it (as a user database that does not answer
// blocks), and returns it and a function that waits until a process in h
// is blocked there. Opening a FIFO that has no writer goes on waiting
// after a signal is handled.
func hungPasswd(t *testing.T, h *netns.Host) (fifo string, waitBlocked func()) {
	t.Helper()
	fifo = filepath.Join(t.TempDir(), "passwd")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	return fifo, func() {
		t.Helper()
		waitFor(t, "portmapd looks a user up", func() bool {
			out, _ := exec.Command("ip", "netns", "pids", h.Name).Output()
			for _, pid := range strings.Fields(string(out)) {
				tasks, _ := filepath.Glob("/proc/" + pid + "/task/*/wchan")
				for _, task := range tasks {
					if b, _ := os.ReadFile(task); string(b) == "wait_for_partner" {
						return true
					}
				}
			}
			return false
		})
	}
}

// withPasswd is the shell that runs a command with the file $0 as its
// /etc/passwd (in its own mount namespace, so only there).
const withPasswd = `mount --bind "$0" /etc/passwd || exit 125; exec "$@"`

// TestSIGTERMDuringStartup: an administrator stops portmapd -s while it
// is still starting, held up looking up the user to run as in a user
// database that does not answer; once in the foreground, once while the
// command that detaches it waits. It stops, and the detaching command
// takes the daemon it started with it and says so.
func TestSIGTERMDuringStartup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		detached bool
	}{
		{"in the foreground", []string{"-f", "-s"}, false},
		{"detaching", []string{"-s", "--log-file", "/run/portmapd.log"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := netns.NewHost(t, "term")
			bin, _ := tools(t)
			fifo, blocked := hungPasswd(t, h)
			p := h.Start(h.Command(append([]string{"sh", "-c", withPasswd, fifo, bin}, tc.args...)...))
			blocked()
			stop(t, p)
			if strings.Contains(p.Output(), "portmapd serving") {
				t.Errorf("served without its user:\n%s", p.Output())
			}
			if tc.detached && !strings.Contains(p.Output(), "stopped before it served") {
				t.Errorf("the detaching command did not say the daemon stopped:\n%s", p.Output())
			}
			waitFor(t, "no process is left in the host", func() bool {
				out, err := exec.Command("ip", "netns", "pids", h.Name).Output()
				return err == nil && len(strings.TrimSpace(string(out))) == 0
			})
		})
	}
}

// TestSIGTERMWithClientsThatHang: clients hold connections when the
// administrator stops portmapd: one sends calls and reads none of the
// replies, one sends half an HTTP request, one connects to the local
// socket and says nothing. portmapd stops without waiting for them.
func TestSIGTERMWithClientsThatHang(t *testing.T) {
	h := netns.NewHost(t, "hang")
	bin, _ := tools(t)
	p := h.Start(h.Command(bin, "-f"))
	waitRPC(t, h, p, "127.0.0.1:111")

	rpc, err := h.Dial("tcp4", "127.0.0.1:111")
	if err != nil {
		t.Fatal(err)
	}
	defer rpc.Close()
	_ = rpc.(*net.TCPConn).SetReadBuffer(4096)
	var e xdr.Encoder
	(&xdr.CallHeader{XID: 1, RPCVers: 2, Prog: xdr.PmapProg, Vers: xdr.PmapVers, Proc: xdr.PmapProcDump}).Encode(&e)
	rec := append([]byte{0x80, 0, 0, byte(len(e.Bytes()))}, e.Bytes()...)
	batch := []byte(strings.Repeat(string(rec), 256))
	// Until both directions are full and portmapd is stuck writing.
	for deadline := time.Now().Add(hostTimeout); ; {
		_ = rpc.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := rpc.Write(batch); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("portmapd went on reading calls whose replies nobody reads")
		}
	}
	web, err := h.Dial("tcp", "127.0.0.1:8111")
	if err != nil {
		t.Fatal(err)
	}
	defer web.Close()
	if _, err := io.WriteString(web, "GET /portmap HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	local, err := net.Dial("unix", filepath.Join(h.Run, "rpcbind.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()

	began := time.Now()
	stop(t, p)
	t.Logf("stopped %v after SIGTERM", time.Since(began).Round(time.Millisecond))
}

// hideSyslog is the shell that runs a command in a host without a
// syslog at /dev/log (in its own mount namespace, so only there).
const hideSyslog = `if [ -e /dev/log ]; then mount --bind /dev/null /dev/log || exit 125; fi; exec "$@"`

// TestDetachedDaemonLogs: portmapd is started without -f, so it detaches.
// What it logs until it serves appears where it was started; afterwards,
// a prune reason among the rest goes to syslog, or, on a host without
// one, to its log file. The command returns even to a caller that reads
// its output to the end, and a start that fails says why, once.
func TestDetachedDaemonLogs(t *testing.T) {
	bin, ctl := tools(t)
	start := func(t *testing.T, h *netns.Host, args ...string) *netns.Proc {
		t.Helper()
		argv := append([]string{"sh", "-c", hideSyslog, "sh", bin, "--prune-grace", "300ms", "--prune-interval", "100ms"}, args...)
		return h.Start(h.Command(argv...))
	}
	// started waits for the detaching command to return, and checks
	// that it relayed the daemon's start.
	started := func(t *testing.T, p *netns.Proc) {
		t.Helper()
		select {
		case <-p.Done():
		case <-time.After(hostTimeout):
			t.Fatalf("the detaching command did not return (holding its output open?):\n%s", p.Output())
		}
		if err := p.Err(); err != nil {
			t.Fatalf("portmapd: %v\n%s", err, p.Output())
		}
		if !strings.Contains(p.Output(), "portmapd serving") {
			t.Errorf("the start was not relayed to the terminal:\n%s", p.Output())
		}
	}
	prune := func(t *testing.T, h *netns.Host) {
		t.Helper()
		run(t, h.Command(ctl, "set", "--version", "3", "300300", "1", "tcp", "4343"))
	}

	// isPruneLine reports whether s has the line that says why the
	// registration prune made was removed.
	isPruneLine := func(s string) bool {
		for _, l := range linesWith(s, `msg="pruned registration"`) {
			if strings.Contains(l, "prog=300300") && strings.Contains(l, `reason="registering process`) {
				return true
			}
		}
		return false
	}

	t.Run("no syslog: log file", func(t *testing.T) {
		h := netns.NewHost(t, "logf")
		p := start(t, h, "--log-file", "/run/portmapd.log")
		started(t, p)
		prune(t, h)
		logFile := filepath.Join(h.Run, "portmapd.log")
		waitFor(t, "the prune reason is in the log file", func() bool {
			b, _ := os.ReadFile(logFile)
			return isPruneLine(string(b)) && strings.Contains(string(b), "portmapd serving")
		})
	})

	t.Run("syslog", func(t *testing.T) {
		h := netns.NewHost(t, "logs")
		// /var/run/syslog, where Go's syslog looks after /dev/log.
		syslogd, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(h.Run, "syslog"), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer syslogd.Close()
		got := make(chan string, 100)
		go func() {
			buf := make([]byte, 8192)
			for {
				n, err := syslogd.Read(buf)
				if err != nil {
					close(got)
					return
				}
				got <- string(buf[:n])
			}
		}()
		p := start(t, h, "--log-file", "/run/portmapd.log")
		started(t, p)
		prune(t, h)
		deadline := time.After(hostTimeout)
		for found := false; !found; {
			select {
			case m := <-got:
				// daemon.info is <30>.
				found = strings.HasPrefix(m, "<30>") && strings.Contains(m, "portmapd") && isPruneLine(m)
			case <-deadline:
				t.Fatal("no prune reason reached syslog")
			}
		}
		if _, err := os.Stat(filepath.Join(h.Run, "portmapd.log")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("with syslog there, a log file was written too (%v)", err)
		}
	})

	t.Run("start fails", func(t *testing.T) {
		h := netns.NewHost(t, "logx")
		taken, err := h.ListenPacket("udp4", "0.0.0.0:111")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		p := start(t, h, "--log-file", "/run/portmapd.log")
		select {
		case <-p.Done():
		case <-time.After(hostTimeout):
			t.Fatalf("the detaching command did not return:\n%s", p.Output())
		}
		if p.Err() == nil {
			t.Fatalf("start succeeded on a taken port:\n%s", p.Output())
		}
		if n := strings.Count(p.Output(), "address already in use"); n != 1 {
			t.Errorf("the reason is said %d times, want once:\n%s", n, p.Output())
		}
	})
}
