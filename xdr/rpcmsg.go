package xdr

import (
	"errors"
	"fmt"
)

// RPCVersion is the only ONC RPC protocol version (RFC 5531).
const RPCVersion = 2

// MaxAuthBytes bounds the body of an opaque_auth (RFC 5531 §8.2).
const MaxAuthBytes = 400

// MsgType says whether a message is a call or a reply.
type MsgType uint32

// Message types.
const (
	Call  MsgType = 0
	Reply MsgType = 1
)

// ReplyStat says whether a call was accepted or denied.
type ReplyStat uint32

// Reply statuses.
const (
	MsgAccepted ReplyStat = 0
	MsgDenied   ReplyStat = 1
)

// AcceptStat is the status of an accepted call.
type AcceptStat uint32

// Accept statuses (RFC 5531 §9).
const (
	Success      AcceptStat = 0
	ProgUnavail  AcceptStat = 1
	ProgMismatch AcceptStat = 2
	ProcUnavail  AcceptStat = 3
	GarbageArgs  AcceptStat = 4
	SystemErr    AcceptStat = 5
)

func (s AcceptStat) String() string {
	return enumString(s, "accept_stat", "SUCCESS", "PROG_UNAVAIL", "PROG_MISMATCH", "PROC_UNAVAIL", "GARBAGE_ARGS", "SYSTEM_ERR")
}

// RejectStat is the reason a call was denied.
type RejectStat uint32

// Reject statuses.
const (
	RPCMismatch RejectStat = 0
	AuthError   RejectStat = 1
)

func (s RejectStat) String() string {
	return enumString(s, "reject_stat", "RPC_MISMATCH", "AUTH_ERROR")
}

// AuthStat is the reason authentication failed.
type AuthStat uint32

// Authentication statuses (RFC 5531 §9; 8 to 14 belong to RPCSEC_GSS and
// Kerberos and are carried through unnamed).
const (
	AuthOK           AuthStat = 0
	AuthBadCred      AuthStat = 1
	AuthRejectedCred AuthStat = 2
	AuthBadVerf      AuthStat = 3
	AuthRejectedVerf AuthStat = 4
	AuthTooWeak      AuthStat = 5
	AuthInvalidResp  AuthStat = 6
	AuthFailed       AuthStat = 7
)

func (s AuthStat) String() string {
	return enumString(s, "auth_stat", "AUTH_OK", "AUTH_BADCRED", "AUTH_REJECTEDCRED", "AUTH_BADVERF", "AUTH_REJECTEDVERF", "AUTH_TOOWEAK", "AUTH_INVALIDRESP", "AUTH_FAILED")
}

// enumString names v by its place in names, the names of the values from
// 0 up; a value past them is written kind(v), as in "auth_stat(13)".
func enumString[T ~uint32](v T, kind string, names ...string) string {
	if uint64(v) < uint64(len(names)) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", kind, uint32(v))
}

// AuthFlavor names an authentication scheme.
type AuthFlavor uint32

// Authentication flavours.
const (
	AuthNone  AuthFlavor = 0
	AuthSys   AuthFlavor = 1
	AuthShort AuthFlavor = 2
	AuthDH    AuthFlavor = 3
	RPCSecGSS AuthFlavor = 6
)

// An OpaqueAuth is a credential or verifier: a flavour and up to
// MaxAuthBytes of flavour-specific data.
type OpaqueAuth struct {
	Flavor AuthFlavor
	Body   []byte
}

func (d *Decoder) opaqueAuth(field string) OpaqueAuth {
	return OpaqueAuth{Flavor: AuthFlavor(d.Uint32()), Body: d.Opaque(field, MaxAuthBytes)}
}

func (e *Encoder) opaqueAuth(a OpaqueAuth) {
	e.Uint32(uint32(a.Flavor))
	e.Opaque(a.Body)
}

// Limits of an AUTH_SYS credential (RFC 5531 appendix A).
const (
	MaxMachineName = 255
	MaxGroups      = 16
)

// AuthSysParms is the body of an AUTH_SYS (AUTH_UNIX) credential.
type AuthSysParms struct {
	Stamp       uint32
	MachineName string
	UID, GID    uint32
	GIDs        []uint32
}

// ParseAuthSys decodes the body of an AUTH_SYS credential. The body must
// hold one authsys_parms; bytes after it are ignored, as libtirpc's
// _svcauth_unix ignores them (rpcbind accepts such a credential).
func ParseAuthSys(body []byte) (AuthSysParms, error) {
	d := NewDecoder(body)
	var p AuthSysParms
	p.Stamp = d.Uint32()
	p.MachineName = d.String("machinename", MaxMachineName)
	p.UID = d.Uint32()
	p.GID = d.Uint32()
	n := d.Uint32()
	if d.Err() == nil && (n > MaxGroups || int(n)*4 > d.Remaining()) {
		return AuthSysParms{}, &LengthError{Field: "gids", Length: n, Max: MaxGroups, Remaining: d.Remaining()}
	}
	if n > 0 && d.Err() == nil {
		p.GIDs = make([]uint32, n)
		for i := range p.GIDs {
			p.GIDs[i] = d.Uint32()
		}
	}
	if err := d.Err(); err != nil {
		return AuthSysParms{}, fmt.Errorf("auth_sys: %w", err)
	}
	return p, nil
}

// Encode appends p as an opaque_auth of flavour AUTH_SYS.
func (p AuthSysParms) Encode(e *Encoder) { e.opaqueAuth(p.OpaqueAuth()) }

// OpaqueAuth returns p as the credential of a call: flavour AUTH_SYS, p
// encoded as its body.
func (p AuthSysParms) OpaqueAuth() OpaqueAuth {
	var body Encoder
	body.Uint32(p.Stamp)
	body.String(p.MachineName)
	body.Uint32(p.UID)
	body.Uint32(p.GID)
	body.Uint32(uint32(len(p.GIDs)))
	for _, g := range p.GIDs {
		body.Uint32(g)
	}
	return OpaqueAuth{Flavor: AuthSys, Body: body.Bytes()}
}

// A CallHeader is the fixed part of an RPC call message.
type CallHeader struct {
	XID     uint32
	RPCVers uint32
	Prog    uint32
	Vers    uint32
	Proc    uint32
	Cred    OpaqueAuth
	Verf    OpaqueAuth
}

// Errors of DecodeCall. They say how much of the header could be trusted,
// which decides the answer: nothing at all, or a reply to the XID.
var (
	// ErrNotCall reports a message that is not a call, or too short to
	// carry an XID and a message type: there is nobody to answer.
	ErrNotCall = errors.New("rpc: not a call message")
	// ErrBadHeader reports a call whose header is malformed after the
	// message type (truncated, or an opaque_auth body over 400 bytes).
	ErrBadHeader = errors.New("rpc: malformed call header")
)

// A CallError is returned by DecodeCall when the XID was readable, so the
// server can still address a reply.
type CallError struct {
	XID uint32
	Err error
}

func (e *CallError) Error() string { return fmt.Sprintf("rpc: call xid %#x: %v", e.XID, e.Err) }
func (e *CallError) Unwrap() error { return e.Err }

// DecodeCall decodes a call message and returns its header and the
// procedure arguments, which alias msg. A header whose rpcvers is not 2 is
// returned without error: choosing to answer RPC_MISMATCH is the server's.
func DecodeCall(msg []byte) (CallHeader, []byte, error) {
	var d Decoder
	d.Reset(msg)
	var h CallHeader
	h.XID = d.Uint32()
	mtype := MsgType(d.Uint32())
	if d.Err() != nil || mtype != Call {
		return h, nil, ErrNotCall
	}
	h.RPCVers = d.Uint32()
	h.Prog = d.Uint32()
	h.Vers = d.Uint32()
	h.Proc = d.Uint32()
	h.Cred = d.opaqueAuth("credential")
	h.Verf = d.opaqueAuth("verifier")
	if err := d.Err(); err != nil {
		return h, nil, &CallError{XID: h.XID, Err: fmt.Errorf("%w: %w", ErrBadHeader, err)}
	}
	return h, d.Rest(), nil
}

// Encode appends the call header h.
func (h *CallHeader) Encode(e *Encoder) {
	e.Uint32(h.XID)
	e.Uint32(uint32(Call))
	e.Uint32(h.RPCVers)
	e.Uint32(h.Prog)
	e.Uint32(h.Vers)
	e.Uint32(h.Proc)
	e.opaqueAuth(h.Cred)
	e.opaqueAuth(h.Verf)
}

// A Mismatch carries the lowest and highest versions a server supports,
// for PROG_MISMATCH and RPC_MISMATCH.
type Mismatch struct {
	Low, High uint32
}

// A ReplyHeader is an RPC reply up to its results: the reply_body union
// flattened, with only the fields of the chosen arm meaningful.
type ReplyHeader struct {
	XID    uint32
	Stat   ReplyStat
	Verf   OpaqueAuth // MsgAccepted
	Accept AcceptStat // MsgAccepted
	Reject RejectStat // MsgDenied
	// Mismatch is set for ProgMismatch and RPCMismatch.
	Mismatch Mismatch
	// Auth is set for AuthError.
	Auth AuthStat
}

// Accepted returns the header of an accepted reply with an AUTH_NONE
// verifier.
func Accepted(xid uint32, stat AcceptStat) ReplyHeader {
	return ReplyHeader{XID: xid, Stat: MsgAccepted, Accept: stat}
}

// Denied returns the header of a reply that denies a call for an
// authentication reason.
func Denied(xid uint32, why AuthStat) ReplyHeader {
	return ReplyHeader{XID: xid, Stat: MsgDenied, Reject: AuthError, Auth: why}
}

// Encode appends the reply header. Results, for SUCCESS, follow it.
func (h *ReplyHeader) Encode(e *Encoder) {
	e.Uint32(h.XID)
	e.Uint32(uint32(Reply))
	e.Uint32(uint32(h.Stat))
	if h.Stat == MsgAccepted {
		e.opaqueAuth(h.Verf)
		e.Uint32(uint32(h.Accept))
		if h.Accept == ProgMismatch {
			e.Uint32(h.Mismatch.Low)
			e.Uint32(h.Mismatch.High)
		}
		return
	}
	e.Uint32(uint32(h.Reject))
	if h.Reject == RPCMismatch {
		e.Uint32(h.Mismatch.Low)
		e.Uint32(h.Mismatch.High)
	} else {
		e.Uint32(uint32(h.Auth))
	}
}

// A ReplyError is a reply that carries no results, as an error a client can
// inspect with errors.As.
type ReplyError struct {
	Header ReplyHeader
}

func (e *ReplyError) Error() string {
	h := e.Header
	if h.Stat == MsgAccepted {
		if h.Accept == ProgMismatch {
			return fmt.Sprintf("rpc: %v (low %d, high %d)", h.Accept, h.Mismatch.Low, h.Mismatch.High)
		}
		return "rpc: " + h.Accept.String()
	}
	if h.Reject == RPCMismatch {
		return fmt.Sprintf("rpc: %v (low %d, high %d)", h.Reject, h.Mismatch.Low, h.Mismatch.High)
	}
	return fmt.Sprintf("rpc: %v: %v", h.Reject, h.Auth)
}

// DecodeReply decodes a reply message. It returns the results, aliasing
// msg, only for an accepted SUCCESS; any other reply is a *ReplyError.
func DecodeReply(msg []byte) (ReplyHeader, []byte, error) {
	d := NewDecoder(msg)
	h, err := DecodeReplyHeader(d)
	if err != nil {
		return h, nil, err
	}
	return h, d.Rest(), nil
}

// MaxReplyHeader is the longest reply header: an accepted reply with the
// largest verifier and a version mismatch.
const MaxReplyHeader = 4*3 + 4*2 + MaxAuthBytes + 4 + 4*2

// DecodeReplyHeader decodes a reply's header from d, leaving d at the
// results. The results follow only an accepted SUCCESS; any other reply is
// a *ReplyError.
func DecodeReplyHeader(d *Decoder) (ReplyHeader, error) {
	var h ReplyHeader
	h.XID = d.Uint32()
	if MsgType(d.Uint32()) != Reply && d.Err() == nil {
		return h, errors.New("rpc: not a reply message")
	}
	h.Stat = ReplyStat(d.Uint32())
	switch h.Stat {
	case MsgAccepted:
		h.Verf = d.opaqueAuth("verifier")
		h.Accept = AcceptStat(d.Uint32())
		if h.Accept == ProgMismatch {
			h.Mismatch = Mismatch{Low: d.Uint32(), High: d.Uint32()}
		}
	case MsgDenied:
		h.Reject = RejectStat(d.Uint32())
		switch h.Reject {
		case RPCMismatch:
			h.Mismatch = Mismatch{Low: d.Uint32(), High: d.Uint32()}
		case AuthError:
			h.Auth = AuthStat(d.Uint32())
		default:
			return h, fmt.Errorf("rpc: unknown reject_stat %d", h.Reject)
		}
	default:
		if d.Err() == nil {
			return h, fmt.Errorf("rpc: unknown reply_stat %d", h.Stat)
		}
	}
	if err := d.Err(); err != nil {
		return h, fmt.Errorf("rpc: reply xid %#x: %w", h.XID, err)
	}
	if h.Stat != MsgAccepted || h.Accept != Success {
		return h, &ReplyError{Header: h}
	}
	return h, nil
}
