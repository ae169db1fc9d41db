/* SPDX-License-Identifier: MIT */
/*
 * The VMM's end of the introspection connection: where the tool listens
 * (unix:PATH or vsock:CID:PORT), connecting to it, and the reconnect backoff.
 * As in the v4 design, the VMM initiates and the tool listens.
 */
#ifndef KVMI_VM_INTROSPECT_LINK_H
#define KVMI_VM_INTROSPECT_LINK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/un.h>

enum link_family { LINK_UNIX, LINK_VSOCK };

struct link_addr {
	enum link_family family;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	uint32_t cid, port;
};

/* "unix:/run/tool.sock", "vsock:2:1234".  0 or -EINVAL with a message in err. */
int link_parse(const char *spec, struct link_addr *addr, char *err, size_t errlen);
/* Connected stream socket (CLOEXEC) or -errno. */
int link_connect(const struct link_addr *addr);
/* Writes a printable form ("unix:/path") into buf. */
void link_format(const struct link_addr *addr, char *buf, size_t len);

/* Exponential backoff between reconnect attempts: 100 ms doubling to 5 s. */
struct link_backoff {
	unsigned next_ms;
};
void link_backoff_reset(struct link_backoff *b);
unsigned link_backoff_next(struct link_backoff *b);

#endif
