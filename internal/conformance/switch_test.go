// Switching a host between rpcbind and portmapd, both with -w, while
// rpc.statd runs and re-registers on new ports under each (issue 10).
package conformance

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/httpmap"
)

// envSwitchOrder names which portmapper the switching scenario starts
// with: "portmapd" or "rpcbind".
const envSwitchOrder = "PORTMAPD_CONFORMANCE_SWITCH_ORDER"

// switchPhases is how many times the scenario starts a portmapper: each
// one twice over, and the first a third time.
const switchPhases = 5

// TestSwitchingBackAndForth switches a host from portmapd to rpcbind and
// back, twice over, starting from either one, with both started with -w
// as Debian does. rpc.statd runs throughout and is restarted under each
// portmapper, so that it registers on new ports there. After every
// switch, `rpcinfo` must list statd's current ports and none of its dead
// ones, and a name registered over HTTP must still be there after
// portmapd comes back.
func TestSwitchingBackAndForth(t *testing.T) {
	requireSandbox(t, rpcinfoTool, statdTool)
	if _, err := os.Stat(rpcbindPath); err != nil {
		t.Skipf("needs Debian's rpcbind at %s: apt-get install rpcbind", rpcbindPath)
	}
	portmapd := append(daemonArgv(t, false), "-w", "--no-prune")
	for _, first := range []string{"portmapd", "rpcbind"} {
		t.Run(first+"-first", func(t *testing.T) {
			t.Parallel()
			out := inSandbox(t, "switching", portmapd, envSwitchOrder+"="+first)
			t.Logf("switching:\n%s", out)
			// A check of statd after every start but the first and
			// after every restart of statd, and of the name after
			// every start of portmapd but its first.
			checks := (switchPhases - 1) + switchPhases + (switchPhases-1)/2
			if first == "rpcbind" {
				checks = (switchPhases - 1) + switchPhases + (switchPhases/2 - 1)
			}
			if strings.Contains(out, "FAIL") || strings.Count(out, ": ok\n") != checks || !strings.HasSuffix(out, "done\n") {
				t.Errorf("want every check ok:\n%s", out)
			}
		})
	}
}

// switching plays the scenario with portmapd started by portmapdArgv,
// printing one line per check ("...: ok" or "FAIL: ...").
func switching(portmapdArgv []string) int {
	rpcbindArgv := []string{rpcbindPath, "-w", "-f"}
	names := []string{"portmapd", "rpcbind"}
	argvs := [][]string{portmapdArgv, rpcbindArgv}
	if os.Getenv(envSwitchOrder) == "rpcbind" {
		names[0], names[1] = names[1], names[0]
		argvs[0], argvs[1] = argvs[1], argvs[0]
	}
	for _, dir := range []string{"/run/statd/sm", "/run/statd/sm.bak"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fmt.Println("FAIL:", err)
			return 0
		}
	}
	var statd *exec.Cmd
	defer func() {
		if statd != nil {
			statd.Process.Kill()
			statd.Wait()
		}
	}()
	named := false
	for phase := range switchPhases {
		name, argv := names[phase%2], argvs[phase%2]
		d, err := startDaemon(argv)
		if err != nil {
			fmt.Printf("FAIL: phase %d: starting %s: %v\n", phase, name, err)
			return 0
		}
		if phase > 0 {
			fmt.Printf("phase %d, %s started: %s\n", phase, name, checkStatus(statd.Process.Pid))
		}
		if name == "portmapd" && named {
			fmt.Printf("phase %d, %s started, named registration: %s\n", phase, name, namedState())
		}
		if statd != nil {
			_ = statd.Process.Signal(syscall.SIGTERM)
			statd.Wait()
		}
		if statd, err = startStatd(); err != nil {
			fmt.Printf("FAIL: phase %d: starting rpc.statd: %v\n", phase, err)
			d.stop()
			return 0
		}
		fmt.Printf("phase %d, %s, statd started anew: %s\n", phase, name, checkStatus(statd.Process.Pid))
		if name == "portmapd" && !named {
			if err := registerName(); err != nil {
				fmt.Printf("FAIL: phase %d: registering a name: %v\n", phase, err)
			}
			named = true
		}
		if err := d.stop(); err != nil {
			fmt.Printf("FAIL: phase %d: %s stopped with %v\n%s", phase, name, err, d.output())
		}
		if strings.Contains(d.output(), "ERROR") {
			fmt.Printf("FAIL: phase %d: %s logged an error:\n%s", phase, name, d.output())
		}
	}
	fmt.Println("done")
	return 0
}

// startStatd starts rpc.statd and waits until what rpcinfo lists of it is
// what it has bound.
func startStatd() (*exec.Cmd, error) {
	cmd := exec.Command("rpc.statd", "-F", "-n", "localhost", "-P", "/run/statd", "--no-notify")
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var last string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if last = checkStatus(cmd.Process.Pid); last == "ok" {
			return cmd, nil
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	return nil, fmt.Errorf("not registered as it listens: %s", last)
}

// The lines of status (100024) in `rpcinfo -p` and in plain `rpcinfo`.
var (
	pmapStatus = regexp.MustCompile(`(?m)^\s*100024\s+\d+\s+(udp|tcp)\s+(\d+)\s+status\s*$`)
	rpcbStatus = regexp.MustCompile(`(?m)^\s*100024\s+\d+\s+(udp|tcp)6?\s+\S*?\.(\d+)\.(\d+)\s`)
)

// checkStatus returns "ok" when `rpcinfo -p` lists status on udp and tcp,
// `rpcinfo` lists it too, and every port either lists is one process pid
// (rpc.statd) has bound; else what is wrong.
func checkStatus(pid int) string {
	bound := boundPorts(pid)
	var problems []string
	out, code := run(10*time.Second, "rpcinfo", "-p")
	if code != 0 {
		return "FAIL: rpcinfo -p: " + out
	}
	protos := map[string]bool{}
	for _, m := range pmapStatus.FindAllStringSubmatch(out, -1) {
		protos[m[1]] = true
		if !bound[m[1]+"/"+m[2]] {
			problems = append(problems, "rpcinfo -p lists dead "+m[1]+" port "+m[2])
		}
	}
	if !protos["udp"] || !protos["tcp"] {
		problems = append(problems, fmt.Sprintf("rpcinfo -p lists status on %v, want udp and tcp", slices.Sorted(mapKeys(protos))))
	}
	out, code = run(10*time.Second, "rpcinfo")
	if code != 0 {
		return "FAIL: rpcinfo: " + out
	}
	ms := rpcbStatus.FindAllStringSubmatch(out, -1)
	if len(ms) == 0 {
		problems = append(problems, "rpcinfo lists no status")
	}
	for _, m := range ms {
		hi, _ := strconv.Atoi(m[2])
		lo, _ := strconv.Atoi(m[3])
		if port := strconv.Itoa(hi<<8 | lo); !bound[m[1]+"/"+port] {
			problems = append(problems, "rpcinfo lists dead "+m[1]+" port "+port)
		}
	}
	if len(problems) > 0 {
		return fmt.Sprintf("FAIL: statd (pid %d) has bound %v; %s", pid, slices.Sorted(mapKeys(bound)), strings.Join(problems, "; "))
	}
	return "ok"
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// boundPorts returns the ports process pid has bound, as "udp/PORT" and
// "tcp/PORT", IPv4 and IPv6 alike: its socket inodes, looked up in
// /proc/net.
func boundPorts(pid int) map[string]bool {
	inodes := map[string]bool{}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	out := map[string]bool{}
	for _, table := range []string{"udp", "tcp", "udp6", "tcp6"} {
		b, _ := os.ReadFile("/proc/net/" + table)
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] {
				continue
			}
			i := strings.LastIndexByte(f[1], ':')
			if port, err := strconv.ParseUint(f[1][i+1:], 16, 16); err == nil && port != 0 {
				out[strings.TrimSuffix(table, "6")+"/"+strconv.FormatUint(port, 10)] = true
			}
		}
	}
	return out
}

const switchName = "switch.example.com"

// registerName registers a name over portmapd's HTTP socket, held by this
// process, which runs throughout.
func registerName() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := httpmap.NewLocalClient(httpmap.DefaultSocketPath).Register(ctx, httpmap.Registration{Services: []httpmap.ServiceSpec{
		{Service: switchName, Port: httpmap.Port("7000"), Protocol: "tcp"},
	}})
	return err
}

// namedState says whether portmapd still holds the name registerName
// registered.
func namedState() string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ins, err := httpmap.NewLocalClient(httpmap.DefaultSocketPath).Lookup(ctx, switchName)
	switch {
	case err != nil:
		return "FAIL: " + err.Error()
	case len(ins) != 1:
		return fmt.Sprintf("FAIL: %d instances of %s", len(ins), switchName)
	}
	return "ok"
}
