// Command portmapctl queries and changes a portmapper: portmapd or
// rpcbind. Its views print what rpcinfo prints.
package main

import (
	"os"
	"syscall"

	"github.com/portmapd/portmapd/internal/cli"
)

func main() { cli.Main(run, os.Interrupt, syscall.SIGTERM) }
