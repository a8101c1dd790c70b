package daemon_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portmapd/portmapd/internal/netns"
)

// statusLines are the lines of rpc.statd (status, 100024) in `rpcinfo`.
var statusLines = regexp.MustCompile(`(?m)^\s*100024\s.*$`)

// TestMigrate switches a host from rpcbind to portmapd and back with
// `portmapctl migrate`, as a host without systemd does it (processes,
// with the options of rpcbind's option file), while rpc.statd runs: after
// each switch the other portmapper serves, every registration of statd
// is there as it was, and statd is the same process, never restarted. A
// dry run first prints the steps and changes nothing.
func TestMigrate(t *testing.T) {
	const rpcbind = "/usr/sbin/rpcbind"
	for _, tool := range []string{rpcbind, "/usr/sbin/rpc.statd", "/usr/sbin/rpcinfo"} {
		if _, err := os.Stat(tool); err != nil {
			t.Skipf("needs %s: apt-get install rpcbind nfs-common", tool)
		}
	}
	h := netns.NewHost(t, "mig")
	portmapd, portmapctl := tools(t)
	options := filepath.Join(t.TempDir(), "rpcbind")
	if err := os.WriteFile(options, []byte("# as Debian ships it\nOPTIONS=\"-w\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"statd/sm", "statd/sm.bak"} {
		if err := os.MkdirAll(filepath.Join(h.Run, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rpcinfo := func() string {
		out, _ := h.Command("rpcinfo").CombinedOutput()
		return string(out)
	}
	if out, err := h.Command(rpcbind, "-w").CombinedOutput(); err != nil {
		t.Fatalf("starting rpcbind: %v\n%s", err, out)
	}
	waitFor(t, "rpcbind to answer", func() bool { return strings.Contains(rpcinfo(), "portmapper") })
	statd := h.Start(h.Command("rpc.statd", "-F", "-n", "localhost", "-P", "/run/statd", "--no-notify"))
	waitFor(t, "rpc.statd to register", func() bool { return len(statusLines.FindAllString(rpcinfo(), -1)) >= 4 })
	registered := slices.Sorted(slices.Values(statusLines.FindAllString(rpcinfo(), -1)))

	migrate := func(args ...string) string {
		t.Helper()
		argv := append([]string{portmapctl, "migrate"}, args...)
		argv = append(argv, "--no-systemd", "--options-file", options, "--portmapd", portmapd,
			"--rpcbind", rpcbind, "--portmapd-arg=--log-file="+filepath.Join(h.Run, "portmapd.log"))
		out, err := h.Command(argv...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv[1:3], " "), err, out)
		}
		return string(out)
	}
	running := func(name string) bool {
		out, _ := exec.Command("ip", "netns", "pids", h.Name).Output()
		for _, pid := range strings.Fields(string(out)) {
			if exe, err := os.Readlink("/proc/" + pid + "/exe"); err == nil && filepath.Base(exe) == name {
				return true
			}
		}
		return false
	}
	check := func(step, serving, stopped string) {
		t.Helper()
		if !running(serving) || running(stopped) {
			t.Errorf("after %s: %s running %v, %s running %v", step, serving, running(serving), stopped, running(stopped))
		}
		select {
		case <-statd.Done():
			t.Fatalf("after %s: rpc.statd exited: %v\n%s", step, statd.Err(), statd.Output())
		default:
		}
		if got := slices.Sorted(slices.Values(statusLines.FindAllString(rpcinfo(), -1))); !slices.Equal(got, registered) {
			t.Errorf("after %s: statd's registrations\n%s\nwant\n%s", step, strings.Join(got, "\n"), strings.Join(registered, "\n"))
		}
	}

	out := migrate("from-rpcbind", "--dry-run")
	for _, want := range []string{"1. list the registrations", "2. stop rpcbind (pid ", "3. start " + portmapd + " -w --log-file=", "4. wait for portmapd", "dry run: nothing was done"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run lacks %q:\n%s", want, out)
		}
	}
	check("the dry run", "rpcbind", "portmapd")

	out = migrate("from-rpcbind")
	t.Logf("from-rpcbind:\n%s", out)
	if !strings.Contains(out, "portmapd serves; all ") {
		t.Errorf("from-rpcbind does not say it kept the registrations:\n%s", out)
	}
	check("from-rpcbind", "portmapd", "rpcbind")

	out = migrate("to-rpcbind")
	t.Logf("to-rpcbind:\n%s", out)
	if !strings.Contains(out, "rpcbind serves; all ") {
		t.Errorf("to-rpcbind does not say it kept the registrations:\n%s", out)
	}
	check("to-rpcbind", "rpcbind", "portmapd")
	statd.Stop(10 * time.Second)
}
