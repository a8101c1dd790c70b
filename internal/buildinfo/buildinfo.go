// Package buildinfo says which build of portmapd is running: the
// release version, and what the Go toolchain recorded in the binary.
package buildinfo

import (
	"fmt"
	"io"
	"runtime/debug"
)

// Version is the release version of portmapd and portmapctl. A release
// build sets it with -ldflags "-X
// github.com/portmapd/portmapd/internal/buildinfo.Version=1.2.3".
var Version = "0.1.0"

// Write prints prog and Version on one line, then the build information
// the binary carries (debug.ReadBuildInfo), in the form `go version -m`
// prints: the Go version, the main module, each dependency with its
// version and checksum, and the build settings.
func Write(w io.Writer, prog string) {
	fmt.Fprintf(w, "%s %s\n", prog, Version)
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(w, "no build information in this binary")
		return
	}
	fmt.Fprint(w, bi.String())
}
