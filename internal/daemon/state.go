package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/portmapd/portmapd/httpmap"
	"github.com/portmapd/portmapd/registry"
	"github.com/portmapd/portmapd/registry/journal"
	"github.com/portmapd/portmapd/registry/lifetime"
	"github.com/portmapd/portmapd/registry/warmstart"
	"github.com/portmapd/portmapd/xdr"
)

// restoreState loads the state directory into reg, which already holds
// the portmapper's own entries, through life, which leaves out the named
// services whose process has exited and watches the others. It returns the
// journal that is to record changes from then on, not yet started, which
// tells obs of its writes. Nothing in the state directory stops the
// daemon: without a usable one it serves without saving (the journal is
// nil), and says so in one line. warm is what rpcbind's warm-start files
// held (see rpcEntries). The only error is ctx's, when it ends while the
// state is read; nothing has been changed then.
func restoreState(ctx context.Context, cfg Config, reg *registry.Registry, life *lifetime.Keeper, warm warmstart.Saved, obs journal.Observer, log *slog.Logger) (*journal.Journal, error) {
	var st journal.State
	var store *journal.Store
	if cfg.StateDir != httpmap.Off {
		var err error
		store, err = journal.Open(cfg.StateDir, journal.Options{Logger: log, CompactBytes: cfg.StateCompactBytes, FeedSize: cfg.WatchHistory, Observer: obs})
		if err != nil {
			log.Error("cannot use the state directory; serving without saving, so registrations will not survive a restart", "dir", cfg.StateDir, "err", err)
		} else if st, err = store.Load(ctx); err != nil {
			store.Close()
			return nil, err
		}
	}
	var entries []registry.Entry
	for _, e := range rpcEntries(st, warm, log) {
		// The portmapper's own entries are registered afresh.
		if e.Prog != xdr.PmapProg {
			entries = append(entries, e)
		}
	}
	nE, nS, dead := life.Restore(entries, st.Services)
	if nE+nS+dead > 0 || len(st.Damaged) > 0 {
		log.Info("restored registrations", "dir", cfg.StateDir, "rpc", nE, "named", nS, "named_of_exited_processes", dead)
	}
	reg.Resume(registry.Saved{Index: st.Index, Feed: st.Feed, Entries: st.Entries, Services: st.Services}, whyNotRestored)
	if store == nil {
		return nil, nil
	}
	j, err := store.NewJournal(st.Gen, reg)
	if err != nil {
		store.Close()
		log.Error("cannot write the state directory; serving without saving, so registrations will not survive a restart", "dir", cfg.StateDir, "err", err)
		return nil, nil
	}
	return j, nil
}

// whyNotRestored says why a saved registration is not among those
// restored, for the watchers who saw it before the restart. A named
// service comes back unless its process is gone; an RPC entry unless it
// is the portmapper's own, registered afresh, or rpcbind's newer
// warm-start files replaced it (rpcEntries).
func whyNotRestored(c registry.Change) string {
	switch {
	case c.Op == registry.OpDeregister:
		return "its process exited while portmapd was stopped"
	case c.Entry.Prog == xdr.PmapProg:
		return "the portmapper registered itself afresh"
	}
	return "replaced by rpcbind's warm-start files, which are newer"
}

// rpcEntries decides which RPC registrations come back when both
// portmapd's saved state and rpcbind's warm-start files are there.
//
// The two portmappers never run at once (port 111 and the lock file), so
// whichever wrote last ran last and knows best which services live:
// warm-start files written after portmapd's state was last written
// (rpcbind ran in between, and services may have registered there anew on
// other ports) replace the saved RPC registrations, so that none that
// died with rpcbind comes back; older ones (left from before portmapd
// last ran) are ignored. The state's time comes from the stamps recorded
// in it, which a copy keeps; rpcbind records none, so the files' times
// are all there is for them. portmapd stopped with -w stamps its state
// after writing the files, so its own files never win over its richer
// state (owner pid, namespace, time of registration), and when rpcbind's
// do, an entry the state holds unchanged keeps those details.
func rpcEntries(st journal.State, warm warmstart.Saved, log *slog.Logger) []registry.Entry {
	switch {
	case warm.Written.IsZero():
		return st.Entries
	case st.LastWrite.IsZero():
		return warm.Entries
	case !warm.Written.After(st.LastWrite):
		log.Warn("ignoring rpcbind's warm-start files: they were written before portmapd last saved its state", "warm_start_written", warm.Written.Format(time.RFC3339Nano), "state_written", st.LastWrite.Format(time.RFC3339Nano), "ignored", len(warm.Entries))
		return st.Entries
	}
	log.Info("rpcbind's warm-start files are newer than portmapd's saved state: their RPC registrations replace the saved ones", "warm_start_written", warm.Written.Format(time.RFC3339Nano), "state_written", st.LastWrite.Format(time.RFC3339Nano), "replaced", len(st.Entries), "restored", len(warm.Entries))
	saved := make(map[registry.Entry]registry.Entry, len(st.Entries))
	for _, e := range st.Entries {
		saved[bare(e)] = e
	}
	out := make([]registry.Entry, len(warm.Entries))
	for i, e := range warm.Entries {
		if s, ok := saved[bare(e)]; ok {
			e = s
		}
		out[i] = e
	}
	return out
}

// bare is e as a warm-start file keeps it.
func bare(e registry.Entry) registry.Entry {
	return registry.Entry{Prog: e.Prog, Vers: e.Vers, Netid: e.Netid.Lower(), Addr: e.Addr, Owner: e.Owner}
}

// readWarmStart reads rpcbind's warm-start files; what cannot be read is
// logged and what could be read is kept.
func readWarmStart(dir string, log *slog.Logger) warmstart.Saved {
	sv, err := warmstart.Read(dir)
	if err != nil {
		log.Error("cannot read rpcbind's warm-start files whole; restoring what could be read", "dir", dir, "entries", len(sv.Entries), "err", err)
	}
	if len(sv.Entries) > 0 {
		log.Info("read rpcbind's warm-start files", "dir", dir, "entries", len(sv.Entries), "written", sv.Written.Format(time.RFC3339Nano))
	}
	return sv
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
