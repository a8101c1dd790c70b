/*
 * twohosts: a libtirpc service and client for the two-host conformance
 * scenario (twohosts_test.go). Built by the test with gcc and libtirpc.
 *
 *   twohosts serve PROG VERS PORT     on the server host: binds UDP and TCP
 *                                     0.0.0.0:PORT, registers both with
 *                                     svc_register (pmap_set underneath),
 *                                     prints "ready" and serves
 *   twohosts getaddr HOST PROG VERS NETID
 *                                     rpcb_getaddr (v4, v3, then v2)
 *   twohosts getport HOST PROG VERS udp|tcp
 *                                     pmap_getport (v2 GETPORT) to IPv4 HOST
 *   twohosts call HOST PROG VERS NETTYPE
 *                                     clnt_create, then procedure 1 (double)
 *   twohosts rmtcall HOST PROG VERS   pmap_rmtcall (v2 CALLIT) of procedure 1
 *                                     through IPv4 HOST's portmapper
 *   twohosts rpcbrmtcall HOST PROG VERS NETID
 *                                     rpcb_rmtcall (v4 BCAST, then v3
 *                                     CALLIT) of procedure 1
 *   twohosts broadcast PROG VERS NETTYPE
 *                                     rpc_broadcast of procedure 1; the
 *                                     first answer ends it
 *
 * Every client mode prints one line. The service binds a fixed port so that
 * no answer depends on the kernel's choice.
 */
#include <rpc/rpc.h>
#include <rpc/pmap_clnt.h>
#include <rpc/pmap_rmt.h>
#include <rpc/rpcb_clnt.h>
#include <netconfig.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "doubler.h"

static int bound(int type, unsigned port) {
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd = socket(AF_INET, type, 0);
	if (fd < 0) { perror("socket"); exit(2); }
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) { perror("bind"); exit(2); }
	if (type == SOCK_STREAM && listen(fd, 16) < 0) { perror("listen"); exit(2); }
	return fd;
}

static int serve(unsigned long prog, unsigned long vers, unsigned port) {
	SVCXPRT *u = svcudp_create(bound(SOCK_DGRAM, port));
	SVCXPRT *t = svctcp_create(bound(SOCK_STREAM, port), 0, 0);
	if (!u || !t) { fprintf(stderr, "svc*_create failed\n"); return 2; }
	pmap_unset(prog, vers);
	if (!svc_register(u, prog, vers, dispatch, IPPROTO_UDP) || !svc_register(t, prog, vers, dispatch, IPPROTO_TCP)) {
		fprintf(stderr, "svc_register failed\n");
		return 2;
	}
	printf("ready\n");
	fflush(stdout);
	svc_run();
	return 3;
}

static int getaddr(const char *host, unsigned long prog, unsigned long vers, const char *netid) {
	struct netconfig *nc = getnetconfigent(netid);
	struct sockaddr_storage ss;
	struct netbuf nb = { sizeof ss, 0, &ss };
	if (!nc) { printf("no netconfig entry %s\n", netid); return 1; }
	if (!rpcb_getaddr(prog, vers, nc, &nb, host)) {
		printf("rpcb_getaddr: %s\n", clnt_spcreateerror("not found"));
		return 1;
	}
	char *u = taddr2uaddr(nc, &nb);
	printf("rpcb_getaddr: %s\n", u ? u : "(unprintable)");
	return 0;
}

static int getport(const char *host, unsigned long prog, unsigned long vers, const char *proto) {
	struct sockaddr_in sin = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) { printf("not an IPv4 address: %s\n", host); return 1; }
	u_short port = pmap_getport(&sin, prog, vers, strcmp(proto, "tcp") ? IPPROTO_UDP : IPPROTO_TCP);
	if (port == 0) {
		printf("pmap_getport: 0 (%s)\n", clnt_sperrno(rpc_createerr.cf_stat));
		return 1;
	}
	printf("pmap_getport: %u\n", port);
	return 0;
}

static int call(const char *host, unsigned long prog, unsigned long vers, const char *nettype) {
	CLIENT *c = clnt_create(host, prog, vers, nettype);
	if (!c) { printf("%s\n", clnt_spcreateerror("clnt_create")); return 1; }
	u_int in = 21, out = 0;
	struct timeval tv = { 10, 0 };
	enum clnt_stat st = clnt_call(c, 1, (xdrproc_t)xdr_u_int, (caddr_t)&in, (xdrproc_t)xdr_u_int, (caddr_t)&out, tv);
	if (st != RPC_SUCCESS) { printf("clnt_call: %s\n", clnt_sperrno(st)); clnt_destroy(c); return 1; }
	printf("clnt_call: 21 doubled is %u\n", out);
	clnt_destroy(c);
	return 0;
}

static int rmtcall(const char *host, unsigned long prog, unsigned long vers) {
	struct sockaddr_in sin = { .sin_family = AF_INET };
	if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) { printf("not an IPv4 address: %s\n", host); return 1; }
	u_int in = 21, out = 0;
	u_long port = 0;
	struct timeval tv = { 5, 0 };
	enum clnt_stat st = pmap_rmtcall(&sin, prog, vers, 1, (xdrproc_t)xdr_u_int, (caddr_t)&in,
		(xdrproc_t)xdr_u_int, (caddr_t)&out, tv, &port);
	if (st != RPC_SUCCESS) { printf("pmap_rmtcall: %s\n", clnt_sperrno(st)); return 1; }
	printf("pmap_rmtcall: port %lu, 21 doubled is %u\n", port, out);
	return 0;
}

static int rpcbrmtcall(const char *host, unsigned long prog, unsigned long vers, const char *netid) {
	struct netconfig *nc = getnetconfigent(netid);
	struct sockaddr_storage ss;
	struct netbuf nb = { sizeof ss, 0, &ss };
	if (!nc) { printf("no netconfig entry %s\n", netid); return 1; }
	u_int in = 21, out = 0;
	struct timeval tv = { 5, 0 };
	enum clnt_stat st = rpcb_rmtcall(nc, host, prog, vers, 1, (xdrproc_t)xdr_u_int, (caddr_t)&in,
		(xdrproc_t)xdr_u_int, (caddr_t)&out, tv, &nb);
	if (st != RPC_SUCCESS) { printf("rpcb_rmtcall: %s\n", clnt_sperrno(st)); return 1; }
	char *u = taddr2uaddr(nc, &nb);
	printf("rpcb_rmtcall: %s, 21 doubled is %u\n", u ? u : "(unprintable)", out);
	return 0;
}

static bool_t first_answer(caddr_t res, struct netbuf *who, struct netconfig *nc) {
	char *u = taddr2uaddr(nc, who);
	printf("rpc_broadcast: %s, 21 doubled is %u\n", u ? u : "(unprintable)", *(u_int *)res);
	free(u);
	return TRUE;
}

static int broadcast(unsigned long prog, unsigned long vers, const char *nettype) {
	u_int in = 21, out = 0;
	enum clnt_stat st = rpc_broadcast(prog, vers, 1, (xdrproc_t)xdr_u_int, (caddr_t)&in,
		(xdrproc_t)xdr_u_int, (caddr_t)&out, (resultproc_t)first_answer, nettype);
	if (st != RPC_SUCCESS) { printf("rpc_broadcast: %s\n", clnt_sperrno(st)); return 1; }
	return 0;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && !strcmp(argv[1], "serve"))
		return serve(strtoul(argv[2], NULL, 0), strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0));
	if (argc == 6 && !strcmp(argv[1], "getaddr"))
		return getaddr(argv[2], strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0), argv[5]);
	if (argc == 6 && !strcmp(argv[1], "getport"))
		return getport(argv[2], strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0), argv[5]);
	if (argc == 6 && !strcmp(argv[1], "call"))
		return call(argv[2], strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0), argv[5]);
	if (argc == 5 && !strcmp(argv[1], "rmtcall"))
		return rmtcall(argv[2], strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0));
	if (argc == 6 && !strcmp(argv[1], "rpcbrmtcall"))
		return rpcbrmtcall(argv[2], strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0), argv[5]);
	if (argc == 5 && !strcmp(argv[1], "broadcast"))
		return broadcast(strtoul(argv[2], NULL, 0), strtoul(argv[3], NULL, 0), argv[4]);
	fprintf(stderr, "usage: twohosts serve PROG VERS PORT | getaddr|getport|call HOST PROG VERS NETID"
		" | rmtcall HOST PROG VERS | rpcbrmtcall HOST PROG VERS NETID | broadcast PROG VERS NETTYPE\n");
	return 2;
}
