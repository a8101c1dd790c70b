package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os/user"
	"strconv"
	"syscall"

	"github.com/portmapd/portmapd/internal/safefile"
	"github.com/portmapd/portmapd/registry/warmstart"
)

// DefaultRunAs returns the user -s becomes when --user does not say: the
// one rpcbind runs as on this host (_rpc on Debian, rpc on Fedora), who
// owns rpcbind's state directory, so that warm-start files pass between
// the two; "daemon", rpcbind -s's user, where there is neither.
func DefaultRunAs() string {
	if name, _, _, ok := warmstart.RPCUser(); ok {
		return name
	}
	return "daemon"
}

// A runAs is the user the daemon becomes once everything that needs root
// is open (rpcbind -s).
type runAs struct {
	name     string
	uid, gid int
}

// lookupUser finds the user named name.
func lookupUser(name string) (runAs, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return runAs{}, fmt.Errorf("daemon: cannot get uid of '%s': %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return runAs{}, fmt.Errorf("daemon: user %s has non-numeric ids %s:%s", name, u.Uid, u.Gid)
	}
	return runAs{name: name, uid: uid, gid: gid}, nil
}

// become makes the process u, as rpcbind -s does: its primary group, no
// supplementary groups (root's would otherwise stay), then its uid. A
// setuid from root to another uid that changes every uid also empties
// the capability sets, so nothing of root is left but the descriptors
// already open. Go applies set*id to every thread of the process.
func (u runAs) become() error {
	if err := syscall.Setgid(u.gid); err != nil {
		return fmt.Errorf("daemon: setgid to '%s' (%d): %w", u.name, u.gid, err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("daemon: dropping supplementary groups: %w", err)
	}
	if err := syscall.Setuid(u.uid); err != nil {
		return fmt.Errorf("daemon: setuid to '%s' (%d): %w", u.name, u.uid, err)
	}
	return nil
}

// handOverStateDir makes the state directory path, and the state files in
// it, the property of uid:gid, the user the daemon is about to run as, so
// that the journal goes on working after the drop, and a switch between
// runs with and without -s keeps the saved registrations. A missing
// directory is created (0700).
//
// Only what is already the daemon's changes hands: a directory owned by
// root, by uid or by from (the user of an earlier run), and in it the
// regular files with one link owned by root or by the directory's owner
// (see safefile.Dir.ChownFile). A directory of another user is left as it
// is, for the journal to say so.
func handOverStateDir(path string, from, uid, gid int) error {
	if err := safefile.MkdirAll(path, 0o700, true, uid, gid); err != nil {
		return fmt.Errorf("daemon: state directory: %w", err)
	}
	d, err := safefile.OpenDir(path, safefile.Policy{Owners: []uint32{uint32(uid), uint32(from)}})
	var untrusted *safefile.UntrustedError
	if errors.As(err, &untrusted) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon: state directory: %w", err)
	}
	defer d.Close()
	names, err := d.Names()
	if err != nil {
		return fmt.Errorf("daemon: state directory: %w", err)
	}
	for _, name := range names {
		if _, err := d.ChownFile(name, uid, gid); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("daemon: state directory: %w", err)
		}
	}
	if err := d.Chown(uid, gid); err != nil {
		return fmt.Errorf("daemon: state directory: %w", err)
	}
	return nil
}

// prepareWarmStartDir creates rpcbind's state directory for u, as rpcbind
// creates it for its user (mode 0770), when it does not exist: after the
// drop, the daemon could not create it in /run to write the warm-start
// files on exit.
func prepareWarmStartDir(path string, u runAs) error {
	if err := safefile.MkdirAll(path, 0o770, true, u.uid, u.gid); err != nil {
		return fmt.Errorf("daemon: warm-start directory: %w", err)
	}
	return nil
}
