// Package etcdtest runs a real etcd for tests: Debian's etcd-server
// (the etcd binary on the PATH, or $ETCD_BIN), one member, its data in a
// directory of the test's, serving clients on one address. A test may
// stop it, kill it and start it again on the same address and data, and
// run it inside a throwaway host (internal/netns) by giving a Command.
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
	cfg := clientv3.Config{Endpoints: []string{s.Endpoint}, Logger: zap.NewNop()}
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
