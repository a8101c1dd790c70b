package daemon

import (
	"log/slog"

	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/journal"
	"github.com/portmapd/portmapd/registry/proc"
	"github.com/portmapd/portmapd/registry/warmstart"
	"github.com/portmapd/portmapd/xdr"
)

// restoreState loads the state directory into reg, which already holds the
// portmapper's own entries, and starts the journal. Nothing in it stops
// the daemon: without a usable state directory it serves without saving,
// and says so. extra are registrations from rpcbind's warm-start files,
// restored after the saved ones.
func restoreState(cfg Config, reg *registry.Registry, extra []registry.Entry, log *slog.Logger) *journal.Journal {
	var st journal.State
	if cfg.StateDir != "" {
		var err error
		st, err = journal.Load(cfg.StateDir, log)
		if err != nil {
			log.Error("cannot use the state directory; registrations will not survive a restart", "dir", cfg.StateDir, "err", err)
			cfg.StateDir = ""
		}
	}
	entries := make([]registry.Entry, 0, len(st.Entries)+len(extra))
	for _, e := range append(st.Entries, extra...) {
		// The portmapper's own entries are registered afresh.
		if e.Prog != xdr.PmapProg {
			entries = append(entries, e)
		}
	}
	svcs := make([]registry.Service, 0, len(st.Services))
	dead := 0
	for _, s := range st.Services {
		if alive(cfg.ProcRoot, s.Process) {
			svcs = append(svcs, s)
		} else {
			dead++
		}
	}
	nE, nS := reg.Restore(entries, svcs)
	if nE+nS+dead > 0 || len(st.Damaged) > 0 {
		log.Info("restored registrations", "dir", cfg.StateDir, "rpc", nE, "named", nS, "named_of_exited_processes", dead)
	}
	if cfg.StateDir == "" {
		return nil
	}
	j, err := journal.Start(cfg.StateDir, st.Gen, reg, journal.Options{Logger: log, CompactBytes: cfg.StateCompactBytes})
	if err != nil {
		log.Error("cannot write the state directory; registrations will not survive a restart", "dir", cfg.StateDir, "err", err)
		return nil
	}
	return j
}

// alive reports whether p, as saved, is still running: its pid exists with
// the same start time and executable.
func alive(procRoot string, p registry.Process) bool {
	if procRoot == "" {
		procRoot = "/proc"
	}
	info, err := proc.Inspect(procRoot, p.PID)
	if err != nil || info.Start != p.Start {
		return false
	}
	return p.Exe == "" || info.Exe == "" || info.Exe == p.Exe
}

// readWarmStart reads rpcbind's warm-start files; damage is logged and
// what could be read is kept.
func readWarmStart(dir string, log *slog.Logger) []registry.Entry {
	sv, err := warmstart.Read(dir)
	entries := sv.Entries
	if err != nil {
		log.Error("rpcbind warm-start files damaged; restoring what could be read", "dir", dir, "entries", len(entries), "err", err)
	}
	if len(entries) > 0 {
		log.Info("read rpcbind's warm-start files", "dir", dir, "entries", len(entries))
	}
	return entries
}

// writeWarmStart writes rpcbind's warm-start files on the way out, so that
// rpcbind -w (or portmapd -w) started next finds every registration.
func writeWarmStart(dir string, reg *registry.Registry, log *slog.Logger) {
	entries := reg.Entries()
	if err := warmstart.Write(dir, entries); err != nil {
		log.Error("cannot write rpcbind's warm-start files", "dir", dir, "err", err)
		return
	}
	log.Info("wrote rpcbind's warm-start files", "dir", dir, "entries", len(entries))
}
