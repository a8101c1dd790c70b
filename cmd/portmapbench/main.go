// Command portmapbench puts the same load on any portmapper, so that
// portmapd and rpcbind can be measured against each other in one run.
package main

import (
	"context"
	"io"
	"os"
	"syscall"

	"github.com/portmapd/portmapd/internal/cli"
)

func main() { cli.Main(execute, os.Interrupt, syscall.SIGTERM) }

// execute runs the command line args; cobra prints the error of one that
// fails.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if cmd.ExecuteContext(ctx) != nil {
		return 1
	}
	return 0
}
