/*
 * libtirpc_client: what a real libtirpc program sees of the portmapper.
 *
 * Built by the conformance test (gcc -I/usr/include/tirpc ... -ltirpc) and
 * run inside the test's private namespaces, once per phase:
 *
 *   libtirpc_client root     as uid 0: v2 pmap_* and v3/v4 rpcb_* calls,
 *                            address conversions, time, a real service;
 *                            leaves KEEP registered, owned by the superuser
 *   libtirpc_client nobody   as uid 65534: the same calls (registrations are
 *                            owned by "65534"), and attempts to remove KEEP
 *   libtirpc_client cleanup  as uid 0: removes KEEP
 *
 * Every observation is one "name = value" line. Nothing that changes from run
 * to run is printed: no times, no ports chosen by the kernel.
 */
#include <rpc/rpc.h>
#include <rpc/pmap_clnt.h>
#include <rpc/pmap_prot.h>
#include <rpc/rpcb_clnt.h>
#include <netconfig.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "doubler.h"

/* Test program numbers, in the range RFC 5531 leaves to transient use. */
#define P_V2   0x2fffa001 /* pmap_* registrations */
#define P_V3   0x2fffa002 /* rpcb_* registrations */
#define P_KEEP 0x2fffa003 /* left by root for nobody to try to remove */
#define P_SVC  0x2fffa004 /* the real service */

static const char *phase;
static struct sockaddr_in loopback;

#define OUT(name, ...) do { printf("%s: %s = ", phase, name); printf(__VA_ARGS__); putchar('\n'); } while (0)

static struct netconfig *nc(const char *netid) {
	struct netconfig *n = getnetconfigent(netid);
	if (!n) { fprintf(stderr, "no netconfig entry %s\n", netid); exit(2); }
	return n;
}

/* The host to ask for NETID: libtirpc resolves it with the netid's family. */
static const char *host_for(const char *netid) {
	return strchr(netid, '6') ? "::1" : "localhost";
}

/* Printable form of bytes a server returned, for values that are not text. */
static const char *hexstr(const unsigned char *b, unsigned n) {
	static char out[1024];
	unsigned i;
	for (i = 0; i < n && i * 2 + 2 < sizeof out; i++) sprintf(out + 2 * i, "%02x", b[i]);
	out[2 * i] = 0;
	return out;
}

static int ours(unsigned long prog) { return prog >= 0x2fffa000 && prog <= 0x2fffafff; }

/* pmap_getmaps: the portmapper's own entries and ours, in the server's order. */
static void print_pmaps(const char *name) {
	char key[96];
	int i = 0;
	for (struct pmaplist *l = pmap_getmaps(&loopback); l; l = l->pml_next) {
		struct pmap *m = &l->pml_map;
		if (m->pm_prog != 100000 && !ours(m->pm_prog)) continue;
		snprintf(key, sizeof key, "%s[%d]", name, i++);
		if (m->pm_prog == P_SVC)
			OUT(key, "%#lx v%lu prot %lu port (kernel's)", m->pm_prog, m->pm_vers, m->pm_prot);
		else
			OUT(key, "%#lx v%lu prot %lu port %lu", m->pm_prog, m->pm_vers, m->pm_prot, m->pm_port);
	}
	OUT(name, "%d entries", i);
}

/* rpcb_getmaps: address and owner of every entry, ours only. */
static void print_rpcbmaps(const char *name, const char *netid) {
	char key[96];
	int i = 0;
	for (rpcblist *l = rpcb_getmaps(nc(netid), host_for(netid)); l; l = l->rpcb_next) {
		rpcb *m = &l->rpcb_map;
		if (!ours(m->r_prog)) continue;
		snprintf(key, sizeof key, "%s[%d]", name, i++);
		OUT(key, "%#x v%u %s %s owner %s", (unsigned)m->r_prog, (unsigned)m->r_vers, m->r_netid,
		    m->r_prog == P_SVC ? "(kernel's address)" : m->r_addr, m->r_owner);
	}
	OUT(name, "%d entries", i);
}

/* rpcb_getaddr over NETID: found or not, family and port. */
static void print_getaddr(const char *name, unsigned long prog, unsigned long vers, const char *netid) {
	struct sockaddr_storage ss;
	struct netbuf nb = { sizeof ss, 0, &ss };
	if (!rpcb_getaddr(prog, vers, nc(netid), &nb, host_for(netid))) {
		OUT(name, "not found (%s)", clnt_sperrno(rpc_createerr.cf_stat));
		return;
	}
	if (ss.ss_family == AF_INET)
		OUT(name, "inet port %u", prog == P_SVC ? 0 : ntohs(((struct sockaddr_in *)&ss)->sin_port));
	else if (ss.ss_family == AF_INET6)
		OUT(name, "inet6 port %u", prog == P_SVC ? 0 : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
	else
		OUT(name, "family %d len %u", ss.ss_family, nb.len);
}

static void v2(void) {
	OUT("pmap_set udp 41001", "%d", pmap_set(P_V2, 1, IPPROTO_UDP, 41001));
	OUT("pmap_set tcp 41002", "%d", pmap_set(P_V2, 1, IPPROTO_TCP, 41002));
	OUT("pmap_set udp again, same port", "%d", pmap_set(P_V2, 1, IPPROTO_UDP, 41001));
	OUT("pmap_set udp again, other port", "%d", pmap_set(P_V2, 1, IPPROTO_UDP, 41009));
	OUT("pmap_set v2 udp 41003", "%d", pmap_set(P_V2, 2, IPPROTO_UDP, 41003));
	OUT("pmap_getport v1 udp", "%u", pmap_getport(&loopback, P_V2, 1, IPPROTO_UDP));
	OUT("pmap_getport v1 tcp", "%u", pmap_getport(&loopback, P_V2, 1, IPPROTO_TCP));
	OUT("pmap_getport v2 udp", "%u", pmap_getport(&loopback, P_V2, 2, IPPROTO_UDP));
	OUT("pmap_getport v2 tcp (falls back?)", "%u", pmap_getport(&loopback, P_V2, 2, IPPROTO_TCP));
	OUT("pmap_getport v9 udp (falls back?)", "%u", pmap_getport(&loopback, P_V2, 9, IPPROTO_UDP));
	OUT("pmap_getport unregistered program", "%u", pmap_getport(&loopback, P_V2 + 0x100, 1, IPPROTO_UDP));
	OUT("pmap_getport portmapper udp", "%u", pmap_getport(&loopback, PMAPPROG, PMAPVERS, IPPROTO_UDP));
	print_pmaps("pmap_getmaps");
	print_rpcbmaps("rpcb_getmaps after pmap_set", "udp");
	print_getaddr("rpcb_getaddr v1 udp of a pmap_set", P_V2, 1, "udp");
	print_getaddr("rpcb_getaddr v1 udp6 of a pmap_set", P_V2, 1, "udp6");
	OUT("pmap_unset v1", "%d", pmap_unset(P_V2, 1));
	OUT("pmap_getport v1 udp after unset", "%u", pmap_getport(&loopback, P_V2, 1, IPPROTO_UDP));
	OUT("pmap_getport v1 tcp after unset", "%u", pmap_getport(&loopback, P_V2, 1, IPPROTO_TCP));
	OUT("pmap_getport v2 udp after unset of v1", "%u", pmap_getport(&loopback, P_V2, 2, IPPROTO_UDP));
	OUT("pmap_unset v2", "%d", pmap_unset(P_V2, 2));
	OUT("pmap_unset v2 again (nothing left)", "%d", pmap_unset(P_V2, 2));
}

static void v3(void) {
	struct netbuf *t4a = uaddr2taddr(nc("tcp"), "127.0.0.1.160.41");  /* 41001 */
	struct netbuf *t4b = uaddr2taddr(nc("tcp"), "127.0.0.1.160.42");  /* 41002 */
	struct netbuf *u4 = uaddr2taddr(nc("udp"), "0.0.0.0.160.43");     /* 41003 */
	struct netbuf *t6 = uaddr2taddr(nc("tcp6"), "::1.160.44");        /* 41004 */
	struct netbuf *u6 = uaddr2taddr(nc("udp6"), "::.160.45");         /* 41005 */
	OUT("rpcb_set tcp", "%d", rpcb_set(P_V3, 1, nc("tcp"), t4a));
	OUT("rpcb_set tcp again, same address", "%d", rpcb_set(P_V3, 1, nc("tcp"), t4a));
	OUT("rpcb_set tcp again, other address", "%d", rpcb_set(P_V3, 1, nc("tcp"), t4b));
	OUT("rpcb_set udp wildcard", "%d", rpcb_set(P_V3, 1, nc("udp"), u4));
	OUT("rpcb_set tcp6", "%d", rpcb_set(P_V3, 1, nc("tcp6"), t6));
	OUT("rpcb_set udp6 wildcard", "%d", rpcb_set(P_V3, 1, nc("udp6"), u6));
	OUT("rpcb_set v3 tcp", "%d", rpcb_set(P_V3, 3, nc("tcp"), t4b));
	print_getaddr("rpcb_getaddr tcp", P_V3, 1, "tcp");
	print_getaddr("rpcb_getaddr udp (wildcard merged)", P_V3, 1, "udp");
	print_getaddr("rpcb_getaddr tcp6", P_V3, 1, "tcp6");
	print_getaddr("rpcb_getaddr udp6 (wildcard merged)", P_V3, 1, "udp6");
	print_getaddr("rpcb_getaddr v3 tcp", P_V3, 3, "tcp");
	print_getaddr("rpcb_getaddr v3 udp (other version registered)", P_V3, 3, "udp");
	print_getaddr("rpcb_getaddr v7 tcp", P_V3, 7, "tcp");
	OUT("pmap_getport v1 tcp of an rpcb_set", "%u", pmap_getport(&loopback, P_V3, 1, IPPROTO_TCP));
	OUT("pmap_getport v1 udp of an rpcb_set", "%u", pmap_getport(&loopback, P_V3, 1, IPPROTO_UDP));
	print_rpcbmaps("rpcb_getmaps over tcp", "tcp");
	print_rpcbmaps("rpcb_getmaps over udp6", "udp6");
	print_pmaps("pmap_getmaps after rpcb_set");
	OUT("rpcb_unset tcp", "%d", rpcb_unset(P_V3, 1, nc("tcp")));
	OUT("rpcb_unset tcp again", "%d", rpcb_unset(P_V3, 1, nc("tcp")));
	print_getaddr("rpcb_getaddr tcp after unset", P_V3, 1, "tcp");
	print_getaddr("rpcb_getaddr tcp6 after unset of tcp", P_V3, 1, "tcp6");
	OUT("pmap_unset v1 (udp and tcp only)", "%d", pmap_unset(P_V3, 1));
	print_rpcbmaps("rpcb_getmaps after pmap_unset", "tcp");
	OUT("rpcb_unset all netids", "%d", rpcb_unset(P_V3, 1, NULL));
	OUT("rpcb_unset all netids again", "%d", rpcb_unset(P_V3, 1, NULL));
	OUT("rpcb_unset v3 all netids", "%d", rpcb_unset(P_V3, 3, NULL));
	print_rpcbmaps("rpcb_getmaps at the end", "tcp");
}

static void conversions(void) {
	time_t t = 0;
	bool_t ok = rpcb_gettime("localhost", &t);
	long skew = labs((long)(t - time(NULL)));
	OUT("rpcb_gettime", "ok %d, within 10s of the local clock %d", ok, skew <= 10);

	const char *cases[][2] = {
		{ "tcp", "127.0.0.1.3.232" }, { "udp", "10.1.2.3.255.255" }, { "tcp6", "::1.0.111" },
		{ "udp6", "fe80::1.1.2" }, { "tcp", "not-an-address" }, { "tcp", "1.2.3.4.5" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char key[96];
		snprintf(key, sizeof key, "rpcb_uaddr2taddr %s %s", cases[i][0], cases[i][1]);
		struct netbuf *nb = rpcb_uaddr2taddr(nc(cases[i][0]), (char *)cases[i][1]);
		if (!nb || !nb->buf) { OUT(key, "none"); continue; }
		/* rpcbind converts with the netid of the transport the call came in
		 * on (libtirpc asks over the local socket), so show the raw bytes. */
		OUT(key, "len %u bytes %s", nb->len, hexstr((unsigned char *)nb->buf, nb->len));
	}

	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons(2049) };
	inet_pton(AF_INET, "192.0.2.7", &s4.sin_addr);
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(20048) };
	inet_pton(AF_INET6, "2001:db8::5", &s6.sin6_addr);
	struct sockaddr_in bad = { .sin_family = 77 };
	struct { const char *netid, *what; void *sa; unsigned len; } t2u[] = {
		{ "tcp", "192.0.2.7:2049", &s4, sizeof s4 }, { "udp6", "[2001:db8::5]:20048", &s6, sizeof s6 },
		{ "tcp", "family 77", &bad, sizeof bad }, { "tcp", "4 bytes", &s4, 4 },
	};
	for (size_t i = 0; i < sizeof t2u / sizeof t2u[0]; i++) {
		char key[96];
		struct netbuf nb = { t2u[i].len, t2u[i].len, t2u[i].sa };
		snprintf(key, sizeof key, "rpcb_taddr2uaddr %s %s", t2u[i].netid, t2u[i].what);
		char *u = rpcb_taddr2uaddr(nc(t2u[i].netid), &nb);
		OUT(key, "%s", !u ? "none" : u[0] ? hexstr((unsigned char *)u, strlen(u)) : "empty");
	}
}

static void call_svc(const char *nettype) {
	char key[96];
	CLIENT *c = clnt_create("localhost", P_SVC, 1, nettype);
	snprintf(key, sizeof key, "clnt_create %s", nettype);
	if (!c) { OUT(key, "%s", clnt_spcreateerror("failed")); return; }
	OUT(key, "ok");
	u_int in = 21, out = 0;
	struct timeval tv = { 5, 0 };
	enum clnt_stat st = clnt_call(c, 1, (xdrproc_t)xdr_u_int, (caddr_t)&in, (xdrproc_t)xdr_u_int, (caddr_t)&out, tv);
	snprintf(key, sizeof key, "clnt_call %s", nettype);
	OUT(key, "%s, 21 doubled is %u", clnt_sperrno(st), out);
	st = clnt_call(c, 7, (xdrproc_t)xdr_void, NULL, (xdrproc_t)xdr_void, NULL, tv);
	snprintf(key, sizeof key, "clnt_call %s unknown procedure", nettype);
	OUT(key, "%s", clnt_sperrno(st));
	clnt_destroy(c);
}

static void service(void) {
	int ready[2];
	if (pipe(ready) < 0) { perror("pipe"); exit(2); }
	rpcb_unset(P_SVC, 1, NULL);
	pid_t child = fork();
	if (child == 0) {
		close(ready[0]);
		/* svc_create registers every visible netid before it returns */
		int n = svc_create(dispatch, P_SVC, 1, "visible");
		if (write(ready[1], &n, sizeof n) != sizeof n) _exit(3);
		close(ready[1]);
		svc_run();
		_exit(4);
	}
	close(ready[1]);
	int n = 0;
	if (read(ready[0], &n, sizeof n) != sizeof n) n = -1;
	close(ready[0]);
	OUT("svc_create visible", "%d transports", n);
	print_rpcbmaps("rpcb_getmaps with the service", "udp");
	print_getaddr("rpcb_getaddr service tcp", P_SVC, 1, "tcp");
	print_getaddr("rpcb_getaddr service udp6", P_SVC, 1, "udp6");
	call_svc("tcp");
	call_svc("udp");
	CLIENT *c = clnt_create("localhost", P_SVC, 2, "tcp");
	OUT("clnt_create tcp version 2", "%s", c ? "ok" : clnt_spcreateerror("failed"));
	if (c) clnt_destroy(c);
	c = clnt_create("localhost", P_SVC + 0x100, 1, "udp");
	OUT("clnt_create udp unregistered program", "%s", c ? "ok" : clnt_spcreateerror("failed"));
	if (c) clnt_destroy(c);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	print_getaddr("rpcb_getaddr service after its death", P_SVC, 1, "tcp");
	OUT("rpcb_unset service", "%d", rpcb_unset(P_SVC, 1, NULL));
	print_getaddr("rpcb_getaddr service after unset", P_SVC, 1, "tcp");
}

static void keep_root(void) {
	struct netbuf *a = uaddr2taddr(nc("udp"), "127.0.0.1.160.50");
	OUT("rpcb_set keep udp", "%d", rpcb_set(P_KEEP, 1, nc("udp"), a));
	OUT("pmap_set keep tcp", "%d", pmap_set(P_KEEP, 1, IPPROTO_TCP, 41051));
	print_rpcbmaps("rpcb_getmaps keep", "tcp");
}

static void keep_nobody(void) {
	struct netbuf *a = uaddr2taddr(nc("udp"), "127.0.0.1.160.52");
	OUT("rpcb_set over root's keep udp", "%d", rpcb_set(P_KEEP, 1, nc("udp"), a));
	OUT("rpcb_set keep v2 udp", "%d", rpcb_set(P_KEEP, 2, nc("udp"), a));
	OUT("rpcb_unset root's keep udp", "%d", rpcb_unset(P_KEEP, 1, nc("udp")));
	OUT("rpcb_unset root's keep, all netids", "%d", rpcb_unset(P_KEEP, 1, NULL));
	OUT("pmap_unset root's keep", "%d", pmap_unset(P_KEEP, 1));
	print_getaddr("rpcb_getaddr keep udp", P_KEEP, 1, "udp");
	OUT("pmap_getport keep tcp", "%u", pmap_getport(&loopback, P_KEEP, 1, IPPROTO_TCP));
	print_rpcbmaps("rpcb_getmaps keep", "tcp");
}

static void keep_cleanup(void) {
	print_rpcbmaps("rpcb_getmaps before cleanup", "tcp");
	OUT("rpcb_unset nobody's keep v2 as root", "%d", rpcb_unset(P_KEEP, 2, NULL));
	OUT("pmap_unset keep", "%d", pmap_unset(P_KEEP, 1));
	OUT("rpcb_unset keep, all netids", "%d", rpcb_unset(P_KEEP, 1, NULL));
	print_rpcbmaps("rpcb_getmaps after cleanup", "tcp");
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	phase = argc > 1 ? argv[1] : "root";
	loopback.sin_family = AF_INET;
	loopback.sin_port = htons(PMAPPORT);
	loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	OUT("uid", "%u", (unsigned)getuid());
	if (!strcmp(phase, "cleanup")) { keep_cleanup(); return 0; }
	v2();
	v3();
	if (!strcmp(phase, "root")) { conversions(); keep_root(); }
	else keep_nobody();
	service();
	return 0;
}
