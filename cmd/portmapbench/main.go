// Command portmapbench puts the same load on any portmapper, so that
// portmapd and rpcbind can be measured against each other in one run.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd()
	if err := cmd.ExecuteContext(ctx); err != nil {
		os.Exit(1)
	}
}
