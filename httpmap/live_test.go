package httpmap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/health"
)

// liveServer serves s on a real AF_UNIX socket (mode 0666, in a directory
// anyone may enter) and on loopback TCP.
type liveServer struct {
	*Server
	reg    *registry.Registry
	sock   string
	tcp    string
	client *Client
}

func startLive(t *testing.T, opts registry.Options) *liveServer {
	t.Helper()
	return startLiveWith(t, opts, Config{})
}

// startLiveWith is startLive with cfg, whose socket, host name and health
// checker (running until the test ends) it sets.
func startLiveWith(t *testing.T, opts registry.Options, cfg Config) *liveServer {
	t.Helper()
	reg := registry.New(opts)
	dir := t.TempDir()
	// Let other uids reach the socket for the exclusivity matrix.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	sock := filepath.Join(dir, "portmapd.sock")
	checks := health.New(reg, health.Config{})
	go checks.Run(context.Background())
	t.Cleanup(func() { checks.Close() })
	cfg.SocketPath, cfg.Hostname, cfg.Checks = sock, "live", checks
	s := testServer(t, reg, cfg)
	ul, err := ListenUnix(sock, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ul)
	go s.Serve(tl)
	return &liveServer{Server: s, reg: reg, sock: sock, tcp: tl.Addr().String(), client: NewLocalClient(sock)}
}

func needCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not installed: apt-get install curl")
	}
	return p
}

// curl runs curl as uid (when running as root and uid is not 0), and
// returns the HTTP status and body.
func curl(t *testing.T, uid int, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(needCurl(t), append([]string{"-s", "-w", "\n%{http_code}"}, args...)...)
	if uid != os.Geteuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	code, _ := strconv.Atoi(s[i+1:])
	return code, s[:i]
}

// sleeper starts sleep 60 as uid and kills it at the end of the test.
func sleeper(t *testing.T, uid int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if uid != os.Geteuid() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	}
	if err := cmd.Start(); err != nil {
		t.Skip("cannot run sleep:", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

const nobody = 65534

func otherUIDs(t *testing.T) (me, other int) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to act as a second uid (nobody)")
	}
	return 0, nobody
}

func (l *liveServer) register(t *testing.T, uid int, pid int, svc, port string, flags ...string) (int, string) {
	t.Helper()
	args := []string{"--unix-socket", l.sock, "-d", "service=" + svc, "-d", "port=" + port, "-d", "pid=" + strconv.Itoa(pid)}
	for _, f := range flags {
		args = append(args, "-d", f)
	}
	return curl(t, uid, append(args, "http://localhost/portmap")...)
}

func TestLiveRegisterListAndDie(t *testing.T) {
	l := startLive(t, registry.Options{})
	child := sleeper(t, os.Geteuid())
	code, body := l.register(t, os.Geteuid(), child.Process.Pid, "app.example.com", "8080", "public=1")
	if code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	code, body = curl(t, os.Geteuid(), "http://"+l.tcp+"/portmap")
	want := fmt.Sprintf("app.example.com,%d,%d,/usr/bin/sleep,8080", os.Geteuid(), child.Process.Pid)
	if code != 200 || !strings.Contains(body, want) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", child.Process.Pid))
		want = fmt.Sprintf("app.example.com,%d,%d,%s,8080", os.Geteuid(), child.Process.Pid, exe)
		if !strings.Contains(body, want) {
			t.Fatalf("listing lacks %q:\n%s", want, body)
		}
	}
	for _, accept := range []string{"application/xml", "application/json", "text/html"} {
		code, body := curl(t, os.Geteuid(), "-H", "Accept: "+accept, "http://"+l.tcp+"/portmap/App.Example.Com")
		if code != 200 || !strings.Contains(body, "app.example.com") {
			t.Fatalf("%s lookup: %d %s", accept, code, body)
		}
	}
	// SIGKILL the registered process: the registration goes within a second.
	child.Process.Kill()
	deadline := time.Now().Add(time.Second)
	for len(l.reg.LookupNamed("app.example.com")) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("registration outlived its process by a second")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, _ := curl(t, os.Geteuid(), "http://"+l.tcp+"/portmap/app.example.com"); code != 404 {
		t.Fatalf("lookup after death: %d", code)
	}
	if l.life.Watched() != 0 {
		t.Fatalf("still watching %d processes", l.life.Watched())
	}
}

func TestLiveCallerIsRegistrant(t *testing.T) {
	// Without pid=, the registering process is the caller: curl here, which
	// exits at once, taking its registration with it.
	l := startLive(t, registry.Options{})
	code, body := curl(t, os.Geteuid(), "--unix-socket", l.sock, "-d", "service=brief.example.com", "-d", "port=1", "http://localhost/portmap")
	if code != http.StatusCreated {
		t.Fatalf("%d %s", code, body)
	}
	deadline := time.Now().Add(time.Second)
	for len(l.reg.LookupNamed("brief.example.com")) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("curl's registration outlived curl")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLiveExclusivityMatrix(t *testing.T) {
	me, other := otherUIDs(t)
	tests := []struct {
		name          string
		secondUID     int
		firstX, nextX bool
		want          int
	}{
		{"same uid, neither exclusive", me, false, false, 201},
		{"same uid, first exclusive", me, true, false, 409},
		{"same uid, second exclusive", me, false, true, 409},
		{"same uid, both exclusive", me, true, true, 409},
		{"other uid, neither exclusive", other, false, false, 201},
		{"other uid, first exclusive", other, true, false, 201},
		{"other uid, second exclusive", other, false, true, 201},
		{"other uid, both exclusive", other, true, true, 201},
	}
	x := func(b bool) string { return "exclusive=" + strconv.FormatBool(b) }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := startLive(t, registry.Options{})
			a, b := sleeper(t, me), sleeper(t, tt.secondUID)
			if code, body := l.register(t, me, a.Process.Pid, "x.example.com", "90", x(tt.firstX)); code != 201 {
				t.Fatalf("first: %d %s", code, body)
			}
			code, body := l.register(t, tt.secondUID, b.Process.Pid, "X.example.com", "91", x(tt.nextX))
			if code != tt.want {
				t.Fatalf("second: %d %s, want %d", code, body, tt.want)
			}
			if code == 409 && !strings.Contains(body, fmt.Sprintf("held by uid %d (pid %d)", me, a.Process.Pid)) {
				t.Fatalf("conflict message %q does not name the holder", body)
			}
		})
	}
}

func TestLiveRefusals(t *testing.T) {
	l := startLive(t, registry.Options{MaxNamedPerProcess: 2})
	me := os.Geteuid()
	child := sleeper(t, me)
	pid := strconv.Itoa(child.Process.Pid)
	batch := func(svcs ...string) string {
		var parts []string
		for _, s := range svcs {
			parts = append(parts, s)
		}
		return `{"pid":` + pid + `,"services":[` + strings.Join(parts, ",") + `]}`
	}
	post := func(body string) (int, string) {
		return curl(t, me, "--unix-socket", l.sock, "-H", "Content-Type: application/json", "-d", body, "http://localhost/portmap")
	}
	tests := []struct {
		name string
		body string
		want int
		msg  string
	}{
		{"reserved namespace", batch(`{"service":"nfs.oncrpc.alt","port":2049}`), 403, "reserved namespace"},
		{"bad name", batch(`{"service":"bad..name","port":1}`), 400, "bad service name"},
		{"the event stream's path", batch(`{"service":"events","port":1}`), 403, "GET /portmap/events serves something else"},
		{"a stylesheet's path, in capitals", batch(`{"service":"ok.example.com","port":1}`, `{"service":"Portmap.CSS","port":2}`), 403, "web face's own paths"},
		{"atomic batch", batch(`{"service":"ok.example.com","port":1}`, `{"service":"-bad.example.com","port":2}`), 400, "bad service name"},
		{"bad port", batch(`{"service":"ok.example.com","port":70000}`), 400, "neither a port"},
		{"unknown field", `{"services":[],"uid":0}`, 400, "unknown field"},
		{"cap", batch(`{"service":"a.example.com","port":1}`, `{"service":"b.example.com","port":2}`, `{"service":"c.example.com","port":"/run/c"}`), 403, "cap"},
		{"dead process", `{"pid":999999999,"services":[{"service":"a.example.com","port":1}]}`, 410, "no such process"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(tt.body)
			if code != tt.want || !strings.Contains(body, tt.msg) {
				t.Fatalf("%d %q, want %d and %q", code, body, tt.want, tt.msg)
			}
			if n := len(l.reg.NamedServices()); n != 0 {
				t.Fatalf("refused request left %d services", n)
			}
		})
	}
	t.Run("loopback tcp may look up but not register", func(t *testing.T) {
		code, body := curl(t, me, "-d", "service=a.example.com", "-d", "port=1", "-d", "pid="+pid, "http://"+l.tcp+"/portmap")
		if code != 403 || !strings.Contains(body, "local socket") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("another uid's process", func(t *testing.T) {
		if me != 0 {
			t.Skip("needs root to act as nobody")
		}
		code, body := l.register(t, nobody, child.Process.Pid, "a.example.com", "1")
		if code != 403 || !strings.Contains(body, "another user") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("cap counts what the process holds", func(t *testing.T) {
		if code, body := post(batch(`{"service":"a.example.com","port":1}`, `{"service":"b.example.com","port":2}`)); code != 201 {
			t.Fatalf("%d %s", code, body)
		}
		if code, body := post(batch(`{"service":"c.example.com","port":3}`)); code != 403 || !strings.Contains(body, "cap") {
			t.Fatalf("%d %s", code, body)
		}
	})
}

func TestLiveClient(t *testing.T) {
	l := startLive(t, registry.Options{})
	ctx := context.Background()
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	go func() {
		for {
			c, err := svc.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	port := strconv.Itoa(svc.Addr().(*net.TCPAddr).Port)
	// This test process registers for itself: it lives until the end.
	var e *Error
	added, err := l.client.Register(ctx, Registration{Services: []ServiceSpec{
		{Service: "hello.example.com", Port: "/nonexistent/sock"},
		{Service: "hello.example.com", Port: "1"},
		{Service: "hello.example.com", Port: Port(port)},
	}})
	if err != nil || len(added) != 3 || added[0].PID != int32(os.Getpid()) {
		t.Fatalf("register: %+v, %v", added, err)
	}
	remote := NewClient(l.tcp)
	conn, err := remote.Dial(ctx, "HELLO.example.com")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	buf := make([]byte, 6)
	if _, err := conn.Read(buf); err != nil || string(buf) != "hello\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
	conn.Close()
	if _, err := remote.Lookup(ctx, "missing.example.com"); !errors.As(err, &e) || e.Status != 404 {
		t.Fatalf("lookup missing: %v", err)
	}
	if _, err := remote.Register(ctx, Registration{Services: []ServiceSpec{{Service: "a.example.com", Port: "1"}}}); !errors.As(err, &e) || e.Status != 403 {
		t.Fatalf("register over tcp: %v", err)
	}
	list, err := remote.List(ctx, Filter{PIDs: []int32{int32(os.Getpid())}})
	if err != nil || len(list) != 3 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	removed, err := l.client.Deregister(ctx, Registration{Services: []ServiceSpec{{Service: "hello.example.com", Port: "1"}}})
	if err != nil || len(removed) != 1 {
		t.Fatalf("deregister: %+v, %v", removed, err)
	}
	code, body := curl(t, os.Geteuid(), "--unix-socket", l.sock, "-X", "DELETE", "http://localhost/portmap/hello.example.com")
	if code != 200 {
		t.Fatalf("DELETE by name: %d %s", code, body)
	}
	if n := len(l.reg.NamedServices()); n != 0 || l.life.Watched() != 0 {
		t.Fatalf("%d services, %d watches left", n, l.life.Watched())
	}
	var js Listing
	_, body = curl(t, os.Geteuid(), "-H", "Accept: application/json", "http://"+l.tcp+"/portmap")
	if err := json.Unmarshal([]byte(body), &js); err != nil {
		t.Fatal(err)
	}
}
