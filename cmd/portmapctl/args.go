package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/netid"
)

// An argError is a bad argument, reported with rpcinfo's wording.
type argError struct{ msg string }

func (e *argError) Error() string { return e.msg }

// positional checks a command's positional arguments by name: the
// required ones, then optional ones written "[NAME]". Too few names the
// missing ones, too many shows the extra ones, both with the usage line:
// "getport: missing VERS and PROTO; usage: portmapctl getport HOST PROG
// VERS tcp|udp".
func positional(names ...string) cobra.PositionalArgs {
	required := 0
	for _, n := range names {
		if !strings.HasPrefix(n, "[") {
			required++
		}
	}
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < required:
			return usageError(cmd, "missing "+andList(names[len(args):required]))
		case len(args) > len(names):
			return usageError(cmd, unexpected(args[len(names):]))
		}
		return nil
	}
}

// usageError reports a misuse of cmd, with its usage line.
func usageError(cmd *cobra.Command, what string) error {
	return &argError{fmt.Sprintf("%s: %s; usage: %s %s", cmd.Name(), what, cmd.Root().Name(), cmd.Use)}
}

// unexpected describes extra arguments.
func unexpected(extra []string) string {
	q := make([]string, len(extra))
	for i, a := range extra {
		q[i] = strconv.Quote(a)
	}
	if len(extra) == 1 {
		return "unexpected argument " + q[0]
	}
	return "unexpected arguments " + strings.Join(q, " ")
}

// andList joins names as "A", "A and B", "A, B and C".
func andList(names []string) string {
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// parseProgVers reads a program and a version argument, in that order of
// checking, as rpcinfo does.
func (g *globals) parseProgVers(progArg, versArg string) (prog, vers uint32, err error) {
	if prog, err = g.parseProg(progArg); err != nil {
		return 0, 0, err
	}
	if vers, err = parseVers(versArg); err != nil {
		return 0, 0, err
	}
	return prog, vers, nil
}

// parseProg is rpcinfo's getprognum: a decimal number, or else a name or
// alias from the RPC program database.
func (g *globals) parseProg(arg string) (uint32, error) {
	if isDigits(arg) {
		n, err := strconv.ParseUint(arg, 10, 32)
		if err != nil {
			return 0, &argError{arg + " is illegal program number"}
		}
		return uint32(n), nil
	}
	t, err := g.programs()
	if err != nil {
		return 0, err
	}
	e, ok := t.ByName(arg)
	if !ok {
		return 0, &argError{arg + " is unknown service"}
	}
	return e.Number, nil
}

// parseVers is rpcinfo's getvers: a decimal number.
func parseVers(arg string) (uint32, error) {
	n, err := strconv.ParseUint(arg, 10, 32)
	if err != nil {
		return 0, &argError{arg + " is illegal version number"}
	}
	return uint32(n), nil
}

// parsePort reads a port number for a v2 mapping.
func parsePort(arg string) (uint32, error) {
	n, err := strconv.ParseUint(arg, 10, 16)
	if err != nil {
		return 0, &argError{arg + " is illegal port number"}
	}
	return uint32(n), nil
}

// parseProto reads the protocol of a v2 mapping, its netid in any case.
func parseProto(arg string) (uint32, error) {
	if prot, ok := netid.ID(arg).Proto(); ok {
		return prot, nil
	}
	return 0, &argError{fmt.Sprintf("%s is not a protocol (tcp or udp)", arg)}
}

// protoName is the netid of a v2 protocol, or its number.
func protoName(prot uint32) string {
	if id, ok := netid.FromProto(prot); ok {
		return string(id)
	}
	return strconv.FormatUint(uint64(prot), 10)
}
