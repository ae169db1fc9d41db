/* SPDX-License-Identifier: MIT */
/*
 * addr.c - the socket addresses both ends are given: "unix:PATH",
 * "unix:@NAME" (abstract namespace) and "vsock:CID:PORT". The tool
 * listens (its CID may be "any"), the VMM connects; one parser, so that
 * the same string means the same socket on both sides.
 */
#include "kvmi-proto.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>

_Static_assert(sizeof(((struct kvmi_addr *)0)->path) ==
	       sizeof(((struct sockaddr_un *)0)->sun_path), "kvmi_addr.path is a sun_path");

/* A C literal that starts with a digit: no sign, no blanks. */
static int parse_u32(const char *s, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_unix(const char *path, struct kvmi_addr *addr)
{
	size_t n = strlen(path);

	if (!n)
		return -EINVAL;
	if (n >= sizeof(addr->path))
		return -ENAMETOOLONG;
	addr->family = AF_UNIX;
	memcpy(addr->path, path, n + 1);
	return 0;
}

static int parse_vsock(const char *spec, unsigned flags, struct kvmi_addr *addr)
{
	char cid[64];
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : 0;

	if (!colon || strlen(spec) >= sizeof(cid))
		return -EINVAL;
	memcpy(cid, spec, n);
	cid[n] = '\0';
	if ((flags & KVMI_PROTO_ADDR_LISTEN) &&
	    (!cid[0] || !strcmp(cid, "any") || !strcmp(cid, "-1")))
		addr->cid = VMADDR_CID_ANY;
	else if (parse_u32(cid, &addr->cid))
		return -EINVAL;
	if (parse_u32(colon + 1, &addr->port) || addr->port == 0)
		return -EINVAL;
	addr->family = AF_VSOCK;
	return 0;
}

int kvmi_proto_addr_parse(const char *spec, unsigned flags, struct kvmi_addr *addr)
{
	memset(addr, 0, sizeof(*addr));
	if (!spec)
		return -EINVAL;
	if (!strncmp(spec, "unix:", 5))
		return parse_unix(spec + 5, addr);
	if (!strncmp(spec, "vsock:", 6))
		return parse_vsock(spec + 6, flags, addr);
	return -EINVAL;
}

socklen_t kvmi_proto_addr_sockaddr(const struct kvmi_addr *addr, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (addr->family == AF_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		size_t n = strnlen(addr->path, sizeof(addr->path));

		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, addr->path, n);
		if (addr->path[0] != '@')
			return (socklen_t)sizeof(*sun);
		/* Abstract: a leading NUL, and the length counts the name
		 * without a terminator. */
		sun->sun_path[0] = '\0';
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	}
	if (addr->family == AF_VSOCK) {
		struct sockaddr_vm *svm = (struct sockaddr_vm *)ss;

		svm->svm_family = AF_VSOCK;
		svm->svm_cid = addr->cid;
		svm->svm_port = addr->port;
		return (socklen_t)sizeof(*svm);
	}
	return 0;
}
