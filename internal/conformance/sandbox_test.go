// The harness: root and tool checks, the sandbox, recorded transcripts and
// the diff.
//
// Each test starts the portmapper under test on port 111 and
// /run/rpcbind.sock inside private namespaces, drives it with real clients
// and compares what they see with transcripts recorded from rpcbind. The
// test re-executes this test binary inside `ip netns exec NS unshare -m`
// with an empty tmpfs on /run; the child (see TestMain and child_test.go)
// starts the daemon, runs a scenario and prints a transcript that the parent
// compares.
package conformance

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "re-record the expected transcripts from Debian's rpcbind (/usr/sbin/rpcbind)")

// rpcbindPath is the reference daemon the transcripts are recorded from.
const rpcbindPath = "/usr/sbin/rpcbind"

// Environment of a child process running inside the sandbox.
const (
	envChild   = "PORTMAPD_CONFORMANCE_CHILD"  // scenario name
	envDaemon  = "PORTMAPD_CONFORMANCE_DAEMON" // JSON argv of the daemon
	envProbe   = "PORTMAPD_CONFORMANCE_PROBE"  // built libtirpc client
	envOracle  = "PORTMAPD_CONFORMANCE_ORACLE" // raw packet transcript to replay
	envUpdates = "CONFORMANCE_UPDATE"
)

func TestMain(m *testing.M) {
	if scenario := os.Getenv(envChild); scenario != "" {
		os.Exit(runChild(scenario))
	}
	code := m.Run()
	for _, b := range []*builtCommand{builtPortmapd, builtPortmapctl} {
		if b.path != "" {
			os.RemoveAll(filepath.Dir(b.path))
		}
	}
	os.Exit(code)
}

func updating() bool { return *update || os.Getenv(envUpdates) == "1" }

// tool is a program the suite runs and the Debian package that has it.
type tool struct{ name, pkg string }

// requireSandbox skips the test unless it runs as root on a machine with
// everything the sandbox and the clients need.
func requireSandbox(t *testing.T, tools ...tool) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("conformance tests need Linux network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("conformance tests need root for network namespaces: run make test as root")
	}
	base := []tool{{"ip", "iproute2"}, {"unshare", "util-linux"}, {"setpriv", "util-linux"}, {"mount", "mount"}}
	for _, tl := range append(base, tools...) {
		if _, err := exec.LookPath(tl.name); err != nil {
			t.Skipf("conformance tests need %s: apt-get install %s", tl.name, tl.pkg)
		}
	}
}

var (
	rpcinfoTool = tool{"rpcinfo", "rpcbind"}
	statdTool   = tool{"rpc.statd", "nfs-common"}
	gccTool     = tool{"gcc", "gcc"}
)

// daemonArgv is the command that starts the portmapper under test in the
// foreground: Debian's rpcbind when re-recording, else portmapd.
func daemonArgv(t *testing.T, reference bool) []string {
	t.Helper()
	if reference {
		if _, err := os.Stat(rpcbindPath); err != nil {
			t.Skipf("re-recording needs Debian's rpcbind at %s: apt-get install rpcbind", rpcbindPath)
		}
		return []string{rpcbindPath, "-f"}
	}
	return []string{portmapdBin(t), "-f"}
}

// A builtCommand is one of portmapd's commands, from $ENV or built once
// into a temporary directory when that is unset.
type builtCommand struct {
	env, pkg string
	once     sync.Once
	path     string
	err      error
}

var (
	builtPortmapd   = &builtCommand{env: "PORTMAPD_BIN", pkg: "github.com/portmapd/portmapd/cmd/portmapd"}
	builtPortmapctl = &builtCommand{env: "PORTMAPCTL_BIN", pkg: "github.com/portmapd/portmapd/cmd/portmapctl"}
)

// portmapdBin is $PORTMAPD_BIN, or portmapd built once.
func portmapdBin(t *testing.T) string { return builtPortmapd.bin(t) }

// portmapctlBin is $PORTMAPCTL_BIN, or portmapctl built once.
func portmapctlBin(t *testing.T) string { return builtPortmapctl.bin(t) }

func (b *builtCommand) bin(t *testing.T) string {
	t.Helper()
	if p := os.Getenv(b.env); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "portmapd-conformance-bin-")
		if err != nil {
			b.err = err
			return
		}
		out := filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-o", out, b.pkg)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, o)
			return
		}
		b.path = out
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

var nsCounter atomic.Int64

// inSandbox runs this test binary as a child in a fresh network namespace
// (loopback up) and a private mount namespace with an empty tmpfs on /run,
// where it plays scenario against the daemon that argv starts. It returns
// the child's standard output, the transcript.
func inSandbox(t *testing.T, scenario string, argv []string, env ...string) string {
	t.Helper()
	ns := fmt.Sprintf("pmconf-%d-%d", os.Getpid(), nsCounter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up in %s: %v\n%s", ns, err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	daemon, _ := json.Marshal(argv)
	cmd := exec.Command("ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private",
		"sh", "-c", `mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/lock && exec "$0" "$@"`,
		self, "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+scenario, envDaemon+"="+string(daemon))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		err = <-done
		t.Errorf("scenario %s timed out", scenario)
	}
	if stderr.Len() > 0 {
		t.Logf("scenario %s (%s) stderr:\n%s", scenario, argv[0], stderr.String())
	}
	if err != nil {
		t.Fatalf("scenario %s with %s: %v\n%s", scenario, strings.Join(argv, " "), err, stdout.String())
	}
	return stdout.String()
}

// expectFile returns the recorded transcript at path, first re-recording it
// from rpcbind when the test runs with -update or CONFORMANCE_UPDATE=1.
func expectFile(t *testing.T, path string, record func() string) string {
	t.Helper()
	if updating() {
		got := record()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("re-recorded %s from %s", path, rpcbindPath)
		return got
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (record it from rpcbind with: go test ./internal/conformance -run %s -update)", err, t.Name())
	}
	return string(b)
}

// compareTranscripts fails t with a unified-style diff when want and got,
// normalised by norm, differ.
func compareTranscripts(t *testing.T, what string, want, got string, norm func(string) string) {
	t.Helper()
	w, g := norm(want), norm(got)
	if w == g {
		return
	}
	t.Errorf("%s: portmapd's transcript differs from rpcbind's ('-' rpcbind, '+' portmapd):\n%s", what,
		unifiedDiff(strings.Split(w, "\n"), strings.Split(g, "\n"), 3))
}

// unifiedDiff is a small line diff (longest common subsequence) printed in
// unified style with ctx lines of context around each change.
func unifiedDiff(a, b []string, ctx int) string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte
		text string
		ai   int
		bi   int
	}
	var ops []op
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, op{' ', a[i], i, j})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i], i, j})
			i++
		default:
			ops = append(ops, op{'+', b[j], i, j})
			j++
		}
	}
	var sb strings.Builder
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := max(0, k-ctx)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*ctx || run == len(ops) {
				end = min(len(ops), end+ctx)
				break
			}
			end = run
		}
		fmt.Fprintf(&sb, "@@ -%d +%d @@\n", ops[start].ai+1, ops[start].bi+1)
		for _, o := range ops[start:end] {
			fmt.Fprintf(&sb, "%c%s\n", o.kind, o.text)
		}
		k = end
	}
	return sb.String()
}
