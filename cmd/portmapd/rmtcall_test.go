package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portmapd/portmapd/rpcbind"
)

// TestDenyPrograms: --rmtcall-deny takes decimal numbers and the names
// and aliases of the RPC program database, resolved when the flag is
// read; "none" or an empty value leaves rpcbind's list alone, and a value
// that names no program is an error that says which.
func TestDenyPrograms(t *testing.T) {
	rpcFile := filepath.Join(t.TempDir(), "rpc")
	db := "keyserv\t100029\tkeyserver\nautofs\t100099\n# a comment\nrstatd\t100001\trstat rup perfmeter\n"
	if err := os.WriteFile(rpcFile, []byte(db), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "no-such-rpc")
	tests := []struct {
		name    string
		values  []string
		rpcFile string
		want    []uint32
		wantErr string // a part of the error, "" for none
	}{
		{"the default", programNumbers(rpcbind.DefaultForwardDeny()), missing, rpcbind.DefaultForwardDeny(), ""},
		{"numbers", []string{"100029", " 200000 ", "0", "4294967295"}, missing, []uint32{100029, 200000, 0, 4294967295}, ""},
		{"names", []string{"keyserv", "autofs"}, rpcFile, []uint32{100029, 100099}, ""},
		{"an alias", []string{"rup"}, rpcFile, []uint32{100001}, ""},
		{"names and numbers", []string{"100005", "keyserver"}, rpcFile, []uint32{100005, 100029}, ""},
		{"none", []string{"none"}, missing, nil, ""},
		{"empty", []string{}, missing, nil, ""},
		{"an empty value among others", []string{"100029", ""}, missing, []uint32{100029}, ""},
		{"none with a program", []string{"none", "100029"}, rpcFile, nil, "--rmtcall-deny none: cannot be given with other values"},
		{"an unknown name", []string{"keyserv", "nosuchprog"}, rpcFile, nil, `--rmtcall-deny "nosuchprog": neither a program number nor a program named in ` + rpcFile},
		{"a name without a database", []string{"keyserv"}, missing, nil, `--rmtcall-deny "keyserv": neither a program number nor a program named in ` + missing},
		{"names are exact", []string{"KEYSERV"}, rpcFile, nil, `"KEYSERV": neither`},
		{"a number too large", []string{"4294967296"}, rpcFile, nil, "--rmtcall-deny 4294967296: not a program number (at most 4294967295)"},
		{"a negative number", []string{"-1"}, rpcFile, nil, `--rmtcall-deny "-1": neither a program number`},
		{"a hexadecimal number", []string{"0x186a5"}, rpcFile, nil, `--rmtcall-deny "0x186a5": neither a program number`},
		{"a database that cannot be read", []string{"keyserv"}, t.TempDir(), nil, "--rmtcall-deny keyserv: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := denyPrograms(tc.values, tc.rpcFile)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v, want %v", err, tc.want)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("got %v, %v; want an error with %q", got, err, tc.wantErr)
			case !slices.Equal(got, tc.want):
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
