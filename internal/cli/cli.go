// Package cli is what the main functions of portmapd's commands share:
// each builds its command in its own package and hands cli.Main a Run.
package cli

import (
	"context"
	"io"
	"os"
	"os/signal"
)

// A Run is a command's body: it runs the command line args, writing to
// stdout and stderr, until it is done or ctx ends, and returns the
// process's exit status.
type Run func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Main runs run with the process's arguments (without the program's name)
// and its standard output and error, under a context that ends when one of
// signals arrives, and exits with the status run returns.
func Main(run Run, signals ...os.Signal) {
	ctx, stop := signal.NotifyContext(context.Background(), signals...)
	status := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(status)
}
