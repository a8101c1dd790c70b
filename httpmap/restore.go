package httpmap

import (
	"log/slog"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/lifetime"
)

// WatchRegistered watches the processes of named services already in the
// registry, as after a restart restored them, so that they end with their
// process like those registered through this server. A service whose
// process is gone, or whose pid now belongs to another process (another
// start time or executable), is removed; those are returned.
func (s *Server) WatchRegistered() []registry.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	var dropped []registry.Service
	seen := map[lifetime.Key]bool{}
	for _, sv := range s.reg.NamedServices() {
		k := lifetime.Key{PID: sv.PID, Start: sv.Start}
		if seen[k] || s.watcher.Watching(k) {
			continue
		}
		seen[k] = true
		h, err := lifetime.Open(s.cfg.ProcRoot, sv.PID)
		if err == nil && (h.Start != sv.Start || sv.Exe != "" && h.Exe != "" && h.Exe != sv.Exe) {
			h.Close()
			err = lifetime.ErrGone
		}
		if err == nil {
			_, err = s.watcher.Watch(h, s.processGone)
		}
		if err != nil {
			gone := s.reg.DropProcess(sv.PID, sv.Start)
			for _, g := range gone {
				s.log.Info("deregistered: process gone since the registration was saved", "service", g.Name, "endpoint", g.Endpoint(), "pid", g.PID, exeAttr(g.Exe))
			}
			dropped = append(dropped, gone...)
		}
	}
	return dropped
}

// exeAttr is a log line's exe attribute, left out when the kernel would
// not say what the process runs (another user's, to a daemon that has
// given up root).
func exeAttr(exe string) slog.Attr {
	if exe == "" {
		return slog.Attr{}
	}
	return slog.String("exe", exe)
}
