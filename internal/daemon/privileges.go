package daemon

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// dropPrivileges becomes the named user, as rpcbind -s becomes "daemon",
// once the privileged port is bound: a flaw in request handling then no
// longer runs as root. Go applies set*id to every thread of the process.
func dropPrivileges(name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("daemon: cannot get uid of '%s': %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("daemon: user %s has non-numeric ids %s:%s", name, u.Uid, u.Gid)
	}
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fmt.Errorf("daemon: setgroups for %s: %w", name, err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("daemon: setgid to '%s' (%d): %w", name, gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("daemon: setuid to '%s' (%d): %w", name, uid, err)
	}
	return nil
}
