/*
 * doubler.h: the RPC service both test programs register. Procedure 0 is
 * the null procedure; procedure 1 returns its unsigned argument doubled;
 * any other is PROC_UNAVAIL.
 */
static void dispatch(struct svc_req *rq, SVCXPRT *x) {
	u_int v = 0;
	switch (rq->rq_proc) {
	case 0:
		svc_sendreply(x, (xdrproc_t)xdr_void, NULL);
		return;
	case 1:
		if (!svc_getargs(x, (xdrproc_t)xdr_u_int, (caddr_t)&v)) { svcerr_decode(x); return; }
		v *= 2;
		svc_sendreply(x, (xdrproc_t)xdr_u_int, (caddr_t)&v);
		return;
	}
	svcerr_noproc(x);
}
