// Package httpmap is portmapd's HTTP face: one URL, /portmap, that lists
// every service on the host by name for people (HTML) and programs (CSV,
// XML, JSON), looks names up, and lets local processes register services
// under Internet-style names for as long as they run.
//
// The listing format follows LibCXX's httportmap, so its clients keep
// working: CSV with the header service,user,pid,prog,port when no Accept
// header is sent, and its XML with an xml-stylesheet instruction for
// /portmap/portmap.xsl. Every RPC program in the registry appears under the
// reserved zone oncrpc.alt by number and, where /etc/rpc names it, by name.
//
// Registration is accepted only over the local HTTP socket, whose peer
// credentials the kernel gives: the rules (names, exclusivity, the cap) are
// the registry's; this package passes the caller it saw and ties each
// registration to its process's life through registry/lifetime, and its
// TTL to registry/health, whose refreshes PUT brings.
//
// Changes can be followed without polling: a listing with index= waits
// for the next change it would show (watch.go), and /portmap/events
// streams them as Server-Sent Events (events.go). Every view, streamed
// or not, goes through the rule of what a viewer on another host may see
// (view.go).
package httpmap
