/* SPDX-License-Identifier: MIT */
/*
 * conn.c - the connection to the tool: address parsing (unix:PATH,
 * vsock:CID:PORT), connecting, deadline-bounded reads and writes, and the
 * reconnect loop (the VMM initiates; when the tool goes away it connects
 * again with backoff, and the guest keeps running meanwhile).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

int64_t ks_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline (-1: none) passes. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int timeout = -1, n;

	if (deadline_ms >= 0) {
		int64_t left = deadline_ms - ks_now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		timeout = left > INT32_MAX ? INT32_MAX : (int)left;
	}
	do
		n = poll(&p, 1, timeout);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

int ks_read_full(int fd, void *buf, size_t len, int64_t deadline_ms)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n;
		int err;

		if (deadline_ms >= 0) {
			err = wait_fd(fd, POLLIN, deadline_ms);
			if (err)
				return err;
		}
		n = read(fd, p, len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				err = wait_fd(fd, POLLIN, deadline_ms);
				if (err)
					return err;
				continue;
			}
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ks_write_full(int fd, const void *buf, size_t len, int64_t deadline_ms)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == ENOTSOCK)
			n = write(fd, p, len);
		if (n < 0) {
			int err;

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			err = wait_fd(fd, POLLOUT, deadline_ms);
			if (err)
				return err;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int kvmi_srv_addr_parse(const char *spec, struct kvmi_addr *addr)
{
	memset(addr, 0, sizeof(*addr));
	if (!strncmp(spec, "unix:", 5)) {
		size_t n = strlen(spec + 5);

		if (!n || n >= sizeof(addr->path))
			return -EINVAL;
		addr->family = AF_UNIX;
		memcpy(addr->path, spec + 5, n + 1);
		return 0;
	}
	if (!strncmp(spec, "vsock:", 6)) {
		char tmp[64];
		char *colon;

		if (strlen(spec + 6) >= sizeof(tmp))
			return -EINVAL;
		strcpy(tmp, spec + 6);
		colon = strchr(tmp, ':');
		if (!colon)
			return -EINVAL;
		*colon = '\0';
		if (parse_u32(tmp, &addr->cid) || parse_u32(colon + 1, &addr->port))
			return -EINVAL;
		addr->family = AF_VSOCK;
		return 0;
	}
	return -EINVAL;
}

int kvmi_srv_addr_connect(const struct kvmi_addr *addr)
{
	struct sockaddr_un un;
	struct sockaddr_vm vm;
	struct sockaddr *sa;
	socklen_t len;
	int fd;

	if (addr->family == AF_UNIX) {
		memset(&un, 0, sizeof(un));
		un.sun_family = AF_UNIX;
		memcpy(un.sun_path, addr->path, sizeof(addr->path));
		sa = (struct sockaddr *)&un;
		len = sizeof(un);
	} else if (addr->family == AF_VSOCK) {
		memset(&vm, 0, sizeof(vm));
		vm.svm_family = AF_VSOCK;
		vm.svm_cid = addr->cid;
		vm.svm_port = addr->port;
		sa = (struct sockaddr *)&vm;
		len = sizeof(vm);
	} else {
		return -EINVAL;
	}
	fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, sa, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int kvmi_server_session(struct kvmi_server *srv, int fd)
{
	uint8_t hash[KVMI_COOKIE_HASH_SIZE];
	struct kvmi_handshake_params p;
	int err;

	memset(&p, 0, sizeof(p));
	memcpy(p.uuid, srv->cfg.uuid, sizeof(p.uuid));
	memcpy(p.name, srv->cfg.name, sizeof(p.name));
	p.name[sizeof(p.name) - 1] = '\0';
	p.start_time_ms = srv->cfg.start_time_ms;
	p.max_gpa = srv->cfg.max_gpa;
	p.timeout_ms = srv->cfg.handshake_timeout_ms;
	if (srv->cfg.key) {
		err = srv->cfg.hash(srv->cfg.key, srv->cfg.key_len, hash);
		if (err)
			return err < 0 ? err : -EINVAL;
		p.cookie_hash = hash;
	}

	pthread_mutex_lock(&srv->lock);
	if (srv->stopping) {
		pthread_mutex_unlock(&srv->lock);
		return 0;
	}
	srv->hs_fd = fd;
	pthread_mutex_unlock(&srv->lock);
	err = kvmi_srv_handshake(fd, &p, NULL);
	pthread_mutex_lock(&srv->lock);
	srv->hs_fd = -1;
	pthread_mutex_unlock(&srv->lock);
	if (err) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "handshake failed: %s",
			 err == -EACCES ? "the tool's cookie hash does not match the key" :
			 strerror(-err));
		return err;
	}
	if (!srv->cfg.key)
		ks_log(srv, KVMI_SRV_LOG_WARN, "no key configured: the tool is not authenticated");
	ks_log(srv, KVMI_SRV_LOG_INFO, "introspection tool connected");
	err = kvmi_server_serve(srv, fd, fd);
	ks_log(srv, KVMI_SRV_LOG_INFO, "introspection tool disconnected (%s)",
		 err ? strerror(-err) : "closed");
	return err;
}

static bool stopping(struct kvmi_server *srv)
{
	bool s;

	pthread_mutex_lock(&srv->lock);
	s = srv->stopping;
	pthread_mutex_unlock(&srv->lock);
	return s;
}

int kvmi_server_run(struct kvmi_server *srv, const struct kvmi_addr *addr)
{
	int backoff = 100, last_err = 0;

	while (!stopping(srv)) {
		struct pollfd p = { .fd = srv->stop_pipe[0], .events = POLLIN };
		int fd = kvmi_srv_addr_connect(addr);

		if (fd >= 0) {
			uint64_t before = kvmi_server_sessions(srv);

			kvmi_server_session(srv, fd);
			close(fd);
			if (kvmi_server_sessions(srv) != before)
				backoff = 100;
			last_err = 0;
		} else if (fd != last_err) {
			ks_log(srv, KVMI_SRV_LOG_INFO, "cannot reach the introspection tool (%s); retrying",
				 strerror(-fd));
			last_err = fd;
		}
		if (stopping(srv))
			break;
		if (poll(&p, 1, backoff) < 0 && errno != EINTR)
			return -errno;
		if (backoff < 5000)
			backoff *= 2;
	}
	return 0;
}
