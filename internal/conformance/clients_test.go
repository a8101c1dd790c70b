// The client tests: rpcinfo, rpc.statd and the libtirpc program against
// portmapd, compared with transcripts recorded from rpcbind.
package conformance

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// clientTest runs scenario against portmapd and compares its transcript with
// testdata/NAME.txt, recorded from rpcbind (re-recorded with -update).
func clientTest(t *testing.T, scenario string, norm func(string) string, env ...string) {
	t.Helper()
	want := expectFile(t, filepath.Join("testdata", scenario+".txt"), func() string {
		return inSandbox(t, scenario, daemonArgv(t, true), env...)
	})
	got := inSandbox(t, scenario, daemonArgv(t, false), env...)
	compareTranscripts(t, scenario, want, got, norm)
}

func TestRpcinfo(t *testing.T) {
	requireSandbox(t, rpcinfoTool)
	t.Parallel()
	// A fresh daemon and readiness without RPC: even rpcinfo -m's counts
	// are the same from run to run, so nothing is normalised.
	clientTest(t, "rpcinfo", func(s string) string { return s })
}

func TestStatd(t *testing.T) {
	requireSandbox(t, rpcinfoTool, statdTool)
	t.Parallel()
	clientTest(t, "statd", normaliseStatd)
}

func TestLibtirpc(t *testing.T) {
	requireSandbox(t, rpcinfoTool, gccTool)
	if _, err := os.Stat("/usr/include/tirpc/rpc/rpc.h"); err != nil {
		t.Skip("conformance tests need libtirpc's headers: apt-get install libtirpc-dev")
	}
	t.Parallel()
	// The client is run by nobody too, so it lives in a directory anyone
	// can enter (t.TempDir's are private to root).
	dir, err := os.MkdirTemp("", "portmapd-conformance-probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(dir, "libtirpc_client")
	cmd := exec.Command("gcc", "-O1", "-Wall", "-I/usr/include/tirpc", "-o", probe,
		filepath.Join("testdata", "libtirpc_client.c"), "-ltirpc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc libtirpc_client.c: %v\n%s", err, out)
	}
	clientTest(t, "libtirpc", sortStatRows, envProbe+"="+probe)
}

var (
	// statd's universal addresses (h1.h2.h3.h4.p1.p2 or IPv6.p1.p2) and its
	// ports in rpcinfo -p's table are the kernel's choice.
	statdUaddr = regexp.MustCompile(`((?:\d+\.){3}\d+|[0-9a-f:]*:[0-9a-f:]*)\.\d+\.\d+`)
	statdPort  = regexp.MustCompile(`^(\s+100024\s+\d+\s+(?:tcp|udp)\s+)\d+(\s+status)`)
	blanks     = regexp.MustCompile(`[ \t]+`)
	// a row of rpcinfo -m's call statistics: prog vers netid success failure
	statRow = regexp.MustCompile(`^(\S+ \d+ \S+) \d+ \d+$`)
	number  = regexp.MustCompile(`\d+`)
)

// normaliseStatd folds out what changes from run to run with rpc.statd:
// its ports, the width of columns that hold them, and the counts of
// rpcinfo -m, which depend on how often the test polled for statd's
// registration (rows and columns must still agree).
func normaliseStatd(s string) string {
	var out []string
	section := ""
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "### ") {
			section = line
			out = append(out, line)
			continue
		}
		if strings.Contains(line, "100024") || strings.Contains(line, "status") {
			line = statdPort.ReplaceAllString(line, "${1}P${2}")
			line = statdUaddr.ReplaceAllString(line, "${1}.P.P")
		}
		line = strings.TrimRight(blanks.ReplaceAllString(line, " "), " ")
		if section == "### rpcinfo -m" {
			if m := statRow.FindStringSubmatch(line); m != nil {
				line = m[1] + " N N"
			} else {
				line = number.ReplaceAllString(line, "N")
			}
		}
		out = append(out, line)
	}
	return sortStatRows(strings.Join(out, "\n"))
}

// statTableRow is a row of rpcinfo -m's address or remote-call tables:
// program, version, netid, then counts.
var statTableRow = regexp.MustCompile(`^\S+\s+\d+\s+(?:\d+\s+)?(?:udp|tcp|udp6|tcp6|local)\s`)

// sortStatRows sorts each run of table rows in rpcinfo -m's output. The
// rows are listed in the order their keys were first counted, which for
// calls from concurrent processes (the probe's forked service, statd) is a
// race in rpcbind as much as in portmapd; the counts are still compared.
func sortStatRows(s string) string {
	lines := strings.Split(s, "\n")
	inStats := false
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "### ") {
			inStats = strings.HasSuffix(lines[i], "rpcinfo -m") || strings.Contains(lines[i], "rpcinfo -m ")
			continue
		}
		if !inStats || !statTableRow.MatchString(lines[i]) {
			continue
		}
		j := i
		for j < len(lines) && statTableRow.MatchString(lines[j]) {
			j++
		}
		slices.Sort(lines[i:j])
		i = j - 1
	}
	return strings.Join(lines, "\n")
}

func TestSecondInstanceAndShutdown(t *testing.T) {
	requireSandbox(t, rpcinfoTool)
	t.Parallel()
	out := inSandbox(t, "lifecycle", daemonArgv(t, false))
	t.Logf("lifecycle:\n%s", out)
	for _, want := range []string{
		"second instance exit=1\n",
		"first instance after the refusal: answers\n",
		"sigterm exit=0\n",
		"socket after exit: removed\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "another rpcbind is already running. Aborting") {
		t.Errorf("second instance did not print rpcbind's message %q:\n%s", "another rpcbind is already running. Aborting", out)
	}
}
