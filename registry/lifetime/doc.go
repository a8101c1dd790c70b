// Package lifetime decides how long a registration lives, and ends it
// when its service is gone. A Keeper does all of it: New opens what it
// needs and starts nothing, Run works until its context ends, Close
// releases everything. The faces and the daemon use it and nothing else of
// this package's insides:
//
//   - httpmap hands it the registering process's pidfd (Open, FromPidfd)
//     and registers through it (Register, Deregistered);
//   - the daemon restores the saved state through it (Restore), runs it
//     while serving and closes it on the way out.
//
// Named services live as long as the process that registered them. A
// Handle is a pidfd with the process's identity read from /proc; the
// Keeper's watcher calls a function once, as soon as the process exits,
// using one epoll set for the pidfds of the processes it watches, and past
// a budget of descriptors (Config.MaxPidfds) by polling /proc for their
// pid and start time.
//
// Reading /proc alone cannot tell a process from a later one that reuses
// its pid. A pidfd can: it refers to one process for as long as it is
// open. So Open takes the pidfd first, then reads /proc, then checks
// through the pidfd that the process is still alive: if it is, what /proc
// said was about that process. At a restart, Restore brings back only the
// named services whose process runs with the start time and executable
// they were saved with, and watches those from then on.
//
// RPC registrations carry no pidfd. The Keeper's pruner removes those
// whose service is gone: once per check it reads the kernel's socket table
// of the daemon's network namespace and, for each registration old
// enough, asks whether the process that registered it is still running,
// and if not, whether anything is still bound to its port.
//
// Each piece of /proc is read in one place: proc.go reads a process
// (stat, status, exe, ns/net) and the boot time, sockets.go the socket
// table's text. The socket table's readers (sockets.go, and
// sockdiag_linux.go, which asks the kernel through netlink and falls back
// on the text) are files of this package rather than a package of their
// own: the pruner is their only user, and what they answer, whether a
// port is still bound, is a question about a registration's life.
package lifetime
