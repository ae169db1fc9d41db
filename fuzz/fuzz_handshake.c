/* SPDX-License-Identifier: MIT */
/*
 * fuzz_handshake.c - libFuzzer target for the VMM side of the handshake:
 * the tool's answer (u32 struct_size, then struct_size - 4 bytes) read
 * from a real socket, with and without a cookie to check (input byte 0),
 * and the pure answer checker on the same bytes.
 */
#include "introspection.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t cookie[KVMI_COOKIE_HASH_SIZE] = {
		0xe5, 0xe9, 0xfa, 0x1b, 0xa3, 0x1e, 0xcd, 0x1a, 0xe8, 0x4f,
		0x75, 0xca, 0xaa, 0x47, 0x4f, 0x3a, 0x66, 0x3f, 0x05, 0xf4,
	};
	struct kvmi_handshake_params p = { .timeout_ms = 1000 };
	struct kvmi_handshake_tool answer;
	int sv[2];

	if (!size)
		return 0;
	if (data[0] & 1)
		p.cookie_hash = cookie;
	data++;
	size--;
	if (size > 65536)
		size = 65536;

	kvmi_srv_handshake_check_answer(data, size, p.cookie_hash, &answer);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	/* Everything the tool says is already queued, then it hangs up: the
	 * handshake never waits for the timeout. */
	{
		int big = 1 << 20;

		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	}
	if (size && send(sv[0], data, size, MSG_NOSIGNAL) != (ssize_t)size)
		abort();
	shutdown(sv[0], SHUT_WR);
	strcpy(p.name, "fuzz");
	kvmi_srv_handshake(sv[1], &p, &answer);
	close(sv[0]);
	close(sv[1]);
	return 0;
}
