/* Client library: the listening socket and (optionally) its accept thread.
 *
 * kvmi_listener_accept() is the synchronous form: one VMM connection, its
 * handshake, one new domain.  kvmi_listener_start() runs the same in a
 * background thread and hands each domain to cfg.on_connect. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct kvmi_listener {
	int fd;
	int stop_pipe[2];
	struct kvmi_config cfg;
	struct kvmi_addr addr;
	dev_t dev;                      /* our unix socket file, to unlink only it */
	ino_t ino;
	bool thread_started;
	pthread_t thread;
};

/* Replace a stale socket left by an earlier run, but neither a live one
 * (another tool is listening) nor any other file. */
static int clear_stale_socket(const struct sockaddr_storage *ss, socklen_t len)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
	struct stat st;
	int probe;

	if (!sun->sun_path[0] || lstat(sun->sun_path, &st) || !S_ISSOCK(st.st_mode))
		return 0;
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && !connect(probe, (const struct sockaddr *)ss, len)) {
		close(probe);
		return -EADDRINUSE;
	}
	if (probe >= 0)
		close(probe);
	unlink(sun->sun_path);
	return 0;
}

static int listen_on(const struct kvmi_addr *addr, int *out_fd)
{
	struct sockaddr_storage ss;
	socklen_t len = kvmi_proto_addr_sockaddr(addr, &ss);
	int fd, err;

	if (!len)
		return -EINVAL;
	fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = addr->family == AF_UNIX ? clear_stale_socket(&ss, len) : 0;
	if (!err && (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)))
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	*out_fd = fd;
	return 0;
}

static int accept_fd(int lfd, int timeout_ms, int *out_fd)
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

/* A unix socket with a name in the file system. */
static bool is_path(const struct kvmi_addr *a)
{
	return a->family == AF_UNIX && a->path[0] != '@';
}

int kvmi_listener_open(const char *addr, const struct kvmi_config *cfg,
		       struct kvmi_listener **out)
{
	struct kvmi_listener *l;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->fd = -1;
	l->stop_pipe[0] = l->stop_pipe[1] = -1;
	err = kc_config_copy(&l->cfg, cfg);
	if (!err)
		err = kvmi_proto_addr_parse(addr, KVMI_PROTO_ADDR_LISTEN, &l->addr);
	if (!err)
		err = listen_on(&l->addr, &l->fd);
	if (!err && pipe2(l->stop_pipe, O_CLOEXEC))
		err = -errno;
	if (!err && is_path(&l->addr)) {
		struct stat st;

		if (!stat(l->addr.path, &st)) {
			l->dev = st.st_dev;
			l->ino = st.st_ino;
		}
	}
	if (err) {
		kvmi_listener_close(l);
		return err;
	}
	*out = l;
	return 0;
}

int kvmi_listener_fd(const struct kvmi_listener *l)
{
	return l->fd;
}

static int accept_one(struct kvmi_listener *l, int timeout_ms, struct kvmi_dom **out)
{
	struct pollfd pfd[2] = {
		{ .fd = l->fd, .events = POLLIN },
		{ .fd = l->stop_pipe[0], .events = POLLIN },
	};
	struct kvmi_dom *dom;
	int fd = -1, r, err;

	*out = NULL;
	do {
		r = poll(pfd, 2, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	if (pfd[1].revents)
		return -ECANCELED;

	err = accept_fd(l->fd, 0, &fd);
	if (err)
		return err;
	err = kvmi_dom_open_fd(fd, &l->cfg, &dom);
	if (err)
		return err;
	*out = dom;
	return 0;
}

int kvmi_listener_accept(struct kvmi_listener *l, int timeout_ms, struct kvmi_dom **out)
{
	struct kvmi_dom *dom;
	int err;

	if (!l || !out)
		return -EINVAL;
	err = accept_one(l, timeout_ms, &dom);
	if (err)
		return err;
	if (l->cfg.on_connect && l->cfg.on_connect(dom, l->cfg.ctx)) {
		kvmi_dom_close(dom);
		return -ECONNREFUSED;
	}
	*out = dom;
	return 0;
}

static void *accept_main(void *arg)
{
	struct kvmi_listener *l = arg;

	for (;;) {
		struct kvmi_dom *dom;
		int err = accept_one(l, -1, &dom);

		if (err == -ECANCELED)
			break;
		if (err) {
			/* A failed handshake only loses that one connection. */
			kc_log(&l->cfg, KVMI_LOG_WARNING, "connection rejected: %s", strerror(-err));
			continue;
		}
		if (l->cfg.on_connect(dom, l->cfg.ctx))
			kvmi_dom_close(dom);
	}
	return NULL;
}

int kvmi_listener_start(struct kvmi_listener *l)
{
	int err;

	if (!l || !l->cfg.on_connect || l->thread_started)
		return -EINVAL;
	err = pthread_create(&l->thread, NULL, accept_main, l);
	if (err)
		return -err;
	l->thread_started = true;
	return 0;
}

void kvmi_listener_close(struct kvmi_listener *l)
{
	if (!l)
		return;
	if (l->thread_started) {
		char c = 1;

		if (write(l->stop_pipe[1], &c, 1) != 1)
			shutdown(l->fd, SHUT_RDWR);
		pthread_join(l->thread, NULL);
	}
	if (l->fd >= 0) {
		struct stat st;

		close(l->fd);
		/* Only if the path is still ours (a newer listener may own it). */
		if (is_path(&l->addr) && l->ino && !stat(l->addr.path, &st) &&
		    st.st_dev == l->dev && st.st_ino == l->ino)
			unlink(l->addr.path);
	}
	if (l->stop_pipe[0] >= 0)
		close(l->stop_pipe[0]);
	if (l->stop_pipe[1] >= 0)
		close(l->stop_pipe[1]);
	free(l);
}
