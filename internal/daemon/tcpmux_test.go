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
	"github.com/portmapd/portmapd/tcpmux"
)

// Addresses of the two hosts of the TCPMUX test.
const (
	muxServer4 = "10.77.0.1"
	muxClient4 = "10.77.0.2"
	muxServer6 = "fd77::1"
	muxClient6 = "fd77::2"
)

// muxDial asks the TCPMUX server at addr for name from inside h, with
// the Go client, and returns the service's connection and a reader of it.
func muxDial(t *testing.T, h *netns.Host, addr, name string) (net.Conn, *bufio.Reader, error) {
	t.Helper()
	var c net.Conn
	err := h.Do(func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), hostTimeout)
		defer cancel()
		c, err = tcpmux.Dial(ctx, addr, name)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(hostTimeout))
	return c, bufio.NewReader(c), nil
}

// nc sends input to host's TCPMUX port 1 from inside h with nc, as a
// person would, and returns what came back.
func nc(t *testing.T, h *netns.Host, host, input string) string {
	t.Helper()
	cmd := h.Command("nc", "-N", host, "1")
	cmd.Stdin = strings.NewReader(input)
	return run(t, cmd)
}

// namesOf is a hand-off listener that tells the name each connection it
// accepts asked for.
type namesOf struct {
	*httpmap.MuxListener
	names chan<- string
}

func (l namesOf) Accept() (net.Conn, error) {
	h, err := l.AcceptHandoff()
	if err != nil {
		return nil, err
	}
	l.names <- h.Name
	return h.Conn()
}

// echo sends back what c sends.
func echo(c net.Conn) { io.Copy(c, c) }

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
	srv.Start(srv.Command(ctl, "register", "echo.example.com", "--tcpmux", "--listen", "--muxhelp", "--", "cat"))
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
	go netns.ServeEach(namesOf{goLn, handedFor}, func(c net.Conn) {
		io.WriteString(c, "hello from go\n")
		io.Copy(c, c)
	})
	// plain.example.com: a TCP echo service on the server's loopback,
	// registered with tcpmux, reached by splicing.
	plain, err := srv.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go netns.ServeEach(plain, echo)
	plainPort := plain.Addr().(*net.TCPAddr).Port
	if _, err := client.Register(ctx, httpmap.Registration{Services: []httpmap.ServiceSpec{
		{Service: "plain.example.com", Port: httpmap.Port(strconv.Itoa(plainPort)), TCPMux: true},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "echo.example.com is registered", func() bool { return len(instancesOf(t, sock, "echo.example.com")) == 1 })

	t.Run("nc from the other host reaches echo.example.com", func(t *testing.T) {
		// As the README has it: printf 'echo.example.com\r\nhello\r\n' | nc -N HOST 1
		out := run(t, cli.Command("sh", "-c", "printf 'echo.example.com\\r\\nhello\\r\\n' | nc -N "+muxServer4+" 1"))
		if out != "+\r\nhello\r\n" {
			t.Fatalf("nc printed %q", out)
		}
	})

	t.Run("a Go service over a handed-over descriptor", func(t *testing.T) {
		for _, addr := range []string{mux4, mux6} {
			c, r, err := muxDial(t, cli, addr, "GO.example.com")
			if err != nil {
				t.Fatal(err)
			}
			if got, err := r.ReadString('\n'); got != "hello from go\n" {
				t.Fatalf("%s: greeted %q, %v", addr, got, err)
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
		c, r, err := muxDial(t, cli, mux4, "plain.example.com")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "spliced\n")
		if got, _ := r.ReadString('\n'); got != "spliced\n" {
			t.Fatalf("echoed %q", got)
		}
		c.(*net.TCPConn).CloseWrite()
		if rest, err := io.ReadAll(r); len(rest) != 0 || err != nil {
			t.Fatalf("after the half-close: %q, %v", rest, err)
		}
	})

	t.Run("HELP lists only the opted-in", func(t *testing.T) {
		if got := nc(t, cli, muxServer6, "HELP\r\n"); got != "echo.example.com\r\n" {
			t.Fatalf("HELP: %q", got)
		}
	})

	t.Run("an unknown name", func(t *testing.T) {
		if got := nc(t, cli, muxServer4, "nothing.example.com\r\n"); got != "-Service not available\r\n" {
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
			if got := nc(t, cli, muxServer4, "echo.example.com\r\nmine\r\n"); got != "+\r\nmine\r\n" {
				t.Fatalf("echo.example.com answered %q", got)
			}
		}
		for _, name := range []string{"steal.example.com", "stealport.example.com"} {
			_, _, err := muxDial(t, cli, mux4, name)
			var re *tcpmux.RefusedError
			if !errors.As(err, &re) || re.Reason != "Service not available" {
				t.Errorf("%s: %v", name, err)
			}
		}
		// The next connection root's Go service is handed is for its own
		// name.
		if _, _, err := muxDial(t, cli, mux4, "go.example.com"); err != nil {
			t.Fatal(err)
		}
		if name := <-handedFor; name != "go.example.com" {
			t.Errorf("root's socket was handed a connection for %q", name)
		}
	})

	t.Run("many clients at once", func(t *testing.T) {
		const clients = 100
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				name, greeting := "plain.example.com", ""
				if i%2 == 0 {
					name, greeting = "go.example.com", "hello from go\n"
				}
				c, r, err := muxDial(t, cli, mux4, name)
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				msg := fmt.Sprintf("client %d\n", i)
				io.WriteString(c, msg)
				got, err := io.ReadAll(io.LimitReader(r, int64(len(greeting+msg))))
				if want := greeting + msg; string(got) != want {
					t.Errorf("client %d (%s): %q, %v; want %q", i, name, got, err, want)
				}
			})
		}
		wg.Wait()
	})

	for _, bad := range []string{"level=ERROR", "connection limits enforced"} {
		if strings.Contains(p.Output(), bad) {
			t.Errorf("%s logged:\n%s", bad, p.Output())
		}
	}
	stop(t, p)
}
