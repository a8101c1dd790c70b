// Package lifetime decides how long a registration lives.
//
// Named services live as long as the process that registered them. A
// Handle is a pidfd with the process's identity read from /proc; a Watcher
// calls a function once, as soon as the process exits, using one epoll set
// for the pidfds of the processes it watches, and past a budget of
// descriptors by polling /proc for their pid and start time.
//
// Reading /proc alone cannot tell a process from a later one that reuses
// its pid. A pidfd can: it refers to one process for as long as it is
// open. So Open takes the pidfd first, then reads /proc, then checks
// through the pidfd that the process is still alive: if it is, what /proc
// said was about that process.
//
// RPC registrations carry no pidfd. A Pruner removes those whose service
// is gone: once per check it reads the kernel's socket table of the
// daemon's network namespace and, for each registration old enough, asks
// whether the process that registered it is still running, and if not,
// whether anything is still bound to its port.
package lifetime
