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
	struct sockaddr_storage addr;
	dev_t dev;                      /* our unix socket file, to unlink only it */
	ino_t ino;
	bool thread_started;
	pthread_t thread;
};

int kvmi_listener_open(const char *addr, const struct kvmi_config *cfg,
		       struct kvmi_listener **out)
{
	struct kvmi_listener *l;
	socklen_t len;
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
		err = kc_parse_addr(addr, &l->addr, &len);
	if (!err)
		err = kc_listen(addr, &l->fd);
	if (!err && pipe2(l->stop_pipe, O_CLOEXEC))
		err = -errno;
	if (!err) {
		struct sockaddr_un *sun = (struct sockaddr_un *)&l->addr;
		struct stat st;

		if (sun->sun_family == AF_UNIX && sun->sun_path[0] && !stat(sun->sun_path, &st)) {
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
	int fd, r, err;

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

	err = kc_accept(l->fd, 0, &fd);
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
		struct sockaddr_un *sun = (struct sockaddr_un *)&l->addr;

		struct stat st;

		close(l->fd);
		/* Only if the path is still ours (a newer listener may own it). */
		if (sun->sun_family == AF_UNIX && sun->sun_path[0] && l->ino &&
		    !stat(sun->sun_path, &st) && st.st_dev == l->dev && st.st_ino == l->ino)
			unlink(sun->sun_path);
	}
	if (l->stop_pipe[0] >= 0)
		close(l->stop_pipe[0]);
	if (l->stop_pipe[1] >= 0)
		close(l->stop_pipe[1]);
	free(l);
}
