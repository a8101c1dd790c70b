// Package tcpmux is portmapd's TCPMUX face (RFC 1078): one TCP port on
// which a client reaches any service registered by name, instead of
// having to learn its port first.
//
// A client connects and sends the service's name and CRLF. The name is
// read one byte at a time, so that nothing the client sends after it is
// taken from the service, within a length cap (a registered name's 253
// bytes) and a timeout; it is matched without regard to case. The answer
// is "-reason\r\n" and the connection is closed, or "+\r\n" and the
// service's own protocol follows, as for inetd's "+" services: portmapd
// says "+", the service begins with its first byte of its own.
//
// Only services whose registration asked for it (the tcpmux flag) are
// reachable, and how depends on what was registered:
//
//   - an AF_UNIX socket is a hand-off socket (package handoff): the
//     connection itself is passed to the process listening there, with
//     SCM_RIGHTS, once the kernel says that process is the registration's
//     user; portmapd keeps nothing of it and copies nothing;
//   - a TCP port is spliced to: portmapd connects to the port on this
//     host (loopback first, else the address the client reached; never
//     another host), checks that the socket it reached is the
//     registration's user's (lifetime.ConnOwner), root's included, so
//     that nobody can serve a port another user's registration names
//     while its service is not listening, and copies bytes both ways,
//     passing on a half-close, until both directions have ended.
//
// A name is held per user in the registry, so several users may register
// it. A connection reaches the instances of one user only: root's if root
// has registered the name for TCPMUX, otherwise those of the user whose
// TCPMUX registration of it is oldest, so that a later registration by
// another user cannot take a name's connections over. Of that user's
// instances only those passing their health checks (registry/health) are
// tried, as only those are in the DNS face's answers: a name whose
// instances all fail, or are still waiting for their first check, is
// unavailable, and HELP does not list it. The user is chosen among all
// the instances first, so another user's never stands in for a failing
// one.
//
// HELP lists only the names whose registration asked to be listed (the
// muxhelp flag, xinetd's MUXHELP), never every service (CVE-2012-0862).
// Clients are remote and learn no more than a remote viewer of /portmap:
// every refusal of a well-formed name says "-Service not available",
// whether the name is unknown, not registered for TCPMUX or unreachable,
// and nothing shows a registration's user, process, port or path.
//
// Connections are admitted through netlimit, as the other faces' are: a
// cap in total and per source, the connection waiting longest for its
// name evicted to make room, the descriptor budget shared with the rest
// of the daemon (a spliced connection is charged twice), and refusals
// logged at most once per interval.
package tcpmux
