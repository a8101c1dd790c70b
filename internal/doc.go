// Package internal holds what has no other home among portmapd's packages:
// the parts that belong to this daemon alone and are of no use to a program
// importing portmapd's packages.
//
//   - daemon: the daemon's assembly, which opens the sockets, gives up
//     root, wires the registry to both faces and starts and stops them.
//   - safefile: files and sockets in directories another user may write,
//     made without following links (openat, O_NOFOLLOW, fchown on the
//     descriptor).
//   - systemd: socket activation and readiness notification.
//   - rpcent: /etc/rpc, the names of RPC programs.
//   - lifecycle: the Run and Close of the long-running parts (the health
//     checker, the lifetime keeper): one Run at a time, Close waits.
//   - migrate: the switch of a host from rpcbind to portmapd and back
//     without losing a registration.
//   - metrics: the Prometheus counters, the one importer of client_golang.
//   - buildinfo: which build is running (version and toolchain).
//   - cli and clidoc: the main function the commands share (signals, exit
//     status), and their man pages and shell completions.
//   - syncio: writers that goroutines may share.
//   - conformance, netns and etcdtest: the conformance suite against
//     Debian's rpcbind, the throwaway hosts (network namespaces with their
//     own /run) that the end-to-end tests run in, and a real etcd for the
//     fleet's tests.
//
// A behaviour that has a home in the layout belongs there instead: the wire
// in xdr, addresses in netid, callers in peer, limits in netlimit, the RPC
// framework in oncrpc, the table and its lifetime in registry, the faces in
// rpcbind and httpmap, flags in cmd.
package internal
