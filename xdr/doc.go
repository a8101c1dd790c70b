// Package xdr is the ONC RPC wire layer of portmapd: XDR primitives with
// bounded decoding, RPC call and reply messages (RFC 5531), TCP record
// marking, and the portmapper's own argument and result types (RFC 1833).
//
// The package knows nothing about state or procedures. Decoding is defensive:
// every length read from the wire is checked against the bytes actually
// present and against the bound the specification gives before anything is
// allocated, so a peer cannot make the decoder allocate more than the message
// it sent.
package xdr
