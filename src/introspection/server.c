/* SPDX-License-Identifier: MIT */
/*
 * server.c - the server's lifetime and sessions: creating and destroying
 * it, the state of the connection (connected, dropped, stopping), the
 * start and end of a session, and the serve loop that takes the tool's
 * messages one at a time (stream.c), dispatches them (dispatch.c) and
 * gathers the replies to a batch (send.c).
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <poll.h>
#include <sys/eventfd.h>

void ks_log(struct kvmi_server *srv, enum kvmi_srv_log_level lvl, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (!srv->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srv->cfg.log(srv->cfg.log_ctx, lvl, msg);
}

int kvmi_srv_errno_to_wire(int err)
{
	switch (err) {
	case 0:
	case -KVM_ENOSYS:
	case -KVM_EFAULT:
	case -KVM_E2BIG:
	case -KVM_EPERM:
	case -KVM_EOPNOTSUPP:
	case -KVM_EAGAIN:
	case -KVM_EBUSY:
	case -KVM_EINVAL:
	case -KVM_ENOENT:
	case -KVM_ENOMEM:
		return err;
	case -ENOSYS:
		return -KVM_ENOSYS;
	case -EIO:
		return -KVM_EFAULT;
	default:
		return -KVM_EINVAL;
	}
}

int kvmi_server_create(const struct kvmi_server_config *cfg, struct kvmi_server **out)
{
	struct kvmi_server *srv;
	unsigned i;
	int err;

	if (!cfg || !cfg->ops || !cfg->ops->vcpu_count || !cfg->max_vcpus ||
	    cfg->max_vcpus > UINT16_MAX + 1u)
		return -EINVAL;
	/* Jobs that run on other threads need a wait that runs them too. */
	if (cfg->ops->queue_vcpu_job && !cfg->ops->wait_reply)
		return -EINVAL;
	if (cfg->ops->wait_reply && !cfg->ops->wake_vcpu)
		return -EINVAL;

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->cfg = *cfg;
	srv->ops = cfg->ops;
	srv->b = cfg->backend;
	if (cfg->policy)
		srv->policy = *cfg->policy;
	else
		kvmi_policy_allow_all(&srv->policy);
	if (srv->cfg.handshake_timeout_ms <= 0)
		srv->cfg.handshake_timeout_ms = KVMI_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	if (srv->cfg.send_timeout_ms <= 0)
		srv->cfg.send_timeout_ms = KVMI_DEFAULT_SEND_TIMEOUT_MS;
	if (!srv->cfg.hash)
		srv->cfg.hash = kvmi_srv_cookie_sha1;
	srv->rfd = srv->wfd = srv->hs_fd = -1;
	srv->replies_enabled = true;

	srv->vcpus = calloc(cfg->max_vcpus, sizeof(*srv->vcpus));
	if (!srv->vcpus) {
		err = -ENOMEM;
		goto err_free;
	}
	if (pipe2(srv->stop_pipe, O_CLOEXEC) < 0) {
		err = -errno;
		goto err_vcpus;
	}
	srv->out = malloc(KS_OUT_SIZE);
	srv->kick_fd = srv->out ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
	if (srv->kick_fd < 0) {
		err = srv->out ? -errno : -ENOMEM;
		free(srv->out);
		close(srv->stop_pipe[0]);
		close(srv->stop_pipe[1]);
		goto err_vcpus;
	}
	kvmi_mutex_init(&srv->rx_lock, KVMI_SRV_RANK_RX, "server rx_lock");
	kvmi_mutex_init(&srv->lock, KVMI_SRV_RANK_LOCK, "server lock");
	kvmi_mutex_init(&srv->send_lock, KVMI_SRV_RANK_SEND, "server send_lock");
	pthread_cond_init(&srv->cond, NULL);
	for (i = 0; i < cfg->max_vcpus; i++)
		pthread_cond_init(&srv->vcpus[i].cond, NULL);
	*out = srv;
	return 0;

err_vcpus:
	free(srv->vcpus);
err_free:
	free(srv);
	return err;
}

void kvmi_server_destroy(struct kvmi_server *srv)
{
	unsigned i;

	if (!srv)
		return;
	for (i = 0; i < srv->cfg.max_vcpus; i++)
		pthread_cond_destroy(&srv->vcpus[i].cond);
	pthread_cond_destroy(&srv->cond);
	kvmi_mutex_destroy(&srv->send_lock);
	kvmi_mutex_destroy(&srv->lock);
	kvmi_mutex_destroy(&srv->rx_lock);
	close(srv->kick_fd);
	free(srv->out);
	close(srv->stop_pipe[0]);
	close(srv->stop_pipe[1]);
	free(srv->vcpus);
	free(srv);
}

bool kvmi_server_live(struct kvmi_server *srv)
{
	return atomic_load_explicit(&srv->live, memory_order_relaxed);
}

bool kvmi_server_connected(struct kvmi_server *srv)
{
	bool c;

	kvmi_mutex_lock(&srv->lock);
	c = srv->connected;
	kvmi_mutex_unlock(&srv->lock);
	return c;
}

uint64_t kvmi_server_sessions(struct kvmi_server *srv)
{
	uint64_t n;

	kvmi_mutex_lock(&srv->lock);
	n = srv->nr_sessions;
	kvmi_mutex_unlock(&srv->lock);
	return n;
}

/* Shut the socket down so the reader and any blocked writer return. */
void ks_drop_connection(struct kvmi_server *srv, uint64_t session)
{
	kvmi_mutex_lock(&srv->lock);
	if (!session && srv->hs_fd >= 0)
		shutdown(srv->hs_fd, SHUT_RDWR);
	if (srv->connected && (!session || session == srv->session)) {
		srv->dropped = true;
		shutdown(srv->rfd, SHUT_RDWR);
		if (srv->wfd != srv->rfd)
			shutdown(srv->wfd, SHUT_RDWR);
	}
	kvmi_mutex_unlock(&srv->lock);
}

bool ks_session_live_locked(struct kvmi_server *srv, uint64_t session)
{
	return srv->connected && !srv->dropped && srv->session == session;
}

void kvmi_server_stop(struct kvmi_server *srv)
{
	static const char c = 's';
	ssize_t n;

	kvmi_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_cond_broadcast(&srv->cond);
	kvmi_mutex_unlock(&srv->lock);
	ks_drop_connection(srv, 0);
	n = write(srv->stop_pipe[1], &c, 1);
	(void)n;
}

/* ---- session -------------------------------------------------------- */

static void session_begin(struct kvmi_server *srv, int rfd, int wfd)
{
	int type;
	socklen_t len = sizeof(type);
	unsigned i;

	kvmi_mutex_lock(&srv->rx_lock);
	srv->in_start = srv->in_end = 0;
	srv->rx_proto_error = false;
	srv->rx_socket = getsockopt(rfd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
	kvmi_mutex_unlock(&srv->rx_lock);

	kvmi_mutex_lock(&srv->lock);
	srv->session = ++srv->nr_sessions;
	srv->connected = true;
	atomic_store(&srv->live, true);
	srv->dropped = false;
	srv->rfd = rfd;
	srv->wfd = wfd;
	srv->ev_seq = 0;
	srv->replies_enabled = true;
	srv->error_events = false;
	atomic_store(&srv->vm_events, 0);
	for (i = 0; i < srv->cfg.max_vcpus; i++) {
		struct kvmi_vcpu_state *v = &srv->vcpus[i];

		v->jobs = 0;
		v->pauses = 0;
		atomic_store(&v->events, 0);
	}
	kvmi_mutex_unlock(&srv->lock);
	if (srv->ops->session_start)
		srv->ops->session_start(srv->b);
}

static void session_end(struct kvmi_server *srv)
{
	kvmi_mutex_lock(&srv->lock);
	if (srv->connected) {
		shutdown(srv->rfd, SHUT_RDWR);
		if (srv->wfd != srv->rfd)
			shutdown(srv->wfd, SHUT_RDWR);
	}
	srv->connected = false;
	atomic_store(&srv->live, false);
	/* No new job starts now (the session is not live); wait for those
	 * that started before, or one could finish after session_end(). */
	while (srv->jobs_running)
		kvmi_cond_wait(&srv->cond, &srv->lock);
	kvmi_mutex_unlock(&srv->lock);

	/* Wait for a writer that still holds the old fd. */
	kvmi_mutex_lock(&srv->send_lock);
	kvmi_mutex_unlock(&srv->send_lock);

	ks_events_session_end(srv);
	if (srv->ops->session_end)
		srv->ops->session_end(srv->b);

	kvmi_mutex_lock(&srv->lock);
	srv->rfd = srv->wfd = -1;
	pthread_cond_broadcast(&srv->cond);
	kvmi_mutex_unlock(&srv->lock);
}
/* rx_lock held: is the next message, already read whole, a PAUSE_VCPU? */
static bool next_is_pause(struct kvmi_server *srv)
{
	struct kvmi_msg_hdr next;
	const uint8_t *payload;

	return ks_rx_head(srv, &next, &payload) && next.id == KVMI_PAUSE_VCPU;
}

int kvmi_server_serve(struct kvmi_server *srv, int rfd, int wfd)
{
	bool corked = false;     /* this thread's replies are being gathered */
	int ret = 0;

	session_begin(srv, rfd, wfd);
	kvmi_mutex_lock(&srv->lock);
	if (srv->stopping) {
		shutdown(rfd, SHUT_RDWR);
		if (wfd != rfd)
			shutdown(wfd, SHUT_RDWR);
	}
	kvmi_mutex_unlock(&srv->lock);
	for (;;) {
		struct kvmi_msg_hdr hdr;
		bool more = false, flush;
		int err;

		err = ks_next_message(srv, rfd, &hdr, &more);
		if (err <= 0) {
			/* EOF between messages is the tool's normal goodbye. */
			ret = err == -ECONNRESET ? 0 : err;
			break;
		}
		/* Replies to a batch of requests go out together. */
		if (more && !corked) {
			ks_set_cork(srv, true);
			corked = true;
		}
		err = ks_dispatch(srv, &hdr, srv->rbuf);
		/* held PAUSE_VCPU replies wait for nothing but more PAUSE_VCPU */
		flush = srv->nr_pause_replies && !next_is_pause(srv);
		kvmi_mutex_unlock(&srv->rx_lock);
		if (flush) {
			int ferr = ks_pause_flush(srv);

			if (!err)
				err = ferr;
		}
		if (!more && corked) {
			ks_set_cork(srv, false);
			corked = false;
		}
		if (err == KVMI_CLOSE) {
			ret = -EPROTO;
			break;
		}
		if (err < 0 && err != -ENOTCONN) {
			ret = err;
			break;
		}
		/* Already-buffered requests of a dropped tool are not run. */
		kvmi_mutex_lock(&srv->lock);
		err = srv->dropped;
		kvmi_mutex_unlock(&srv->lock);
		if (err)
			break;
	}
	ks_pause_flush(srv);
	ks_set_cork(srv, false);
	session_end(srv);
	return ret;
}
