/* SPDX-License-Identifier: MIT */
/*
 * handshake.c - the out-of-band handshake before the first KVMI message.
 *
 * VMM -> tool: struct kvmi_handshake_vmm, 104 bytes as QEMU kvmi-v7 sends
 * it (libkvmi reads the first 96 and skips the rest).
 * tool -> VMM: u32 struct_size, then struct_size - 4 more bytes, of which
 * the first 20 are the cookie hash. The size is capped before anything else
 * is read, nothing past the answer is consumed (the first command may
 * already be queued behind it), and the whole exchange has one deadline.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

void kvmi_srv_handshake_encode(const struct kvmi_handshake_params *p, struct kvmi_handshake_vmm *out)
{
	size_t n = strnlen(p->name, sizeof(out->name) - 1);

	memset(out, 0, sizeof(*out));
	out->struct_size = sizeof(*out);
	memcpy(out->uuid, p->uuid, sizeof(out->uuid));
	out->start_time = p->start_time_ms;
	memcpy(out->name, p->name, n);
	out->max_gpa = p->max_gpa;
}

/* Comparison time does not depend on where the hashes differ. */
static bool same_hash(const uint8_t *a, const uint8_t *b)
{
	uint8_t diff = 0;

	for (unsigned i = 0; i < KVMI_COOKIE_HASH_SIZE; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

int kvmi_srv_handshake_check_answer(const void *buf, size_t len, const uint8_t *cookie_hash,
				struct kvmi_handshake_tool *answer)
{
	struct kvmi_handshake_tool a;
	uint32_t size;

	if (len < sizeof(size))
		return -EPROTO;
	memcpy(&size, buf, sizeof(size));
	if (size < KVMI_HANDSHAKE_TOOL_MIN_SIZE || size > KVMI_HANDSHAKE_TOOL_MAX_SIZE ||
	    len != size)
		return -EPROTO;
	memcpy(&a, buf, sizeof(a));
	if (cookie_hash && !same_hash(a.cookie_hash, cookie_hash))
		return -EACCES;
	if (answer)
		*answer = a;
	return 0;
}

int kvmi_srv_handshake(int fd, const struct kvmi_handshake_params *p, struct kvmi_handshake_tool *answer)
{
	uint8_t buf[KVMI_HANDSHAKE_TOOL_MAX_SIZE];
	int timeout = p->timeout_ms > 0 ? p->timeout_ms : KVMI_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	int64_t deadline = kvmi_proto_now_ms() + timeout;
	struct kvmi_handshake_vmm hello;
	uint32_t size;
	int err;

	kvmi_srv_handshake_encode(p, &hello);
	err = kvmi_proto_write_full(fd, &hello, sizeof(hello), deadline);
	if (err)
		return err;

	err = kvmi_proto_read_full(fd, &size, sizeof(size), deadline);
	if (err)
		return err;
	if (size < KVMI_HANDSHAKE_TOOL_MIN_SIZE || size > KVMI_HANDSHAKE_TOOL_MAX_SIZE)
		return -EPROTO;
	memcpy(buf, &size, sizeof(size));
	err = kvmi_proto_read_full(fd, buf + sizeof(size), size - sizeof(size), deadline);
	if (err)
		return err;
	return kvmi_srv_handshake_check_answer(buf, size, p->cookie_hash, answer);
}
