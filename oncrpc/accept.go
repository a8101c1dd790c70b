package oncrpc

import "github.com/portmapd/portmapd/xdr"

// An AcceptFunc authenticates a call before it is dispatched, as libtirpc's
// _authenticate does: it returns the verifier that the call's accepted
// replies carry, and xdr.AuthOK to dispatch the call, or the auth_stat the
// Server denies it with (MSG_DENIED AUTH_ERROR), without running the
// Handler. It may note what it learnt in c, as DefaultAccept sets
// c.AuthSys. It sees only calls of RPC version 2: the Server answers the
// others RPC_MISMATCH itself.
//
// It is the Server's hook for what miekg/dns's MsgAcceptFunc decides for
// a DNS server: a program with its own rules wraps DefaultAccept or
// replaces it.
type AcceptFunc func(c *Call) (verf xdr.OpaqueAuth, why xdr.AuthStat)

// RPCSEC_GSS answers of a server without GSS contexts: libtirpc's, for a
// credential that parses.
const (
	gssProcInit         = 1
	gssProcContinueInit = 2
	gssCredProblem      = xdr.AuthStat(13) // RPCSEC_GSS_CREDPROBLEM
)

// DefaultAccept checks the call's credential as libtirpc does in a server
// without GSS or DES keys, such as rpcbind: AUTH_NONE and AUTH_SYS are
// accepted, an AUTH_SYS credential must parse (it is left in c.AuthSys)
// and its call's verifier is handed back in the replies, and other
// flavours get the refusals rpcbind gives: AUTH_FAILED for AUTH_DH, for
// RPCSEC_GSS AUTH_BADCRED, AUTH_FAILED or RPCSEC_GSS_CREDPROBLEM as its
// credential reads, and AUTH_REJECTEDCRED for any other flavour.
func DefaultAccept(c *Call) (xdr.OpaqueAuth, xdr.AuthStat) {
	switch c.Cred.Flavor {
	case xdr.AuthNone:
		return xdr.OpaqueAuth{}, xdr.AuthOK
	case xdr.AuthSys:
		p, err := xdr.ParseAuthSys(c.Cred.Body)
		if err != nil {
			return xdr.OpaqueAuth{}, xdr.AuthBadCred
		}
		c.AuthSys = &p
		if len(c.Verf.Body) > 0 {
			// libtirpc's AUTH_SYS hands the call's verifier back.
			return c.Verf, xdr.AuthOK
		}
		return xdr.OpaqueAuth{}, xdr.AuthOK
	case xdr.AuthDH:
		return xdr.OpaqueAuth{}, xdr.AuthFailed
	case xdr.RPCSecGSS:
		return xdr.OpaqueAuth{}, refuseGSS(c.Cred.Body)
	}
	return xdr.OpaqueAuth{}, xdr.AuthRejectedCred
}

// refuseGSS is libtirpc's answer to an RPCSEC_GSS credential in a server
// that holds no GSS context.
func refuseGSS(body []byte) xdr.AuthStat {
	d := xdr.NewDecoder(body)
	version, proc := d.Uint32(), d.Uint32()
	d.Uint32() // seq_num
	d.Uint32() // service
	d.Opaque("gss handle", xdr.MaxAuthBytes)
	if d.Err() != nil || version != 1 {
		return xdr.AuthBadCred
	}
	if proc == gssProcInit || proc == gssProcContinueInit {
		return xdr.AuthFailed
	}
	return gssCredProblem
}
