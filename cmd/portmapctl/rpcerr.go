package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/portmapd/portmapd/xdr"
)

// clntStat is libtirpc's enum clnt_stat: what rpcinfo's messages are made
// of. portmapctl maps the errors of the rpcbind client onto it so that it
// can print what rpcinfo prints.
type clntStat int

const (
	rpcSuccess clntStat = iota
	rpcCantEncodeArgs
	rpcCantDecodeRes
	rpcCantSend
	rpcCantRecv
	rpcTimedOut
	rpcVersMismatch
	rpcAuthError
	rpcProgUnavail
	rpcProgVersMismatch
	rpcProcUnavail
	rpcCantDecodeArgs
	rpcSystemError
	rpcUnknownHost
	rpcPmapFailure
	rpcProgNotRegistered
	rpcFailed
	rpcUnknownProto
)

var clntStatText = [...]string{
	"RPC: Success",
	"RPC: Can't encode arguments",
	"RPC: Can't decode result",
	"RPC: Unable to send",
	"RPC: Unable to receive",
	"RPC: Timed out",
	"RPC: Incompatible versions of RPC",
	"RPC: Authentication error",
	"RPC: Program unavailable",
	"RPC: Program/version mismatch",
	"RPC: Procedure unavailable",
	"RPC: Server can't decode arguments",
	"RPC: Remote system error",
	"RPC: Unknown host",
	"RPC: Port mapper failure",
	"RPC: Program not registered",
	"RPC: Failed (unspecified error)",
	"RPC: Unknown protocol",
}

func (s clntStat) String() string {
	if s >= 0 && int(s) < len(clntStatText) {
		return clntStatText[s]
	}
	return "RPC: (unknown error code)"
}

var authStatText = [...]string{
	"Authentication OK",
	"Invalid client credential",
	"Server rejected credential",
	"Invalid client verifier",
	"Server rejected verifier",
	"Client credential too weak",
	"Invalid server verifier",
	"Failed (unspecified error)",
}

// An rpcStatus is libtirpc's struct rpc_err: a status and its detail.
type rpcStatus struct {
	Stat  clntStat
	Errno syscall.Errno // rpcCantSend, rpcCantRecv, rpcSystemError
	Vers  xdr.Mismatch  // rpcProgVersMismatch, rpcVersMismatch
	Why   xdr.AuthStat  // rpcAuthError
	// Sub is the status under rpcPmapFailure.
	Sub clntStat
	// Detail is a Go error with no libtirpc equivalent (rpcFailed only).
	Detail error
}

// statusOf classifies an error returned by the rpcbind client, or by
// dialing it.
func statusOf(err error) rpcStatus {
	if err == nil {
		return rpcStatus{Stat: rpcSuccess}
	}
	var re *xdr.ReplyError
	if errors.As(err, &re) {
		return replyStatus(re.Header)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return rpcStatus{Stat: rpcUnknownHost}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return rpcStatus{Stat: rpcTimedOut}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return rpcStatus{Stat: rpcTimedOut}
	}
	var errno syscall.Errno
	hasErrno := errors.As(err, &errno)
	var op *net.OpError
	if errors.As(err, &op) {
		switch op.Op {
		case "dial":
			if hasErrno {
				return rpcStatus{Stat: rpcSystemError, Errno: errno}
			}
			return rpcStatus{Stat: rpcUnknownHost}
		case "write":
			return rpcStatus{Stat: rpcCantSend, Errno: errno}
		case "read":
			return rpcStatus{Stat: rpcCantRecv, Errno: errno}
		}
	}
	var tooLarge *xdr.RecordTooLargeError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &tooLarge):
		return rpcStatus{Stat: rpcCantRecv}
	case errors.Is(err, xdr.ErrTruncated), errors.Is(err, xdr.ErrTrailingData):
		return rpcStatus{Stat: rpcCantDecodeRes}
	}
	var lenErr *xdr.LengthError
	if errors.As(err, &lenErr) {
		return rpcStatus{Stat: rpcCantDecodeRes}
	}
	return rpcStatus{Stat: rpcFailed, Detail: err}
}

// replyStatus is libtirpc's _seterr_reply.
func replyStatus(h xdr.ReplyHeader) rpcStatus {
	if h.Stat == xdr.MsgAccepted {
		switch h.Accept {
		case xdr.Success:
			return rpcStatus{Stat: rpcSuccess}
		case xdr.ProgUnavail:
			return rpcStatus{Stat: rpcProgUnavail}
		case xdr.ProgMismatch:
			return rpcStatus{Stat: rpcProgVersMismatch, Vers: h.Mismatch}
		case xdr.ProcUnavail:
			return rpcStatus{Stat: rpcProcUnavail}
		case xdr.GarbageArgs:
			return rpcStatus{Stat: rpcCantDecodeArgs}
		case xdr.SystemErr:
			return rpcStatus{Stat: rpcSystemError}
		}
		return rpcStatus{Stat: rpcFailed, Detail: fmt.Errorf("accept status %d", uint32(h.Accept))}
	}
	if h.Reject == xdr.RPCMismatch {
		return rpcStatus{Stat: rpcVersMismatch, Vers: h.Mismatch}
	}
	return rpcStatus{Stat: rpcAuthError, Why: h.Auth}
}

// strerror is glibc's text for errno: Go's text with a capital letter,
// which is what Go's table is made from.
func strerror(e syscall.Errno) string {
	s := e.Error()
	if s != "" && 'a' <= s[0] && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// callError is libtirpc's clnt_sperror(client, prefix): how rpcinfo reports
// a call that was made and failed.
func (st rpcStatus) callError(prefix string) string {
	s := prefix + ": " + st.Stat.String()
	switch st.Stat {
	case rpcCantSend, rpcCantRecv:
		if st.Errno != 0 {
			s += "; errno = " + strerror(st.Errno)
		}
	case rpcVersMismatch, rpcProgVersMismatch:
		s += fmt.Sprintf("; low version = %d, high version = %d", st.Vers.Low, st.Vers.High)
	case rpcAuthError:
		why := fmt.Sprintf("(unknown authentication error - %d)", int32(st.Why))
		if int(st.Why) < len(authStatText) {
			why = authStatText[st.Why]
		}
		s += "; why = " + why
	case rpcFailed:
		if st.Detail != nil {
			s += " (" + st.Detail.Error() + ")"
		}
	}
	return s
}

// createError is libtirpc's clnt_spcreateerror(prefix): how rpcinfo
// reports a failure to find or reach a service before calling it.
func (st rpcStatus) createError(prefix string) string {
	s := prefix + ": " + st.Stat.String()
	switch st.Stat {
	case rpcPmapFailure:
		s += " - " + st.Sub.String()[len("RPC: "):]
	case rpcSystemError:
		if st.Errno != 0 {
			s += " - " + strerror(st.Errno)
		}
	case rpcFailed:
		if st.Detail != nil {
			s += " (" + st.Detail.Error() + ")"
		}
	}
	return s
}

// lookupStatus is the status of a failed address lookup at the
// portmapper: what libtirpc's rpcb_getaddr leaves in rpc_createerr. A
// portmapper that refuses the lookup itself is a port mapper failure; a
// transport failure is reported as itself.
func lookupStatus(err error) rpcStatus {
	st := statusOf(err)
	switch st.Stat {
	case rpcProgUnavail, rpcProgVersMismatch, rpcProcUnavail, rpcCantDecodeArgs,
		rpcAuthError, rpcVersMismatch, rpcCantDecodeRes:
		return rpcStatus{Stat: rpcPmapFailure, Sub: st.Stat}
	}
	return st
}

// notReached explains a failure to reach any portmapper, for the commands
// whose messages are not rpcinfo's (getport, set, unset): that none runs,
// or answers, where the command looked, and which flags look elsewhere.
// It is "" for any other failure, a portmapper's refusal included.
func (st rpcStatus) notReached(where, flags string) string {
	switch {
	case st.Stat == rpcTimedOut:
		return fmt.Sprintf("portmapctl: no portmapper answered at %s in time (--timeout); %s", where, flags)
	case st.Stat != rpcSystemError && st.Stat != rpcCantSend && st.Stat != rpcCantRecv:
		return ""
	case st.Errno == syscall.ECONNREFUSED, st.Errno == syscall.ENOENT:
		return fmt.Sprintf("portmapctl: no portmapper (portmapd or rpcbind) is running at %s; %s", where, flags)
	case st.Errno == syscall.EACCES, st.Errno == syscall.EPERM:
		return fmt.Sprintf("portmapctl: permission denied at %s; %s", where, flags)
	}
	return ""
}

// interrupted returns the context's error when the command was cancelled
// (by a signal), so that it is not reported as an RPC failure.
func interrupted(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return nil
}

// reportFailure ends a command whose call failed: with the interruption
// when a signal ended it (not the portmapper), else by printing on
// standard error each of lines that is not empty, as rpcinfo does, and
// failing.
func reportFailure(cmd *cobra.Command, lines ...string) error {
	if e := interrupted(cmd.Context()); e != nil {
		return e
	}
	for _, l := range lines {
		if l != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), l)
		}
	}
	return failed
}
