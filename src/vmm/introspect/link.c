/* SPDX-License-Identifier: MIT */
/* Introspector address parsing, connecting, reconnect backoff. */
#include "link.h"

#include <errno.h>
#include <linux/vm_sockets.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../util.h"

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u

static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int link_parse(const char *spec, struct link_addr *addr, char *err, size_t errlen)
{
	memset(addr, 0, sizeof(*addr));
	if (!strncmp(spec, "unix:", 5)) {
		const char *path = spec + 5;

		if (!*path)
			return bad(err, errlen, "unix: needs a socket path");
		if (strlen(path) >= sizeof(addr->path))
			return bad(err, errlen, "socket path longer than %zu bytes", sizeof(addr->path) - 1);
		addr->family = LINK_UNIX;
		strcpy(addr->path, path);
		return 0;
	}
	if (!strncmp(spec, "vsock:", 6)) {
		char buf[64], *colon;
		uint64_t cid, port;

		if (strlen(spec + 6) >= sizeof(buf))
			return bad(err, errlen, "vsock address too long");
		strcpy(buf, spec + 6);
		colon = strchr(buf, ':');
		if (!colon)
			return bad(err, errlen, "vsock address must be vsock:CID:PORT");
		*colon = '\0';
		if (parse_uint(buf, UINT32_MAX, &cid) || parse_uint(colon + 1, UINT32_MAX, &port) || !port)
			return bad(err, errlen, "vsock CID and PORT must be numbers (PORT > 0)");
		addr->family = LINK_VSOCK;
		addr->cid = (uint32_t)cid;
		addr->port = (uint32_t)port;
		return 0;
	}
	return bad(err, errlen, "introspector address must start with unix: or vsock:");
}

int link_connect(const struct link_addr *addr)
{
	int fd, err;

	if (addr->family == LINK_UNIX) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		memcpy(sa.sun_path, addr->path, sizeof(sa.sun_path));
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
	} else {
		struct sockaddr_vm sa = {
			.svm_family = AF_VSOCK, .svm_cid = addr->cid, .svm_port = addr->port,
		};

		fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
	}
	err = -errno;
	close(fd);
	return err;
}

void link_format(const struct link_addr *addr, char *buf, size_t len)
{
	if (addr->family == LINK_UNIX)
		snprintf(buf, len, "unix:%s", addr->path);
	else
		snprintf(buf, len, "vsock:%u:%u", addr->cid, addr->port);
}

void link_backoff_reset(struct link_backoff *b)
{
	b->next_ms = BACKOFF_MIN_MS;
}

unsigned link_backoff_next(struct link_backoff *b)
{
	unsigned ms = b->next_ms ? b->next_ms : BACKOFF_MIN_MS;

	b->next_ms = MIN(ms * 2, BACKOFF_MAX_MS);
	return ms;
}
