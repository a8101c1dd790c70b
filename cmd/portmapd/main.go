// Command portmapd is an ONC RPC portmapper: a drop-in replacement for
// rpcbind.
package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/portmapd/portmapd/internal/cli"
)

func main() {
	// rpcbind ignores these rather than dying of them.
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPIPE)
	cli.Main(run, os.Interrupt, syscall.SIGTERM, syscall.SIGQUIT)
}
