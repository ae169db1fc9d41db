/* SPDX-License-Identifier: MIT */
/* GDB remote serial protocol client (see gdb_rsp.h). */
#include "gdb_rsp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int rsp_connect(struct rsp *r, const char *host, int port, int wait_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1;

	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->timeout_ms = 10000;
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -EINVAL;
	for (int waited = 0;; waited += 50) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			/* Every packet and ack is a small write: no Nagle
			 * (BENCH_GDB_NAGLE=1 keeps it, to see what a client
			 * that forgets TCP_NODELAY gets). */
			if (!getenv("BENCH_GDB_NAGLE"))
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			r->fd = fd;
			return 0;
		}
		close(fd);
		if (waited >= wait_ms)
			return -ETIMEDOUT;
		nanosleep(&(struct timespec){ .tv_nsec = 50000000 }, NULL);
	}
}

void rsp_close(struct rsp *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->pkt);
	r->pkt = NULL;
}

static int get_byte(struct rsp *r)
{
	if (r->in_pos == r->in_len) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		ssize_t n;
		int ret = poll(&p, 1, r->timeout_ms);

		if (ret < 0)
			return -errno;
		if (ret == 0)
			return -ETIMEDOUT;
		n = read(r->fd, r->in, sizeof(r->in));
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		r->in_pos = 0;
		r->in_len = (size_t)n;
	}
	return r->in[r->in_pos++];
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int rsp_send(struct rsp *r, const char *data)
{
	size_t len = strlen(data);
	char *frame = malloc(len + 5);
	uint8_t sum = 0;
	int ret;

	if (!frame)
		return -ENOMEM;
	frame[0] = '$';
	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + (uint8_t)data[i]);
	memcpy(frame + 1, data, len);
	snprintf(frame + 1 + len, 4, "#%02x", sum);
	for (int tries = 0; tries < 10; tries++) {
		int c;

		ret = write_all(r->fd, frame, len + 4);
		if (ret || r->noack)
			break;
		/* Wait for the acknowledgement. */
		do
			c = get_byte(r);
		while (c >= 0 && c != '+' && c != '-');
		if (c < 0) {
			ret = c;
			break;
		}
		if (c == '+')
			break;
		r->resends++;
		ret = -EIO;
	}
	free(frame);
	return ret;
}

static int pkt_put(struct rsp *r, char c)
{
	if (r->pkt_len + 2 > r->pkt_cap) {
		size_t cap = r->pkt_cap ? r->pkt_cap * 2 : 4096;
		char *p = realloc(r->pkt, cap);

		if (!p)
			return -ENOMEM;
		r->pkt = p;
		r->pkt_cap = cap;
	}
	r->pkt[r->pkt_len++] = c;
	return 0;
}

int rsp_recv(struct rsp *r)
{
	for (;;) {
		uint8_t sum = 0;
		int c, hi, lo, ret = 0;
		char prev = 0;

		/* Anything before '$' (stray acks) is skipped. */
		do
			c = get_byte(r);
		while (c >= 0 && c != '$');
		if (c < 0)
			return c;
		r->pkt_len = 0;
		for (;;) {
			c = get_byte(r);
			if (c < 0)
				return c;
			if (c == '#')
				break;
			sum = (uint8_t)(sum + (uint8_t)c);
			if (c == '*' && r->pkt_len) {
				/* Run-length encoding: the next char gives the repeat count. */
				int n = get_byte(r);

				if (n < 0)
					return n;
				sum = (uint8_t)(sum + (uint8_t)n);
				for (int k = 0; k < n - 29 && !ret; k++)
					ret = pkt_put(r, prev);
			} else if (c == '}') {
				int e = get_byte(r);

				if (e < 0)
					return e;
				sum = (uint8_t)(sum + (uint8_t)e);
				prev = (char)(e ^ 0x20);
				ret = pkt_put(r, prev);
			} else {
				prev = (char)c;
				ret = pkt_put(r, prev);
			}
			if (ret)
				return ret;
		}
		hi = hexval(get_byte(r));
		lo = hexval(get_byte(r));
		r->pkt[r->pkt_len] = '\0';
		if (hi < 0 || lo < 0 || ((hi << 4) | lo) != sum) {
			r->bad_checksums++;
			if (!r->noack && (ret = write_all(r->fd, "-", 1)))
				return ret;
			continue;
		}
		if (!r->noack && (ret = write_all(r->fd, "+", 1)))
			return ret;
		return 0;
	}
}

int rsp_command(struct rsp *r, const char *data)
{
	int ret = rsp_send(r, data);

	return ret ? ret : rsp_recv(r);
}

int rsp_qsupported(struct rsp *r)
{
	const char *p;
	int ret = rsp_command(r, "qSupported:multiprocess+;swbreak+;hwbreak+;xmlRegisters=i386");

	if (ret)
		return ret;
	p = strstr(r->pkt, "PacketSize=");
	if (p)
		r->packet_size = strtoul(p + 11, NULL, 16);
	return 0;
}

int rsp_start_noack(struct rsp *r)
{
	int ret = rsp_command(r, "QStartNoAckMode");

	if (ret)
		return ret;
	if (strcmp(r->pkt, "OK"))
		return -EOPNOTSUPP;
	r->noack = true;
	return 0;
}

int rsp_read_memory(struct rsp *r, uint64_t addr, void *buf, size_t len)
{
	char cmd[64];
	uint8_t *out = buf;
	int ret;

	snprintf(cmd, sizeof(cmd), "m%llx,%zx", (unsigned long long)addr, len);
	ret = rsp_command(r, cmd);
	if (ret)
		return ret;
	if (r->pkt_len == 3 && r->pkt[0] == 'E')
		return -EIO;
	if (r->pkt_len < 2 * len)
		return -EPROTO;
	for (size_t i = 0; i < len; i++) {
		int hi = hexval(r->pkt[2 * i]), lo = hexval(r->pkt[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EPROTO;
		out[i] = (uint8_t)((hi << 4) | lo);
	}
	return 0;
}

int rsp_step(struct rsp *r)
{
	int ret = rsp_command(r, "s");

	/* Console output ('O' packets) may come before the stop reply. */
	while (!ret && r->pkt[0] == 'O' && r->pkt[1])
		ret = rsp_recv(r);
	if (ret)
		return ret;
	return r->pkt[0] == 'T' || r->pkt[0] == 'S' ? 0 : -EPROTO;
}
