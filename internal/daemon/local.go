package daemon

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/portmapd/portmapd/internal/safefile"
	"github.com/portmapd/portmapd/netid"
)

// listenLocal opens the local socket at path, mode 0666 so that every
// user's services can register (the owner comes from SO_PEERCRED), and,
// when abstract is set, the same name in the abstract namespace, which is
// scoped to the network namespace and so cannot be reached from another
// container through a shared /run.
func (ls *listeners) listenLocal(path string, abstract bool, log *slog.Logger) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("daemon: local socket: %w", err)
	}
	// A socket left by a portmapper that died holds the name, and is
	// replaced; one that a running portmapper answers on (a second
	// instance started without the lock file) is left alone.
	ln, err := safefile.ListenUnix(path, 0o666)
	if err != nil {
		return fmt.Errorf("daemon: local socket: %w", err)
	}
	ls.socket = path
	ls.stream = append(ls.stream, streamSocket{netid: netid.Local, ln: ln})
	if abstract {
		aln, err := net.Listen("unix", "@"+path)
		if err != nil {
			log.Warn("abstract local socket unavailable", "name", "@"+path, "err", err)
			return nil
		}
		ls.stream = append(ls.stream, streamSocket{netid: netid.Local, ln: aln})
	}
	return nil
}
