// Package conformance is portmapd's conformance suite against Debian's
// rpcbind. It has no code outside its tests: `go test` (or `make test`, as
// root) starts portmapd in private network and mount namespaces, drives it
// with rpcinfo, rpc.statd, a libtirpc program and raw packets recorded from
// rpcbind, and compares. See sandbox_test.go.
package conformance
