/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the client library's reading side (lib/recv.c) over a whole
 * byte stream from a VMM: framing, the read buffer, dispatch of events,
 * replies, bulk replies and strays, descriptors, the end of the stream.
 *
 * Input: byte 0 = flags, the rest = what the VMM sends after its handshake
 * and the GET_VERSION reply.  A writer thread sends it in pieces (sizes from
 * the flags) while the library reads, then closes its side.
 *   bit 0: a command (CHECK_COMMAND, seq 2) waits for a reply first
 *   bit 1: a bulk read of two pages (READ_PHYSICAL seqs after it)
 *   bit 2: a descriptor travels with the first piece, bit 3: with the third
 *   bits 4-7: piece sizes
 * No descriptor may stay open afterwards.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct writer {
	int fd;
	uint8_t flags;
	const uint8_t *data;
	size_t size;
};

/* Sent the way the VMM sends (src/proto's writer); a library that stops
 * reading ends it. */
static void send_piece(int fd, const uint8_t *p, size_t n, bool with_fd)
{
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
	int pass = with_fd ? open("/dev/null", O_RDONLY | O_CLOEXEC) : -1;

	(void)kvmi_proto_writev_full(fd, &iov, 1, pass, -1);
	if (pass >= 0)
		close(pass);
}

static void *write_stream(void *arg)
{
	struct writer *w = arg;
	unsigned int rnd = w->flags >> 4, piece = 0;

	for (size_t o = 0; o < w->size; piece++) {
		size_t n;

		rnd = rnd * 1103515245u + 12345u;
		n = 1 + (rnd >> 8) % (piece & 1 ? 9000 : 40);
		if (n > w->size - o)
			n = w->size - o;
		send_piece(w->fd, w->data + o, n,
			   (piece == 0 && (w->flags & 4)) || (piece == 2 && (w->flags & 8)));
		o += n;
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kvmi_config cfg = { .size = sizeof(cfg), .io_timeout_ms = 2000 };
	struct kvmi_handshake_vmm hello = { .struct_size = sizeof(hello) };
	struct kvmi_get_version_reply ver = { .version = 1 };
	struct kvmi_msg_hdr h = { .id = KVMI_GET_VERSION, .size = 8 + sizeof(ver), .seq = 1 };
	struct kvmi_error_code ec = { 0 };
	uint8_t pro[sizeof(hello) + 8 + 8 + sizeof(ver)];
	struct writer w;
	struct kvmi_dom *dom = NULL;
	struct kvmi_event_msg *ev;
	pthread_t t;
	int sv[2], before;

	if (size < 1 || size > 65536)
		return 0;
	before = open_fds();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	memcpy(hello.name, "fuzz", 5);
	memcpy(pro, &hello, sizeof(hello));
	memcpy(pro + sizeof(hello), &h, 8);
	memcpy(pro + sizeof(hello) + 8, &ec, 8);
	memcpy(pro + sizeof(hello) + 16, &ver, sizeof(ver));
	if (write(sv[0], pro, sizeof(pro)) != (ssize_t)sizeof(pro)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	w = (struct writer){ .fd = sv[0], .flags = data[0], .data = data + 1, .size = size - 1 };
	if (pthread_create(&t, NULL, write_stream, &w)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	if (kvmi_dom_open_fd(sv[1], &cfg, &dom) == 0) {
		if (data[0] & 1)
			(void)kvmi_dom_check_command(dom, KVMI_GET_VERSION);
		if (data[0] & 2) {
			uint8_t buf[8192];

			(void)kvmi_dom_read_physical_bulk(dom, 0x1000 + 7, buf, sizeof(buf));
		}
		/* Until the end of the stream (each wait is bounded). */
		for (int i = 0; i < 100000; i++) {
			int err = kvmi_dom_next_event(dom, 3000, &ev);

			if (err == -ENOTCONN || err == -ETIMEDOUT)
				break;
			if (!err)
				kvmi_event_free(ev);
		}
		kvmi_dom_close(dom);
	}
	pthread_join(t, NULL);
	close(sv[0]);
	if (before >= 0 && open_fds() != before)
		abort();        /* a descriptor leaked */
	return 0;
}
