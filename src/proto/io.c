/* SPDX-License-Identifier: MIT */
/*
 * io.c - whole-buffer reads and writes with one deadline for the lot:
 * the handshakes of both ends, every message the client sends and every
 * reply and event the server sends go through here. A peer that stops
 * reading or writing must not hold the other end forever, so every wait
 * is a poll() bounded by the caller's deadline.
 */
#include "kvmi-proto.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t kvmi_proto_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t kvmi_proto_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : kvmi_proto_now_ms() + timeout_ms;
}

int kvmi_proto_poll_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - kvmi_proto_now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int kvmi_proto_wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int r = poll(&p, 1, kvmi_proto_poll_ms(deadline));

		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int kvmi_proto_read_full(int fd, void *buf, size_t len, int64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		int err = kvmi_proto_wait_fd(fd, POLLIN, deadline);
		ssize_t n;

		if (err)
			return err;
		/* Not blocking even on a blocking socket: the deadline holds
		 * if another reader took the bytes poll() saw. */
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0 && errno == ENOTSOCK)
			n = read(fd, p, len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Drops the n bytes that went out from the front of mh's iov. */
static void advance(struct msghdr *mh, size_t n)
{
	while (mh->msg_iovlen && n >= mh->msg_iov->iov_len) {
		n -= mh->msg_iov->iov_len;
		mh->msg_iov++;
		mh->msg_iovlen--;
	}
	if (mh->msg_iovlen) {
		mh->msg_iov->iov_base = (uint8_t *)mh->msg_iov->iov_base + n;
		mh->msg_iov->iov_len -= n;
	}
}

int kvmi_proto_writev_full(int fd, struct iovec *iov, int iovcnt, int pass_fd,
			   int64_t deadline)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	bool use_write = false;

	if (pass_fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	while (mh.msg_iovlen) {
		ssize_t n;
		int err;

		if (use_write)
			n = writev(fd, mh.msg_iov, (int)mh.msg_iovlen);
		else
			n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			/* The descriptor went out with the first bytes. */
			mh.msg_control = NULL;
			mh.msg_controllen = 0;
			advance(&mh, (size_t)n);
			continue;
		}
		/* Pipes (tests, fuzzing) cannot carry a descriptor. */
		if (errno == ENOTSOCK && !use_write && !mh.msg_control) {
			use_write = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return errno == EPIPE ? -ECONNRESET : -errno;
		err = kvmi_proto_wait_fd(fd, POLLOUT, deadline);
		if (err)
			return err;
	}
	return 0;
}

int kvmi_proto_write_full(int fd, const void *buf, size_t len, int64_t deadline)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return kvmi_proto_writev_full(fd, &iov, 1, -1, deadline);
}
