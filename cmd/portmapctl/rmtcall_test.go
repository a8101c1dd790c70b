package main

import (
	"fmt"
	"testing"
)

// TestCall: portmapctl call makes each kind of remote call through a
// portmapper that forwards them, to the portmapper itself, and reports
// failures as rpcinfo reports a failed call.
func TestCall(t *testing.T) {
	s := startServer(t, serverOptions{forward: true})
	setState(t, s, "registered", true)
	// The portmapper's own entries point at the test server, whose
	// universal address the answers carry.
	uaddr := fmt.Sprintf("127.0.0.1.%d.%d", s.Port>>8, s.Port&0xff)
	tests := []struct {
		name string
		args []string
		want result
	}{
		{"v3 CALLIT of NULL", []string{"call", "127.0.0.1", "100000", "4", "0"},
			result{Stdout: "address " + uaddr + "\nresults \n"}},
		{"v2 CALLIT by name", []string{"call", "--version", "2", "127.0.0.1", "rpcbind", "4", "0"},
			result{Stdout: fmt.Sprintf("port %d\nresults \n", s.Port)}},
		{"v4 BCAST of NULL", []string{"call", "--version", "4", "127.0.0.1", "100000", "3", "0"},
			result{Stdout: "address " + uaddr + "\nresults \n"}},
		{"INDIRECT with arguments", []string{"call", "--indirect", "127.0.0.1", "100000", "4", "0", "0000002a"},
			result{Stdout: "address " + uaddr + "\nresults \n"}},
		{"INDIRECT to a service that fails", []string{"call", "--indirect", "127.0.0.1", "200002", "1", "0"},
			result{Stderr: "portmapctl: RPC: Remote system error\n", Exit: 1}},
		{"INDIRECT to a program not registered", []string{"call", "--indirect", "127.0.0.1", "200001", "1", "0"},
			result{Stderr: "portmapctl: RPC: Program unavailable\n", Exit: 1}},
		{"INDIRECT to a version not registered", []string{"call", "--indirect", "127.0.0.1", "200002", "7", "0"},
			result{Stderr: "portmapctl: RPC: Program/version mismatch; low version = 1, high version = 1\n", Exit: 1}},
		{"INDIRECT to a procedure that is refused", []string{"call", "--indirect", "127.0.0.1", "100000", "2", "1"},
			result{Stderr: "portmapctl: RPC: Authentication error; why = Client credential too weak\n", Exit: 1}},
		{"CALLIT to a program not registered", []string{"call", "127.0.0.1", "200001", "1", "0"},
			result{Stderr: "portmapctl: RPC: Timed out\n", Exit: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			full := append([]string{"--rpc-file", rpcFile, "--timeout", "2s", "--server", s.Addr()}, tc.args...)
			got := runCtl(t, full...)
			if got != tc.want {
				t.Errorf("portmapctl %v:\n got %+v\nwant %+v", tc.args, got, tc.want)
			}
		})
	}
}
