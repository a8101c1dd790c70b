// Package etcdtest runs a real etcd for tests: Debian's etcd-server
// (the etcd binary on the PATH, or $ETCD_BIN), one member, its data in a
// directory of the test's, serving clients on one address. A test may
// stop it, kill it and start it again on the same address and data, and
// run it inside a throwaway host (internal/netns) by giving a Command,
// and turn etcd's authentication on, with users whose roles are
// confined to key prefixes (EnableAuth, AddUser).
//
// A separate etcd process rather than go.etcd.io/etcd/server/v3/embed
// keeps etcd's server, its storage and their dependencies out of
// portmapd's go.mod and build, and lets a test kill etcd as a host would
// lose it.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Package is the Debian package that has etcd.
const Package = "etcd-server"

// startTimeout bounds how long etcd may take to answer once started: a
// loaded machine is slow, and a pass never waits for it.
const startTimeout = 30 * time.Second

// loginTimeout bounds a client's login, once auth is on, so that a
// health check of an etcd that is not up yet is tried again.
const loginTimeout = 5 * time.Second

// Path returns the etcd binary: $ETCD_BIN, else etcd on the PATH.
func Path() (string, error) {
	if p := os.Getenv("ETCD_BIN"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("etcd")
	if err != nil {
		return "", fmt.Errorf("etcdtest: no etcd on the PATH (apt-get install %s, or set ETCD_BIN)", Package)
	}
	return p, nil
}

// Require skips t unless etcd is installed, saying how to install it.
func Require(t testing.TB) string {
	t.Helper()
	p, err := Path()
	if err != nil {
		t.Skip(err.Error())
	}
	return p
}

// Options say where and how etcd runs.
type Options struct {
	// Host is the address etcd serves clients on; 127.0.0.1 when empty.
	Host string
	// Command returns the command that runs argv; exec.Command when nil.
	// A throwaway host's Command runs it inside the host.
	Command func(argv ...string) *exec.Cmd
	// Dial connects to etcd for the health check and for Client; a plain
	// dial when nil. A throwaway host's dial reaches inside it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Args are further flags for etcd.
	Args []string
}

// A Server is an etcd process of the test's.
type Server struct {
	// Endpoint is the URL clients use, http://HOST:PORT.
	Endpoint string
	// Dir is etcd's data directory.
	Dir string

	t    testing.TB
	bin  string
	opts Options
	addr string
	peer string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  strings.Builder
	// auth is set once EnableAuth has turned etcd's authentication on:
	// the Server's clients log in as root.
	auth bool
}

// Start starts etcd and waits until it answers; t fails if it does not.
// It is killed when t ends, and its output logged if t failed.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Require(t)
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Command == nil {
		opts.Command = func(argv ...string) *exec.Cmd { return exec.Command(argv[0], argv[1:]...) }
	}
	s := &Server{t: t, bin: bin, opts: opts, Dir: filepath.Join(t.TempDir(), "etcd")}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("etcd's output:\n%s", s.Output())
		}
	})
	// A port free here is free in a new namespace too; on loopback
	// another process may take it first, so a start that fails is
	// tried again on other ports.
	var err error
	for range 3 {
		s.addr = net.JoinHostPort(opts.Host, strconv.Itoa(freePort(t)))
		s.peer = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
		s.Endpoint = "http://" + s.addr
		if err = s.start(); err == nil {
			return s
		}
		s.Kill()
	}
	t.Fatalf("etcdtest: %v\n%s", err, s.Output())
	return nil
}

// freePort returns a TCP port that nothing on loopback listens on now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Restart starts etcd again, on the same address and data, after Stop or
// Kill.
func (s *Server) Restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("etcdtest: %v\n%s", err, s.Output())
	}
}

func (s *Server) start() error {
	argv := append([]string{s.bin,
		"--name", "test",
		"--data-dir", s.Dir,
		"--listen-client-urls", s.Endpoint,
		"--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", "http://" + s.peer,
		"--initial-advertise-peer-urls", "http://" + s.peer,
		"--initial-cluster", "test=http://" + s.peer,
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn",
	}, s.opts.Args...)
	cmd := s.opts.Command(argv...)
	cmd.Stdout, cmd.Stderr = (*lockedWriter)(s), (*lockedWriter)(s)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if err := s.ping(ctx); err == nil {
			return nil
		}
		select {
		case <-done:
			return errors.New("etcd exited before it answered")
		case <-ctx.Done():
			return fmt.Errorf("etcd does not answer at %s: %w", s.Endpoint, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ping asks etcd for its status once.
func (s *Server) ping(ctx context.Context) error {
	c, err := s.newClient()
	if err != nil {
		return err
	}
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = c.Status(pctx, s.Endpoint)
	return err
}

func (s *Server) newClient() (*clientv3.Client, error) {
	cfg := clientv3.Config{Endpoints: []string{s.Endpoint}, Logger: zap.NewNop(), DialTimeout: loginTimeout}
	s.mu.Lock()
	if s.auth {
		cfg.Username, cfg.Password = RootUser, RootPassword
	}
	s.mu.Unlock()
	if s.opts.Dial != nil {
		cfg.DialOptions = []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return s.opts.Dial(ctx, "tcp", addr)
		})}
	}
	return clientv3.New(cfg)
}

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client() *clientv3.Client {
	s.t.Helper()
	c, err := s.newClient()
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Stop ends etcd with SIGTERM and waits for it.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill ends etcd with SIGKILL, as a crash of its host would, and waits
// for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(startTimeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Output is what etcd has written so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// lockedWriter is the Server's output, written under its lock.
type lockedWriter Server

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.Write(p)
}

// etcd's root user, which EnableAuth adds: etcd turns its
// authentication on only when root exists.
const (
	RootUser     = "root"
	RootPassword = "etcdtest-root"
)

// A Grant is a permission of a role: Perm on the keys under Prefix.
type Grant struct {
	Prefix string
	Perm   clientv3.PermissionType
}

// Permissions of a Grant.
const (
	Read      = clientv3.PermissionType(clientv3.PermRead)
	Write     = clientv3.PermissionType(clientv3.PermWrite)
	ReadWrite = clientv3.PermissionType(clientv3.PermReadWrite)
)

// EnableAuth turns etcd's authentication on, as an operator does: it
// adds the root user (RootPassword) with etcd's root role, then turns
// auth on. From then on Client logs in as root.
func (s *Server) EnableAuth() {
	s.t.Helper()
	s.admin(func(ctx context.Context, c *clientv3.Client) error {
		if _, err := c.UserAdd(ctx, RootUser, RootPassword); err != nil {
			return err
		}
		if _, err := c.UserGrantRole(ctx, RootUser, "root"); err != nil {
			return err
		}
		_, err := c.AuthEnable(ctx)
		return err
	})
	s.mu.Lock()
	s.auth = true
	s.mu.Unlock()
}

// AddUser adds the user name with password and a role of the same name
// granted grants, before or after EnableAuth.
func (s *Server) AddUser(name, password string, grants ...Grant) {
	s.t.Helper()
	s.admin(func(ctx context.Context, c *clientv3.Client) error {
		if _, err := c.UserAdd(ctx, name, password); err != nil {
			return err
		}
		if _, err := c.RoleAdd(ctx, name); err != nil {
			return err
		}
		for _, g := range grants {
			if _, err := c.RoleGrantPermission(ctx, name, g.Prefix, clientv3.GetPrefixRangeEnd(g.Prefix), g.Perm); err != nil {
				return err
			}
		}
		_, err := c.UserGrantRole(ctx, name, name)
		return err
	})
}

// admin runs f with a client of the server's (root's once auth is on);
// t fails if f does.
func (s *Server) admin(f func(context.Context, *clientv3.Client) error) {
	s.t.Helper()
	c, err := s.newClient()
	if err != nil {
		s.t.Fatalf("etcdtest: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := f(ctx, c); err != nil {
		s.t.Fatalf("etcdtest: %v", err)
	}
}

// HostGrants are the least a fleet host's role needs, as the README's
// fleet section has an operator grant them: read-write on the host's
// own keys (PREFIX/HOST/) and on the by-name copies (PREFIX/_name/),
// which etcd's prefixes cannot confine to one host, and read on the
// whole prefix for lookups.
func HostGrants(prefix, host string) []Grant {
	return []Grant{
		{Prefix: prefix + "/" + host + "/", Perm: ReadWrite},
		{Prefix: prefix + "/_name/", Perm: ReadWrite},
		{Prefix: prefix + "/", Perm: Read},
	}
}
