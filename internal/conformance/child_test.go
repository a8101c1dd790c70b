// The child: runs inside the sandbox, starts the daemon, plays a scenario
// and prints its transcript on standard output.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// nobody is what setpriv prefixes to a command run as the unprivileged user.
var nobody = []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}

// transcript collects what the clients observe.
type transcript struct{ bytes.Buffer }

// step runs argv (stdout and stderr interleaved as a terminal shows them)
// and records "### argv", its output and its exit status.
func (tr *transcript) step(argv ...string) {
	tr.stepShown(strings.Join(argv, " "), argv...)
}

// stepShown is step with the command shown as shown.
func (tr *transcript) stepShown(shown string, argv ...string) {
	fmt.Fprintf(tr, "### %s\n", shown)
	out, code := run(20*time.Second, argv...)
	tr.WriteString(out)
	if out != "" && !strings.HasSuffix(out, "\n") {
		tr.WriteString("\n")
	}
	fmt.Fprintf(tr, "exit=%d\n", code)
}

// run runs argv with a time limit and returns its combined output and exit
// status (-1 when it could not run or was killed).
func run(limit time.Duration, argv ...string) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee) && ee.Exited():
		return out.String(), ee.ExitCode()
	default:
		return out.String() + fmt.Sprintf("(%v)\n", err), -1
	}
}

// daemon is the portmapper under test, running in the sandbox.
type daemon struct {
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

func startDaemon(argv []string) (*daemon, error) {
	log, err := os.Create("/run/conformance-daemon.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1), log: log}
	go func() { d.done <- cmd.Wait() }()
	if err := d.waitReady(10 * time.Second); err != nil {
		d.stop()
		return nil, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, d.output())
	}
	return d, nil
}

// waitReady waits until port 111 is bound for UDP and listening for TCP and
// /run/rpcbind.sock exists, without sending the daemon anything: readiness
// polling by RPC would change the counts rpcinfo -m reports. A bound socket
// queues what clients send, so the daemon answers them when it gets to it.
func (d *daemon) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-d.done:
			d.done <- err
			return fmt.Errorf("exited before it was ready: %v", err)
		default:
		}
		_, sockErr := os.Stat("/run/rpcbind.sock")
		v4 := portBound("/proc/net/udp", "07") && portBound("/proc/net/tcp", "0A")
		v6 := portBound("/proc/net/udp6", "07") && portBound("/proc/net/tcp6", "0A")
		if sockErr == nil && v4 && v6 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving port 111 (IPv4 %v, IPv6 %v) and /run/rpcbind.sock (%v) after %v", v4, v6, sockErr, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portBound reports whether the /proc/net table at path has a socket on
// local port 111 in state st (07 unconnected UDP, 0A listening TCP).
func portBound(path, st string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 3 && strings.HasSuffix(f[1], ":006F") && f[3] == st {
			return true
		}
	}
	return false
}

func (d *daemon) output() string {
	b, _ := os.ReadFile(d.log.Name())
	return string(b)
}

// stop sends SIGTERM and returns the exit error, killing the daemon if it
// has not exited within 5 seconds.
func (d *daemon) stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		return err
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		return errors.New("did not exit within 5s of SIGTERM")
	}
}

// runChild plays scenario and returns the child's exit status.
func runChild(scenario string) int {
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv(envDaemon)), &argv); err != nil || len(argv) == 0 {
		fmt.Fprintf(os.Stderr, "child: bad %s: %v\n", envDaemon, err)
		return 2
	}
	if scenario == "lifecycle" {
		return lifecycle(argv)
	}
	if scenario == "switching" {
		return switching(argv)
	}
	d, err := startDaemon(argv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	var tr transcript
	switch scenario {
	case "rpcinfo":
		rpcinfoScenario(&tr)
	case "statd":
		statdScenario(&tr)
	case "libtirpc":
		libtirpcScenario(&tr, os.Getenv(envProbe))
	case "oracle":
		err = replayOracle(&tr, os.Getenv(envOracle))
	default:
		err = fmt.Errorf("unknown scenario %q", scenario)
	}
	if stopErr := d.stop(); stopErr != nil {
		fmt.Fprintf(os.Stderr, "child: daemon stopped with %v\n", stopErr)
	}
	if out := d.output(); out != "" {
		fmt.Fprintf(os.Stderr, "daemon output:\n%s", out)
	}
	os.Stdout.Write(tr.Bytes())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	return 0
}

// rpcinfoScenario: every form of Debian's rpcinfo against a fresh daemon.
func rpcinfoScenario(tr *transcript) {
	tr.step("rpcinfo", "-p", "127.0.0.1")
	tr.step("rpcinfo", "-p")
	tr.step("rpcinfo")
	tr.step("rpcinfo", "127.0.0.1")
	tr.step("rpcinfo", "-s")
	tr.step("rpcinfo", "-s", "127.0.0.1")
	tr.step("rpcinfo", "-l", "127.0.0.1", "100000", "4")
	tr.step("rpcinfo", "-l", "-T", "tcp", "127.0.0.1", "100000", "3")
	tr.step("rpcinfo", "-l", "127.0.0.1", "100099", "1")
	for _, netid := range []string{"udp", "tcp"} {
		for _, v := range []string{"2", "3", "4"} {
			tr.step("rpcinfo", "-T", netid, "127.0.0.1", "100000", v)
		}
		tr.step("rpcinfo", "-T", netid, "127.0.0.1", "100000")
		tr.step("rpcinfo", "-T", netid, "127.0.0.1", "100000", "5")
		tr.step("rpcinfo", "-T", netid, "127.0.0.1", "100099")
	}
	tr.step("rpcinfo", "-T", "udp6", "::1", "100000", "4")
	tr.step("rpcinfo", "-T", "tcp6", "::1", "100000")
	tr.step("rpcinfo", "-T", "local", "localhost", "100000", "4")
	tr.step("rpcinfo", "-t", "127.0.0.1", "portmapper")
	tr.step("rpcinfo", "-u", "127.0.0.1", "portmapper")
	tr.step("rpcinfo", "-u", "localhost", "portmapper", "2")
	tr.step("rpcinfo", "-t", "localhost", "rpcbind", "4")
	tr.step("rpcinfo", "-u", "127.0.0.1", "100000", "5")
	tr.step("rpcinfo", "-t", "127.0.0.1", "100000", "1")
	tr.step("rpcinfo", "-u", "127.0.0.1", "100099")
	tr.step("rpcinfo", "-t", "127.0.0.1", "100099", "1")
	tr.step("rpcinfo", "-u", "127.0.0.1", "nosuchprogram")
	tr.step("rpcinfo", "-a", "127.0.0.1.0.111", "-T", "tcp", "100000", "2")
	tr.step("rpcinfo", "-a", "127.0.0.1.0.111", "-T", "udp", "100000", "4")
	tr.step("rpcinfo", "-a", "127.0.0.1.0.111", "-T", "udp", "100000", "7")
	tr.step("rpcinfo", "-a", "127.0.0.1.0.111", "-T", "tcp", "100000")
	tr.step(append(nobody, "rpcinfo", "-d", "100000", "4")...)
	tr.step(append(nobody, "rpcinfo", "-d", "-T", "udp", "100000", "2")...)
	tr.step("rpcinfo", "-d", "100099", "1")
	tr.step("rpcinfo", "-p", "127.0.0.1")
	tr.step("rpcinfo", "-m")
	tr.step("rpcinfo", "-m", "127.0.0.1")
}

// statdScenario: rpc.statd registers over the local socket when it starts,
// an unprivileged user cannot remove its registration, and it unregisters
// when it is told to stop.
func statdScenario(tr *transcript) {
	for _, dir := range []string{"/run/statd/sm", "/run/statd/sm.bak"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Fprintln(tr, "mkdir:", err)
			return
		}
	}
	tr.step("rpcinfo", "-p")
	statd := exec.Command("rpc.statd", "-F", "-n", "localhost", "-P", "/run/statd", "--no-notify")
	if err := statd.Start(); err != nil {
		fmt.Fprintln(tr, "rpc.statd:", err)
		return
	}
	statdDone := make(chan error, 1)
	go func() { statdDone <- statd.Wait() }()
	registered := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, code := run(5*time.Second, "rpcinfo", "-T", "udp", "127.0.0.1", "100024", "1"); code == 0 {
			registered = true
			break
		}
	}
	fmt.Fprintf(tr, "### rpc.statd registered\n%v\n", registered)
	tr.step("rpcinfo", "-p")
	tr.step("rpcinfo", "-p", "127.0.0.1")
	tr.step("rpcinfo")
	tr.step("rpcinfo", "-s")
	tr.step("rpcinfo", "-u", "localhost", "status")
	tr.step("rpcinfo", "-t", "127.0.0.1", "status", "1")
	tr.step("rpcinfo", "-T", "tcp", "127.0.0.1", "100024")
	tr.step("rpcinfo", "-l", "127.0.0.1", "100024", "1")
	tr.step(append(nobody, "rpcinfo", "-d", "100024", "1")...)
	tr.step(append(nobody, "rpcinfo", "-d", "-T", "tcp", "status", "1")...)
	tr.step("rpcinfo", "-s")
	_ = statd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-statdDone:
		fmt.Fprintf(tr, "### rpc.statd after SIGTERM\nexited %v\n", err == nil || strings.Contains(err.Error(), "signal"))
	case <-time.After(10 * time.Second):
		_ = statd.Process.Kill()
		<-statdDone
		fmt.Fprintf(tr, "### rpc.statd after SIGTERM\ndid not exit within 10s\n")
	}
	tr.step("rpcinfo", "-p")
	tr.step("rpcinfo", "-s")
	tr.step("rpcinfo", "-T", "udp", "127.0.0.1", "100024", "1")
	tr.step("rpcinfo", "-m")
}

// libtirpcScenario: the libtirpc client as root, as nobody, and root's
// cleanup; then what rpcinfo sees of what is left.
func libtirpcScenario(tr *transcript, probe string) {
	tr.stepShown("libtirpc_client root", probe, "root")
	tr.stepShown("libtirpc_client nobody (as uid 65534)", append(nobody, probe, "nobody")...)
	tr.stepShown("libtirpc_client cleanup", probe, "cleanup")
	tr.step("rpcinfo")
	tr.step("rpcinfo", "-m")
}

// lifecycle: a second instance is refused while the first runs; SIGTERM
// stops the first with status 0 and removes its socket. It prints facts the
// parent checks.
func lifecycle(argv []string) int {
	d, err := startDaemon(argv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 2
	}
	out, code := run(10*time.Second, argv...)
	fmt.Printf("second instance exit=%d\n", code)
	fmt.Printf("second instance output=%q\n", out)
	if out, code := run(5*time.Second, "rpcinfo", "-T", "tcp", "127.0.0.1", "100000", "2"); code != 0 {
		fmt.Printf("first instance after the refusal: %q\n", out)
	} else {
		fmt.Printf("first instance after the refusal: answers\n")
	}
	err = d.stop()
	code = 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		code = -1
	}
	fmt.Printf("sigterm exit=%d\n", code)
	if _, err := os.Lstat("/run/rpcbind.sock"); errors.Is(err, os.ErrNotExist) {
		fmt.Printf("socket after exit: removed\n")
	} else {
		fmt.Printf("socket after exit: still there (%v)\n", err)
	}
	if out := d.output(); out != "" {
		fmt.Fprintf(os.Stderr, "daemon output:\n%s", out)
	}
	return 0
}
