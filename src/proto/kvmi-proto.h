/* SPDX-License-Identifier: MIT */
/*
 * kvmi-proto.h - what both ends of the KVMI wire share, so that each
 * fact lives once: the metadata of every command and event (id, names,
 * sizes, scope; table.c), finding a message in a byte stream (frame.c),
 * timed whole-buffer socket I/O (io.c) and the "unix:PATH" /
 * "vsock:CID:PORT" addresses (addr.c).
 *
 * Users: the protocol server (src/introspection), the client library
 * (lib/; compiled in, never exported) and the kvmi CLI (tools/). The
 * byte layouts are include/kvmi/kvmi-wire.h; this adds what a layout
 * cannot say. Everything here is pure or works on a caller's descriptor,
 * and returns 0 or -errno unless said otherwise.
 */
#ifndef KVMI_PROTO_H
#define KVMI_PROTO_H

#include <kvmi/kvmi-wire.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

/* ------------------------------------------------------------------ */
/* Commands and events (table.c)                                       */
/* ------------------------------------------------------------------ */

enum kvmi_proto_scope {
	KVMI_PROTO_VM,          /* the payload is the request itself */
	KVMI_PROTO_VCPU,        /* the payload starts with struct kvmi_vcpu_hdr */
};

/* kvmi_proto_cmd.flags */
#define KVMI_PROTO_VAR_REQ    0x01u  /* request longer than req_size, its fixed part */
#define KVMI_PROTO_VAR_REPLY  0x02u  /* reply data longer than reply_size, its fixed part */
#define KVMI_PROTO_NO_REPLY   0x04u  /* not a command: nothing ever answers it */
#define KVMI_PROTO_RESERVED   0x08u  /* a name only: no layout, no implementation */
/*
 * What a command changes in the guest, for the admin policy, which names
 * each kind once (docs/policy.md): "write_physical" stands for every
 * command that changes guest memory as the guest sees it, "set_registers"
 * for every command that writes vCPU registers. KVMI_X_MAP_MEMORY writes
 * memory unless it asks for a read-only grant (kvmi_proto_command_writes).
 */
#define KVMI_PROTO_WRITES_MEM  0x10u
#define KVMI_PROTO_WRITES_REGS 0x20u

struct kvmi_proto_cmd {
	uint16_t id;
	uint8_t scope;          /* enum kvmi_proto_scope */
	uint8_t flags;
	uint16_t req_size;      /* request after any struct kvmi_vcpu_hdr */
	uint16_t reply_size;    /* data after struct kvmi_error_code, on success */
	const char *name;       /* libkvmi's, what logs print: "KVMI_VCPU_GET_XCR" */
	const char *short_name; /* the client library's: "GET_XCR" */
	const char *alias;      /* the kvmi-v7 kernel's where it differs, else NULL */
};

/* kvmi_proto_event.flags */
#define KVMI_PROTO_EV_VM        0x01u  /* enabled with CONTROL_VM_EVENTS */
#define KVMI_PROTO_EV_VCPU      0x02u  /* enabled with CONTROL_EVENTS */
#define KVMI_PROTO_EV_NO_REPLY  0x04u  /* the tool does not answer it */

struct kvmi_proto_event {
	uint8_t id;
	uint8_t flags;
	uint16_t data_size;     /* event-specific part after struct kvmi_event */
	uint16_t reply_size;    /* specific part after struct kvmi_event_reply */
	const char *name;       /* "KVMI_EVENT_PF" */
	const char *short_name; /* "PF" */
};

/* By id: the KVMI range and the kvmi extensions (KVMI_X_*). NULL for an
 * id without a name. */
const struct kvmi_proto_cmd *kvmi_proto_command(unsigned id);
const struct kvmi_proto_event *kvmi_proto_event(unsigned id);

/* Reads of the tables that are safe for any id (unknown: NULL or 0). */
const char *kvmi_proto_command_name(unsigned id);
const char *kvmi_proto_command_short_name(unsigned id);
const char *kvmi_proto_event_name(unsigned id);
const char *kvmi_proto_event_short_name(unsigned id);
size_t kvmi_proto_event_data_size(unsigned id);
size_t kvmi_proto_event_reply_size(unsigned id);
/* Does a successful reply to command `c` carry data? */
bool kvmi_proto_reply_has_data(const struct kvmi_proto_cmd *c);
/*
 * What request (len bytes, as received) of command c writes:
 * KVMI_PROTO_WRITES_MEM | KVMI_PROTO_WRITES_REGS or 0. req NULL: the
 * least any request of c writes (a read-only map grant writes nothing).
 * A request too short to say counts as writing all its row says.
 */
unsigned kvmi_proto_command_writes(const struct kvmi_proto_cmd *c, const void *req, size_t len);
/* Does event `id` wait for an EVENT_REPLY? An unknown event does: it may
 * hold a vCPU, and only an answer releases it. */
bool kvmi_proto_event_needs_reply(unsigned id);

/*
 * Names as people write them (the admin policy, the CLI): case-insensitive,
 * with or without "KVMI_". Commands: libkvmi's name, KVMI_VCPU_* names
 * also without "VCPU_" ("translate_gva"), or the kernel's alias whole
 * ("vcpu_get_info": without its prefix it would collide with
 * "vm_get_info"). Events: also without "EVENT_"; "page_fault" is PF.
 * The id (KVMI range only), or -1.
 */
int kvmi_proto_command_by_name(const char *word);
int kvmi_proto_event_by_name(const char *word);

/* ------------------------------------------------------------------ */
/* Framing (frame.c): messages are a kvmi_msg_hdr, then hdr.size bytes  */
/* ------------------------------------------------------------------ */

/* The header at the start of buf (have bytes), once all of it is there. */
bool kvmi_proto_frame_hdr(const void *buf, size_t have, struct kvmi_msg_hdr *hdr);
/* Bytes the message at the start of buf needs in all: a header until
 * the header is there, then header + payload. */
size_t kvmi_proto_frame_need(const void *buf, size_t have);
/* The message at the start of buf: its whole length once every byte is
 * there (*hdr filled), 0 while more must be read, -EMSGSIZE as soon as
 * the header announces a payload over max_size. */
ssize_t kvmi_proto_frame(const void *buf, size_t have, size_t max_size,
			 struct kvmi_msg_hdr *hdr);

/* ------------------------------------------------------------------ */
/* Timed I/O (io.c). Deadlines are kvmi_proto_now_ms() values; -1 is   */
/* none. A deadline that has passed still takes what is already there. */
/* ------------------------------------------------------------------ */

int64_t kvmi_proto_now_ms(void);                 /* CLOCK_MONOTONIC */
int64_t kvmi_proto_deadline(int timeout_ms);     /* timeout_ms < 0: -1 */
/* A poll() timeout for the deadline: -1 without one, 0 once passed. */
int kvmi_proto_poll_ms(int64_t deadline);
/* Until fd is ready for `events`: 0, -ETIMEDOUT or -errno. */
int kvmi_proto_wait_fd(int fd, short events, int64_t deadline);
/* All of len bytes (any fd, blocking or not). EOF first: -ECONNRESET. */
int kvmi_proto_read_full(int fd, void *buf, size_t len, int64_t deadline);
/*
 * All of iov (advanced in place) on a socket, or a pipe or file when
 * pass_fd < 0. pass_fd >= 0 goes along with the first bytes (SCM_RIGHTS);
 * the caller keeps it. A peer that is gone (EPIPE): -ECONNRESET.
 */
int kvmi_proto_writev_full(int fd, struct iovec *iov, int iovcnt, int pass_fd,
			   int64_t deadline);
int kvmi_proto_write_full(int fd, const void *buf, size_t len, int64_t deadline);

/* ------------------------------------------------------------------ */
/* Addresses (addr.c)                                                  */
/* ------------------------------------------------------------------ */

/* "unix:PATH", "unix:@NAME" (abstract namespace) or "vsock:CID:PORT". */
struct kvmi_addr {
	int family;                     /* AF_UNIX or AF_VSOCK */
	char path[108];                 /* NUL-terminated, '@' kept */
	uint32_t cid, port;
};

/* The listening side's vsock CID may also be "any", "-1" or empty
 * (VMADDR_CID_ANY). */
#define KVMI_PROTO_ADDR_LISTEN 0x1u

/*
 * Numbers are C literals (decimal, 0x hex, 0 octal) that start with a
 * digit and fit 32 bits; the port is never 0. -EINVAL, or -ENAMETOOLONG
 * for a unix path that does not fit sockaddr_un.
 */
int kvmi_proto_addr_parse(const char *spec, unsigned flags, struct kvmi_addr *addr);
/* The socket address to bind or connect to, and its length (0 for an
 * unknown family). */
socklen_t kvmi_proto_addr_sockaddr(const struct kvmi_addr *addr, struct sockaddr_storage *ss);

#endif /* KVMI_PROTO_H */
