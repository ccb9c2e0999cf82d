/*
 * cmd_health.c: `fieldsyncd health` (admin layer; admin.h). Asks a running
 * daemon's ops endpoint (--ops-listen, FIELDSYNC_OPS_LISTEN, default
 * 127.0.0.1:7480; a wildcard address means loopback) for /healthz, or
 * /readyz with --ready, over plain HTTP/1.0 with a 5 s timeout: exit 0 on
 * a 200, else 1. For container HEALTHCHECKs: the image needs no curl.
 *
 * Runs against a running daemon only; it opens no store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "admin.h"
#include "clock.h"
#include "ops_http.h"

int
admin_cmd_health(const admin_args *a)
{
	const char *listen = admin_opt(a, "ops-listen");
	const char *path = admin_opt(a, "ready") ? "/readyz" : "/healthz";
	struct sockaddr_storage addr;
	char err[200], req[128], buf[256];
	if (listen == NULL)
		listen = getenv("FIELDSYNC_OPS_LISTEN");
	if (listen == NULL || listen[0] == '\0')
		listen = "127.0.0.1:7480";
	if (!ops_http_parse_listen(listen, &addr, err, sizeof(err))) {
		fprintf(stderr, "fieldsyncd health: %s\n", err);
		return FSD_EXIT_USAGE;
	}
	/* 0.0.0.0 / :: listen on every address: ask loopback. */
	if (addr.ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&addr;
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else if (addr.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			in6->sin6_addr = in6addr_loopback;
	}
	int fd = socket(addr.ss_family, SOCK_STREAM, 0);
	struct timeval tv = {5, 0};
	if (fd < 0)
		return FSD_EXIT_FAIL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	socklen_t al = addr.ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                         : sizeof(struct sockaddr_in6);
	int code = -1;
	if (connect(fd, (struct sockaddr *)&addr, al) == 0) {
		int l = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
		ssize_t n = write(fd, req, (size_t)l) == l ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (n > 0) {
			buf[n] = '\0';
			if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
				code = -1;
		}
	}
	close(fd);
	if (code != 200) {
		fprintf(stderr, "fieldsyncd health: %s%s %s\n", listen, path,
		        code < 0 ? "did not answer" : "is not OK");
		return FSD_EXIT_FAIL;
	}
	return FSD_EXIT_OK;
}
