package daemon_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portmapd/portmapd/netid"
)

// TestForeignNamespace registers a service from another network namespace
// over the shared local socket, as a container sharing /run does, and
// kills it. Its port cannot be seen from portmapd's namespace, so no port
// check may remove it: not while the daemon runs, and not after the daemon
// is killed and restarted, when only the saved namespace cookie tells
// where the service was.
func TestForeignNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a network namespace")
	}
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	d := newDaemon(t, pruneFlags...)
	d.start()
	const prog = 0x31000010
	cmd := exec.Command("unshare", "-n", "sh", "-c", `ip link set lo up && exec "$0" -test.run='^TestHelperService$'`, os.Args[0])
	cmd.Env = append(os.Environ(), "PORTMAPD_HELPER=serve", "PORTMAPD_HELPER_SOCKET="+d.rpc, fmt.Sprintf("PORTMAPD_HELPER_PROG=%d", prog))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); !strings.HasPrefix(line, "ready") {
		t.Fatalf("service in another namespace: %q", line)
	}
	if !d.has(prog, netid.ProtoTCP) {
		t.Fatal("not registered")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// Past the grace period and many checks, before and after a crash.
	time.Sleep(800 * time.Millisecond)
	if !d.has(prog, netid.ProtoTCP) {
		t.Fatalf("registration from another namespace pruned by a port check that cannot see it:\n%s", d.log.String())
	}
	d.kill()
	d.start()
	time.Sleep(800 * time.Millisecond)
	if !d.has(prog, netid.ProtoTCP) {
		t.Fatalf("after a restart, registration from another namespace pruned:\n%s", d.log.String())
	}
	if strings.Contains(d.log.String(), "pruned registration") {
		t.Errorf("something was pruned:\n%s", d.log.String())
	}
}
