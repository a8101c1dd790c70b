// Package netns builds throwaway hosts for tests that need what a real
// host has and a test process lacks: its own network stack, a /run of its
// own at mode 0755, and neighbours on another host.
//
// A Host is a network namespace (`ip netns add`) with loopback up and a
// directory of the test's that every command started in it sees as /run.
// Link joins two hosts with a veth pair and no addresses, so a test adds
// them when it chooses, after a daemon has started, as happens on real
// hosts. Commands run in a host through Command or Start; Go code opens
// sockets inside a host through Do, Dial and Listen.
//
// Everything here needs root, iproute2 and util-linux; Check says what is
// missing, and Require skips a test with that message.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/portmapd/portmapd/internal/syncio"
)

// tools are the programs a Host runs and the Debian packages that have
// them.
var tools = [][2]string{
	{"ip", "iproute2"},
	{"unshare", "util-linux"},
	{"setpriv", "util-linux"},
	{"mount", "mount"},
}

// Check reports why hosts cannot be built here, or nil when they can.
func Check() error {
	if runtime.GOOS != "linux" {
		return errors.New("netns: test hosts need Linux network namespaces")
	}
	if os.Geteuid() != 0 {
		return errors.New("netns: test hosts need root for network namespaces (run make test as root)")
	}
	for _, tl := range tools {
		if _, err := exec.LookPath(tl[0]); err != nil {
			return fmt.Errorf("netns: test hosts need %s: apt-get install %s", tl[0], tl[1])
		}
	}
	return nil
}

// Require skips t unless hosts can be built, saying why.
func Require(t testing.TB) {
	t.Helper()
	if err := Check(); err != nil {
		t.Skip(err.Error())
	}
}

// serial tells apart the namespaces of one test process.
var serial atomic.Uint32

// A Host is one network namespace with its own /run.
type Host struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// Run is the directory that commands in the host see as /run: mode
	// 0755 as on a real host (a bare tmpfs is 1777 and hides permission
	// bugs), with /run/lock at 1777.
	Run string

	t     testing.TB
	mu    sync.Mutex
	procs []*Proc
}

// NewHost makes a host whose namespace name ends in label. The namespace,
// every process left in it and its /run are removed when t ends.
func NewHost(t testing.TB, label string) *Host {
	t.Helper()
	Require(t)
	// The name holds this process's pid, so that a namespace a killed
	// test run left behind under the same name can only be one of a dead
	// process that had this pid before: it is removed first.
	name := fmt.Sprintf("pm%d-%d%s", os.Getpid(), serial.Add(1), label)
	run := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	// Mkdir's mode passes through the umask; a real /run is 0755 and
	// /run/lock 1777 whatever the umask.
	if err := os.Chmod(run, 0o755); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(run, "lock")
	if err := os.Mkdir(lock, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lock, 0o1777); err != nil {
		t.Fatal(err)
	}
	h := &Host{Name: name, Run: run, t: t}
	if _, err := os.Stat(filepath.Join("/run/netns", name)); err == nil {
		h.remove()
	}
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(h.remove)
	h.MustIP("link", "set", "lo", "up")
	return h
}

// remove kills what still runs in the host and deletes its namespace.
func (h *Host) remove() {
	h.mu.Lock()
	procs := h.procs
	h.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	// Processes a test started by other means (a daemon that detached,
	// a service a client spawned) would keep the namespace alive.
	if out, err := exec.Command("ip", "netns", "pids", h.Name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", h.Name).CombinedOutput(); err != nil {
		h.t.Errorf("ip netns del %s: %v\n%s", h.Name, err, out)
	}
}

// A Link is a veth pair between two hosts.
type Link struct {
	// A and B are the interface names in the first and second host.
	A, B string
}

// Connect joins a and b with a veth pair, both ends up and without
// addresses.
func Connect(t testing.TB, a, b *Host) Link {
	t.Helper()
	n := serial.Add(1)
	// Interface names are at most 15 bytes; they only need to be
	// unique while they are both still in the root namespace.
	l := Link{A: fmt.Sprintf("pmv%da", n), B: fmt.Sprintf("pmv%db", n)}
	mustRun(t, "ip", "link", "add", l.A, "netns", a.Name, "type", "veth", "peer", "name", l.B, "netns", b.Name)
	a.MustIP("link", "set", l.A, "up")
	b.MustIP("link", "set", l.B, "up")
	return l
}

// IP runs `ip ARGS` in the host.
func (h *Host) IP(args ...string) error {
	out, err := exec.Command("ip", append([]string{"-n", h.Name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip -n %s %s: %w: %s", h.Name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// MustIP runs `ip ARGS` in the host and fails the test if it fails.
func (h *Host) MustIP(args ...string) {
	h.t.Helper()
	if err := h.IP(args...); err != nil {
		h.t.Fatal(err)
	}
}

// AddAddr adds prefix (such as "10.0.0.2/24" or "fd00::2/64") to dev.
// IPv6 addresses skip duplicate address detection so that they can be
// used at once, as a test needs.
func (h *Host) AddAddr(dev, prefix string) {
	h.t.Helper()
	args := []string{"addr", "add", prefix, "dev", dev}
	if strings.Contains(prefix, ":") {
		args = append(args, "nodad")
	}
	h.MustIP(args...)
}

// DelAddr removes prefix from dev.
func (h *Host) DelAddr(dev, prefix string) {
	h.t.Helper()
	h.MustIP("addr", "del", prefix, "dev", dev)
}

// Sysctl sets a sysctl inside the host, such as
// "net.ipv6.conf.all.disable_ipv6=1".
func (h *Host) Sysctl(setting string) {
	h.t.Helper()
	if out, err := h.Command("sysctl", "-q", "-w", setting).CombinedOutput(); err != nil {
		h.t.Fatalf("sysctl %s in %s: %v\n%s", setting, h.Name, err, out)
	}
}

// inHost is the shell that gives a command the host's /run, then runs it,
// as a user when $PM_USER is set.
const inHost = `mount --bind "$PM_RUN" /run || exit 125
if [ -n "$PM_USER" ]; then
	exec setpriv --reuid="$PM_USER" --regid="$PM_GROUP" --init-groups --reset-env -- "$@"
fi
exec "$@"`

// Command returns a command that runs argv in the host as root, seeing
// the host's /run.
func (h *Host) Command(argv ...string) *exec.Cmd {
	return h.CommandAs("", argv...)
}

// CommandAs is Command run as user (a name or uid from the passwd file)
// with that user's groups; "" is root. The command starts with the
// environment of a login of that user (setpriv --reset-env) plus
// cmd.Env's additions.
func (h *Host) CommandAs(user string, argv ...string) *exec.Cmd {
	group := ""
	if user != "" {
		group = primaryGroup(user)
	}
	args := append([]string{"netns", "exec", h.Name, "unshare", "-m", "--propagation", "private",
		"sh", "-c", inHost, "in-" + h.Name}, argv...)
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), "PM_RUN="+h.Run, "PM_USER="+user, "PM_GROUP="+group)
	return cmd
}

// primaryGroup is user's primary group id, as setpriv --regid needs it.
func primaryGroup(user string) string {
	out, err := exec.Command("id", "-g", user).Output()
	if err != nil {
		return user
	}
	return strings.TrimSpace(string(out))
}

// Do runs fn with the calling goroutine's thread inside the host's
// network namespace. Sockets fn opens stay in that namespace after Do
// returns.
func (h *Host) Do(fn func() error) error {
	target, err := os.Open(filepath.Join("/run/netns", h.Name))
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	defer target.Close()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: %w", err)
	}
	defer self.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: setns %s: %w", h.Name, err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with this goroutine rather
		// than serve others in the wrong namespace.
		return fmt.Errorf("netns: back from %s: %w", h.Name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// openIn runs open inside h and returns what it opened: a socket
// belongs to the namespace it was made in.
func openIn[T any](h *Host, open func() (T, error)) (T, error) {
	var v T
	err := h.Do(func() error {
		var err error
		v, err = open()
		return err
	})
	return v, err
}

// Dial connects from inside the host.
func (h *Host) Dial(network, addr string) (net.Conn, error) {
	return openIn(h, func() (net.Conn, error) { return net.DialTimeout(network, addr, 5*time.Second) })
}

// Listen listens inside the host.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	return openIn(h, func() (net.Listener, error) { return net.Listen(network, addr) })
}

// ListenPacket opens a datagram socket inside the host.
func (h *Host) ListenPacket(network, addr string) (net.PacketConn, error) {
	return openIn(h, func() (net.PacketConn, error) { return net.ListenPacket(network, addr) })
}

// A Proc is a process started in a host, with its output kept.
type Proc struct {
	Cmd  *exec.Cmd
	out  *Output
	done chan struct{}
	err  error
}

// Output collects what a process writes, safely for concurrent reads.
type Output = syncio.Buffer

// Start starts cmd (from Command or CommandAs) with its standard output
// and error collected. It is killed when the test ends, and its output is
// logged if the test failed.
func (h *Host) Start(cmd *exec.Cmd) *Proc {
	h.t.Helper()
	p := &Proc{Cmd: cmd, out: &Output{}, done: make(chan struct{})}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	// Its own process group, so that Kill reaches what it started.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("start %s in %s: %v", strings.Join(cmd.Args, " "), h.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	h.t.Cleanup(func() {
		p.Kill()
		if h.t.Failed() {
			h.t.Logf("output of %s in %s:\n%s", cmd.Args[len(cmd.Args)-1], h.Name, p.Output())
		}
	})
	return p
}

// Output is what the process has written so far.
func (p *Proc) Output() string { return p.out.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the process's exit error, once Done is closed.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process (not to ip netns exec's helpers, which
// exec into it).
func (p *Proc) Signal(sig syscall.Signal) error {
	return p.Cmd.Process.Signal(sig)
}

// Stop sends SIGTERM and waits up to limit for the process to exit; it
// reports whether it did. A process still running is then killed.
func (p *Proc) Stop(limit time.Duration) bool {
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return true
	case <-time.After(limit):
		p.Kill()
		return false
	}
}

// Kill kills the process and its group and waits for it.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// WaitOutput waits until the process's output contains s, the process
// exits without writing it, or ctx ends.
func (p *Proc) WaitOutput(ctx context.Context, s string) error {
	for {
		if strings.Contains(p.Output(), s) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), s) {
				return nil
			}
			return fmt.Errorf("netns: process exited (%v) without writing %q", p.err, s)
		case <-ctx.Done():
			return fmt.Errorf("netns: %q not written: %w", s, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitDial waits until a connection from inside the host to addr
// succeeds, as a way to know a server is up.
func (h *Host) WaitDial(ctx context.Context, network, addr string) error {
	for {
		c, err := h.Dial(network, addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netns: %s %s in %s not reachable: %w (last: %v)", network, addr, h.Name, ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func mustRun(t testing.TB, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// ServeEach accepts connections from ln until it fails, and serves each
// in a goroutine of its own, closing it once serve returns: a service for
// a test to reach.
func ServeEach(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			serve(c)
		}()
	}
}
