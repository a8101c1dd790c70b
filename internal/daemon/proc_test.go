package daemon_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/internal/netns"
	"github.com/portmapd/portmapd/rpcbind"
	"github.com/portmapd/portmapd/xdr"
)

// A builtCommand is one of the repository's commands, built once for the
// test run unless the environment names a binary.
type builtCommand struct {
	env, pkg string
	once     sync.Once
	path     string
	err      error
}

var (
	portmapdCmd   = &builtCommand{env: "PORTMAPD_BIN", pkg: "github.com/portmapd/portmapd/cmd/portmapd"}
	portmapctlCmd = &builtCommand{env: "PORTMAPCTL_BIN", pkg: "github.com/portmapd/portmapd/cmd/portmapctl"}
)

// bin returns $env, or the command built once for the test run.
func (b *builtCommand) bin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(b.env); p != "" {
		return p
	}
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "portmapd-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(b.pkg))
		out, err := exec.Command("go", "build", "-o", b.path, b.pkg).CombinedOutput()
		if err != nil {
			b.err = &buildError{err, out}
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// portmapdBin returns $PORTMAPD_BIN, or a portmapd built once for the
// test run.
func portmapdBin(t *testing.T) string { return portmapdCmd.bin(t) }

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + ": " + string(e.out) }

// A daemon is a portmapd process whose sockets and state are all in one
// temporary directory, serving RPC on the local socket and a random port.
type daemon struct {
	t     *testing.T
	dir   string
	args  []string
	cmd   *exec.Cmd
	log   *netns.Output
	rpc   string // local RPC socket
	http  string // local HTTP socket
	state string
	// wrap, when set, is the command portmapd runs under (prlimit ...).
	wrap []string
	// cred, when set, is the user portmapd runs as.
	cred *syscall.Credential
}

// needRoot skips t unless it runs as root, which it needs for why, and
// every one of tools is installed.
func needRoot(t *testing.T, why string, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root " + why)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
}

func newDaemon(t *testing.T, extra ...string) *daemon {
	dir := t.TempDir()
	d := &daemon{
		t:     t,
		dir:   dir,
		rpc:   filepath.Join(dir, "rpcbind.sock"),
		http:  filepath.Join(dir, "portmapd.sock"),
		state: filepath.Join(dir, "state"),
		log:   &netns.Output{},
	}
	d.args = append([]string{"-f", "--port", "0", "--abstract-socket=false",
		"--socket", d.rpc, "--http", "off", "--http-socket", d.http,
		"--lock-file", filepath.Join(dir, "lock"), "--state-dir", d.state}, extra...)
	t.Cleanup(func() {
		d.kill()
		if t.Failed() {
			t.Logf("portmapd log:\n%s", d.log.String())
		}
	})
	return d
}

// start starts portmapd and waits until it answers on its local socket.
func (d *daemon) start() {
	d.t.Helper()
	argv := append(append(slices.Clone(d.wrap), portmapdBin(d.t)), d.args...)
	d.cmd = exec.Command(argv[0], argv[1:]...)
	if d.cred != nil {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.cred}
	}
	d.cmd.Stdout = d.log
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	// Generous: a start may restore a 256 MiB journal first
	// (TestStopWhileRestoringAHugeJournal), on a loaded machine.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := dialUnix(d.rpc); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err = c.Null(ctx, xdr.PmapProg, xdr.PmapVers)
			cancel()
			c.Close()
			if err == nil && d.httpUp() {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	d.t.Fatalf("portmapd did not start:\n%s", d.log.String())
}

func (d *daemon) httpUp() bool {
	c, err := net.Dial("unix", d.http)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// kill ends portmapd with SIGKILL and reaps it.
func (d *daemon) kill() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	_ = d.cmd.Wait()
	d.cmd = nil
}

// stop ends portmapd with SIGTERM and waits for it.
func (d *daemon) stop() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			d.t.Errorf("portmapd exited: %v", err)
		}
	case <-time.After(10 * time.Second):
		d.t.Error("portmapd did not stop on SIGTERM")
		d.kill()
	}
	d.cmd = nil
}

func (d *daemon) rpcClient() *rpcbind.Client {
	d.t.Helper()
	c, err := dialUnix(d.rpc)
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// mappings returns the v2 dump as prog/prot → port.
func (d *daemon) mappings() map[[2]uint32]uint32 {
	d.t.Helper()
	c := d.rpcClient()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := c.Dump(ctx)
	if err != nil {
		d.t.Fatal(err)
	}
	out := map[[2]uint32]uint32{}
	for _, m := range ms {
		out[[2]uint32{m.Prog, m.Prot}] = m.Port
	}
	return out
}

// named returns the named services (not the RPC programs) as name →
// sorted endpoints.
func (d *daemon) named() map[string][]string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ins, err := httpmap.NewLocalClient(d.http).List(ctx, httpmap.Filter{})
	if err != nil {
		d.t.Fatal(err)
	}
	out := map[string][]string{}
	for _, in := range ins {
		if in.RPC != nil {
			continue
		}
		out[in.Service] = append(out[in.Service], string(in.Protocol)+":"+in.Port)
	}
	return out
}

func dialQuiet(d *daemon) (*rpcbind.Client, error) { return dialUnix(d.rpc) }

// dialUnix connects to a local RPC socket.
func dialUnix(path string) (*rpcbind.Client, error) {
	return rpcbind.Dial(context.Background(), "unix", path)
}
