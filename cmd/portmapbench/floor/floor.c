/*
 * floor: the trivial responder that make bench measures the portmappers
 * against. One recvfrom/sendto loop on UDP port 111 (or argv[1]) that
 * answers every datagram of at least four bytes with a fixed GETPORT
 * reply (port 0) under the datagram's xid: no decoding, no lookup, no
 * registry. Nothing that answers a datagram with a datagram through the
 * same system calls can be faster on the same machine, so it is the floor
 * of latency and the ceiling of rate.
 *
 * cc -O2 -o floor floor.c
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 111;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
		perror("floor");
		return 1;
	}
	/* xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS, port 0 */
	unsigned int reply[7] = { 0, htonl(1), 0, 0, 0, 0, 0 };
	char buf[9000];
	for (;;) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof from;
		ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fromlen);
		if (n < 4)
			continue;
		memcpy(&reply[0], buf, 4);
		sendto(fd, reply, sizeof reply, 0, (struct sockaddr *)&from, fromlen);
	}
}
