package daemon_test

import (
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
	needRoot(t, "to make a network namespace", "unshare", "ip")
	d := newDaemon(t, pruneFlags...)
	d.start()
	const prog = 0x31000010
	inNamespace := exec.Command("unshare", "-n", "sh", "-c", `ip link set lo up && exec "$0" -test.run='^TestHelperService$'`, os.Args[0])
	cmd, state, _ := startHelper(t, inNamespace, d, "serve", prog)
	if state != "ready" {
		t.Fatalf("service in another namespace: %s", state)
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
