package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	pmd "github.com/portmapd/portmapd/internal/daemon"
	"github.com/portmapd/portmapd/internal/netns"
)

// Addresses of the two hosts of the TCPMUX test.
const (
	muxServer4 = "10.77.0.1"
	muxClient4 = "10.77.0.2"
	muxServer6 = "fd77::1"
	muxClient6 = "fd77::2"
)

// muxAsk opens a TCPMUX connection from h to addr, sends request and
// returns the connection with a reader of it.
func muxAsk(t *testing.T, h *netns.Host, addr, request string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := h.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(hostTimeout))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

// instancesOf returns the uids of the registrations of name, as the HTTP
// socket at sock lists them.
func instancesOf(t *testing.T, sock, name string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ins, err := httpmap.NewLocalClient(sock).Lookup(ctx, name)
	var he *httpmap.Error
	if errors.As(err, &he) && he.Status == 404 {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var uids []string
	for _, in := range ins {
		uids = append(uids, in.User())
	}
	return uids
}

// TestTCPMuxAcrossHosts runs portmapd with --tcpmux on RFC 1078's port 1,
// giving up root (-s), and reaches services on it by name from a second
// host: a command run by portmapctl for each connection (nc, as the README
// shows), a Go service handed its connections over, a plain TCP service
// spliced to; HELP lists only what asked to be listed; another user can
// neither take a name's connections nor receive connections for a socket
// or port that is not theirs; and many clients at once are served.
func TestTCPMuxAcrossHosts(t *testing.T) {
	if _, err := exec.LookPath("nc"); err != nil {
		t.Skip("nc not installed: apt-get install netcat-openbsd")
	}
	srv := netns.NewHost(t, "mux")
	cli := netns.NewHost(t, "muxc")
	link := netns.Connect(t, srv, cli)
	srv.AddAddr(link.A, muxServer4+"/24")
	cli.AddAddr(link.B, muxClient4+"/24")
	srv.AddAddr(link.A, muxServer6+"/64")
	cli.AddAddr(link.B, muxClient6+"/64")
	bin, ctl := tools(t)
	if uid, _ := lookupID(t, pmd.DefaultRunAs()); uid == 0 {
		t.Skipf("-s would run as %s, which is root here", pmd.DefaultRunAs())
	}
	// One client host opens more connections at once than the default
	// per-source cap (64), which would evict those still naming their
	// service: the cap is raised here, and tested in package tcpmux.
	p := srv.Start(srv.Command(bin, "-f", "-s", "--tcpmux", ":1", "--tcpmux-max-conns-per-source", "256", "--http", "127.0.0.1:8111"))
	waitRPC(t, srv, p, "127.0.0.1:111")
	ctx, cancel := context.WithTimeout(context.Background(), hostTimeout)
	defer cancel()
	if err := srv.WaitDial(ctx, "tcp", "127.0.0.1:1"); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	sock := filepath.Join(srv.Run, "portmapd.sock")
	client := httpmap.NewLocalClient(sock)
	mux4 := net.JoinHostPort(muxServer4, "1")
	mux6 := net.JoinHostPort(muxServer6, "1")

	// echo.example.com: cat, run by portmapctl for each connection.
	srv.Start(srv.Command(ctl, "register", "echo.example.com", "--listen", "--muxhelp", "--", "cat"))
	// go.example.com: a Go service in the server host, handed over its
	// connections; it greets, then echoes.
	var goLn *httpmap.MuxListener
	if err := srv.Do(func() (err error) {
		goLn, err = client.Listen(ctx, "go.example.com")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer goLn.Close()
	handedFor := make(chan string, 1000)
	go func() {
		for {
			h, err := goLn.AcceptHandoff()
			if err != nil {
				return
			}
			handedFor <- h.Name
			c, err := h.Conn()
			if err != nil {
				continue
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "hello from go\n")
				io.Copy(c, c)
			}()
		}
	}()
	// plain.example.com: a TCP echo service on the server's loopback,
	// registered with tcpmux, reached by splicing.
	plain, err := srv.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	plainPort := plain.Addr().(*net.TCPAddr).Port
	if _, err := client.Register(ctx, httpmap.Registration{Services: []httpmap.ServiceSpec{
		{Service: "plain.example.com", Port: httpmap.Port(strconv.Itoa(plainPort)), TCPMux: true},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "echo.example.com is registered", func() bool { return len(instancesOf(t, sock, "echo.example.com")) == 1 })

	t.Run("nc from the other host reaches echo.example.com", func(t *testing.T) {
		out := run(t, cli.Command("sh", "-c", "printf 'echo.example.com\\r\\nhello\\r\\n' | nc -N "+muxServer4+" 1"))
		if out != "+\r\nhello\r\n" {
			t.Fatalf("nc printed %q", out)
		}
	})

	t.Run("a Go service over a handed-over descriptor", func(t *testing.T) {
		for _, addr := range []string{mux4, mux6} {
			c, r := muxAsk(t, cli, addr, "GO.example.com\r\n")
			for _, want := range []string{"+\r\n", "hello from go\n"} {
				if got, err := r.ReadString('\n'); got != want {
					t.Fatalf("%s: %q, %v; want %q", addr, got, err, want)
				}
			}
			io.WriteString(c, "ping\n")
			if got, _ := r.ReadString('\n'); got != "ping\n" {
				t.Fatalf("%s: echoed %q", addr, got)
			}
			if name := <-handedFor; name != "go.example.com" {
				t.Errorf("handed over for %q", name)
			}
		}
	})

	t.Run("a plain TCP service by splicing", func(t *testing.T) {
		c, r := muxAsk(t, cli, mux4, "plain.example.com\r\nspliced\n")
		if got, _ := r.ReadString('\n'); got != "+\r\n" {
			t.Fatalf("reply %q", got)
		}
		if got, _ := r.ReadString('\n'); got != "spliced\n" {
			t.Fatalf("echoed %q", got)
		}
		c.(*net.TCPConn).CloseWrite()
		if rest, err := io.ReadAll(r); len(rest) != 0 || err != nil {
			t.Fatalf("after the half-close: %q, %v", rest, err)
		}
	})

	t.Run("HELP lists only the opted-in", func(t *testing.T) {
		_, r := muxAsk(t, cli, mux4, "HELP\r\n")
		got, err := io.ReadAll(r)
		if err != nil || string(got) != "echo.example.com\r\n" {
			t.Fatalf("HELP: %q, %v", got, err)
		}
	})

	t.Run("an unknown name", func(t *testing.T) {
		_, r := muxAsk(t, cli, mux4, "nothing.example.com\r\n")
		if got, _ := io.ReadAll(r); string(got) != "-Service not available\r\n" {
			t.Fatalf("%q", got)
		}
	})

	t.Run("another user can neither take over nor receive", func(t *testing.T) {
		// The same name, later, by nobody: connections stay root's.
		srv.Start(srv.CommandAs(unprivileged, ctl, "register", "echo.example.com", "--listen", "--", "echo", "intruder"))
		// A registration of root's hand-off socket and of root's port by
		// nobody.
		srv.Start(srv.CommandAs(unprivileged, ctl, "register", "steal.example.com", goLn.Path(), "--tcpmux", "--", "sleep", "600"))
		srv.Start(srv.CommandAs(unprivileged, ctl, "register", "stealport.example.com", strconv.Itoa(plainPort), "--tcpmux", "--", "sleep", "600"))
		waitFor(t, "nobody's registrations are listed", func() bool {
			return len(instancesOf(t, sock, "echo.example.com")) == 2 &&
				len(instancesOf(t, sock, "steal.example.com")) == 1 && len(instancesOf(t, sock, "stealport.example.com")) == 1
		})
		for range 3 {
			out := run(t, cli.Command("sh", "-c", "printf 'echo.example.com\\r\\nmine\\r\\n' | nc -N "+muxServer4+" 1"))
			if out != "+\r\nmine\r\n" {
				t.Fatalf("echo.example.com answered %q", out)
			}
		}
		for _, name := range []string{"steal.example.com", "stealport.example.com"} {
			_, r := muxAsk(t, cli, mux4, name+"\r\n")
			if got, _ := io.ReadAll(r); string(got) != "-Service not available\r\n" {
				t.Errorf("%s: %q", name, got)
			}
		}
		// The next connection root's Go service is handed is for its own
		// name.
		_, r := muxAsk(t, cli, mux4, "go.example.com\r\n")
		if got, _ := r.ReadString('\n'); got != "+\r\n" {
			t.Fatalf("go.example.com: %q", got)
		}
		if name := <-handedFor; name != "go.example.com" {
			t.Errorf("root's socket was handed a connection for %q", name)
		}
	})

	t.Run("many clients at once", func(t *testing.T) {
		const clients = 100
		var wg sync.WaitGroup
		errs := make(chan error, clients)
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name, greeting := "plain.example.com", ""
				if i%2 == 0 {
					name, greeting = "go.example.com", "hello from go\n"
				}
				c, err := cli.Dial("tcp", mux4)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(hostTimeout))
				msg := fmt.Sprintf("client %d\n", i)
				io.WriteString(c, name+"\r\n"+msg)
				got, err := io.ReadAll(io.LimitReader(c, int64(len("+\r\n"+greeting+msg))))
				if want := "+\r\n" + greeting + msg; string(got) != want {
					errs <- fmt.Errorf("client %d (%s): %q, %v; want %q", i, name, got, err, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	for _, bad := range []string{"level=ERROR", "connection limits enforced"} {
		if strings.Contains(p.Output(), bad) {
			t.Errorf("%s logged:\n%s", bad, p.Output())
		}
	}
	stop(t, p)
}
