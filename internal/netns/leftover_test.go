package netns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNewHostRemovesALeftOver leaves a namespace under the name the next
// host will take, as a test run killed before its cleanup leaves one for
// a later process with the same pid: NewHost removes it, with what runs
// in it, instead of failing on "File exists".
func TestNewHostRemovesALeftOver(t *testing.T) {
	Require(t)
	name := fmt.Sprintf("pm%d-%dleftover", os.Getpid(), serial.Load()+1)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	sleeper := exec.Command("ip", "netns", "exec", name, "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	h := NewHost(t, "leftover")
	if h.Name != name {
		t.Fatalf("host %s, want the left-over name %s", h.Name, name)
	}
	if err := sleeper.Wait(); err == nil {
		t.Error("what ran in the left-over namespace was not killed")
	}
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("the new namespace has processes %q (%v)", out, err)
	}
}
