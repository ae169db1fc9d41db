/* Client library: socket addresses, listening, and timed whole-buffer I/O.
 *
 * The introspection tool is the listening side; the VMM connects.  Addresses
 * are "unix:PATH", "unix:@NAME" (abstract namespace) and "vsock:CID:PORT"
 * (CID may be "any" or "-1").  Everything returns 0 or -errno. */
#include "internal.h"
#include "../src/common/spin_wait.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

int64_t kc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @deadline (a kc_now_ms() value); -1 = no deadline. */
static int remaining_ms(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - kc_now_ms();
	if (left < 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

int64_t kc_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : kc_now_ms() + timeout_ms;
}


static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int kc_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	if (!addr)
		return -EINVAL;

	if (!strncmp(addr, "unix:", 5)) {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;
		const char *path = addr + 5;
		size_t n = strlen(path);

		if (n == 0 || n >= sizeof(sun->sun_path))
			return -ENAMETOOLONG;
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, path, n);
		if (path[0] == '@') {
			/* Abstract namespace: leading NUL, length without terminator. */
			sun->sun_path[0] = '\0';
			*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		} else {
			*len = (socklen_t)sizeof(*sun);
		}
		return 0;
	}

	if (!strncmp(addr, "vsock:", 6)) {
		struct sockaddr_vm *svm = (struct sockaddr_vm *)ss;
		char buf[64];
		char *colon;
		uint32_t cid, port;

		if (strlen(addr + 6) >= sizeof(buf))
			return -EINVAL;
		strcpy(buf, addr + 6);
		colon = strchr(buf, ':');
		if (!colon)
			return -EINVAL;
		*colon = '\0';
		if (!strcmp(buf, "any") || !strcmp(buf, "-1") || !buf[0])
			cid = VMADDR_CID_ANY;
		else if (parse_u32(buf, &cid))
			return -EINVAL;
		if (parse_u32(colon + 1, &port) || port == 0)
			return -EINVAL;
		svm->svm_family = AF_VSOCK;
		svm->svm_cid = cid;
		svm->svm_port = port;
		*len = (socklen_t)sizeof(*svm);
		return 0;
	}
	return -EINVAL;
}

int kc_listen(const char *addr, int *out_fd)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, err;

	err = kc_parse_addr(addr, &ss, &len);
	if (err)
		return err;

	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;

	if (ss.ss_family == AF_UNIX) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
		struct stat st;

		/* Replace a stale socket left by an earlier run, but neither a
		 * live one (another tool is listening) nor any other file. */
		if (sun->sun_path[0] && !lstat(sun->sun_path, &st) && S_ISSOCK(st.st_mode)) {
			int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

			if (probe >= 0 && !connect(probe, (struct sockaddr *)&ss, len)) {
				close(probe);
				close(fd);
				return -EADDRINUSE;
			}
			if (probe >= 0)
				close(probe);
			unlink(sun->sun_path);
		}
	}

	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
		err = -errno;
		close(fd);
		return err;
	}
	*out_fd = fd;
	return 0;
}

int kc_accept(int lfd, int timeout_ms, int *out_fd)
{
	struct pollfd pfd = { .fd = lfd, .events = POLLIN };
	int fd, r;

	do {
		r = poll(&pfd, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	*out_fd = fd;
	return 0;
}

/* Wait until @fd is readable/writable or the deadline passes. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	for (;;) {
		r = poll(&pfd, 1, remaining_ms(deadline));
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int kc_read_full(int fd, void *buf, size_t len, int64_t deadline)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n;
		int err = wait_fd(fd, POLLIN, deadline);

		if (err)
			return err;
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void kc_take_fds(const struct msghdr *mh, int *passed, unsigned int *extra)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
		size_t nfds;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfds; i++) {
			int got;

			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*passed < 0) {
				*passed = got;
			} else {
				close(got);
				(*extra)++;
			}
		}
	}
	/* The kernel dropped what did not fit. */
	if (mh->msg_flags & MSG_CTRUNC)
		(*extra)++;
}

int kc_read_full_fds(int fd, void *buf, size_t len, int64_t deadline, int *passed,
		     unsigned int *extra)
{
	uint8_t *p = buf;

	while (len) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(4 * sizeof(int))];
		} ctl;
		struct iovec iov = { .iov_base = p, .iov_len = len };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
		};
		ssize_t n;
		int err = wait_fd(fd, POLLIN, deadline);

		if (err)
			return err;
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		/* Descriptors first: they are ours now even on EOF. */
		kc_take_fds(&mh, passed, extra);
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int kc_skip(int fd, size_t len, int64_t deadline)
{
	uint8_t scratch[512];

	while (len) {
		size_t chunk = len < sizeof(scratch) ? len : sizeof(scratch);
		int err = kc_read_full(fd, scratch, chunk, deadline);

		if (err)
			return err;
		len -= chunk;
	}
	return 0;
}

int kc_writev_full(int fd, struct iovec *iov, int iovcnt, int64_t deadline)
{
	while (iovcnt > 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			int err;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return errno == EPIPE ? -ECONNRESET : -errno;
			err = wait_fd(fd, POLLOUT, deadline);
			if (err)
				return err;
			continue;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int kc_write_full(int fd, const void *buf, size_t len, int64_t deadline)
{
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };

	return kc_writev_full(fd, &iov, 1, deadline);
}
