package cli

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// childEnv tells a test binary started by TestMainRuns to be that
// child: the value says what its Run does.
const childEnv = "CLI_TEST_CHILD"

// TestMainRuns starts this test binary again as a process whose main is
// Main, and checks what Main hands its Run (the arguments, standard output
// and error) and that the process exits with the status the Run returns,
// and that one of the signals given to Main ends the Run's context.
func TestMainRuns(t *testing.T) {
	if what := os.Getenv(childEnv); what != "" {
		Main(func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			io.WriteString(stdout, strings.Join(args, " ")+"\n")
			io.WriteString(stderr, "to stderr\n")
			if what == "signal" {
				if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
					return 2
				}
				<-ctx.Done()
				return 130
			}
			status, err := strconv.Atoi(what)
			if err != nil {
				return 2
			}
			return status
		}, syscall.SIGUSR1)
		return
	}
	tests := []struct {
		name   string
		child  string
		status int
	}{
		{"success", "0", 0},
		{"failure", "1", 1},
		{"another status", "3", 3},
		{"a signal ends the context", "signal", 130},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMainRuns$", "extra")
			cmd.Env = append(os.Environ(), childEnv+"="+tt.child)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); cmd.ProcessState == nil {
				t.Fatal(err)
			}
			if status := cmd.ProcessState.ExitCode(); status != tt.status {
				t.Errorf("exit status %d, want %d (stderr: %q)", status, tt.status, stderr.String())
			}
			if want := "-test.run=^TestMainRuns$ extra\n"; stdout.String() != want {
				t.Errorf("stdout %q, want the arguments after the program's name, %q", stdout.String(), want)
			}
			if want := "to stderr\n"; stderr.String() != want {
				t.Errorf("stderr %q, want %q", stderr.String(), want)
			}
		})
	}
}
