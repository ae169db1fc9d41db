/* SPDX-License-Identifier: MIT */
/*
 * server.c - server lifetime, framing, dispatch and replies.
 *
 * Owns: reading one message at a time (header first, size capped at
 * KVMI_MSG_SIZE before the payload is read), the generic checks every
 * command goes through (unknown id, policy, backend support, vCPU header,
 * size), routing to the introspection thread or a vCPU job, and the
 * thread-safe writer every reply and event goes through.
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

#include "../common/spin_wait.h"

/* Gathered replies of one batch of pipelined requests (see srv->out). */
#define OUT_SIZE (256 * 1024)

struct kvmi_vcpu_job {
	struct kvmi_cmd cmd;
	size_t size;
	uint8_t req[];
};

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
	srv->out = malloc(OUT_SIZE);
	srv->kick_fd = srv->out ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
	if (srv->kick_fd < 0) {
		err = srv->out ? -errno : -ENOMEM;
		free(srv->out);
		close(srv->stop_pipe[0]);
		close(srv->stop_pipe[1]);
		goto err_vcpus;
	}
	pthread_mutex_init(&srv->rx_lock, NULL);
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->send_lock, NULL);
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
	pthread_mutex_destroy(&srv->send_lock);
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->rx_lock);
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

	pthread_mutex_lock(&srv->lock);
	c = srv->connected;
	pthread_mutex_unlock(&srv->lock);
	return c;
}

uint64_t kvmi_server_sessions(struct kvmi_server *srv)
{
	uint64_t n;

	pthread_mutex_lock(&srv->lock);
	n = srv->nr_sessions;
	pthread_mutex_unlock(&srv->lock);
	return n;
}

/* Shut the socket down so the reader and any blocked writer return. */
void ks_drop_connection(struct kvmi_server *srv, uint64_t session)
{
	pthread_mutex_lock(&srv->lock);
	if (!session && srv->hs_fd >= 0)
		shutdown(srv->hs_fd, SHUT_RDWR);
	if (srv->connected && (!session || session == srv->session)) {
		srv->dropped = true;
		shutdown(srv->rfd, SHUT_RDWR);
		if (srv->wfd != srv->rfd)
			shutdown(srv->wfd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&srv->lock);
}

bool ks_session_live_locked(struct kvmi_server *srv, uint64_t session)
{
	return srv->connected && !srv->dropped && srv->session == session;
}

void kvmi_server_stop(struct kvmi_server *srv)
{
	static const char c = 's';
	ssize_t n;

	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	ks_drop_connection(srv, 0);
	n = write(srv->stop_pipe[1], &c, 1);
	(void)n;
}

/* pass_fd >= 0: attached to the first bytes that go out. */
static int write_iov(struct kvmi_server *srv, int fd, struct iovec *iov, int cnt, int pass_fd)
{
	int64_t deadline = ks_now_ms() + srv->cfg.send_timeout_ms;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
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

		if (use_write)
			n = writev(fd, mh.msg_iov, (int)mh.msg_iovlen);
		else
			n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOTSOCK && !use_write && !mh.msg_control) {
				use_write = true;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };
				int64_t left = deadline - ks_now_ms();

				if (left <= 0 || poll(&p, 1, (int)left) == 0)
					return -ETIMEDOUT;
				continue;
			}
			return -errno;
		}
		/* The descriptor went out with the first bytes. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		while (n > 0 && mh.msg_iovlen) {
			if ((size_t)n >= mh.msg_iov->iov_len) {
				n -= (ssize_t)mh.msg_iov->iov_len;
				mh.msg_iov++;
				mh.msg_iovlen--;
			} else {
				mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + n;
				mh.msg_iov->iov_len -= (size_t)n;
				n = 0;
			}
		}
	}
	return 0;
}

/* send_lock held: writes the gathered replies. */
static int flush_out_locked(struct kvmi_server *srv, int fd)
{
	struct iovec iov = { .iov_base = srv->out, .iov_len = srv->out_len };
	int err;

	if (!srv->out_len)
		return 0;
	err = write_iov(srv, fd, &iov, 1, -1);
	srv->out_len = 0;
	return err;
}

/* Introspection thread: gather replies (on) or write them now (off). */
static void set_cork(struct kvmi_server *srv, bool on)
{
	uint64_t session;
	int fd, err = 0;

	pthread_mutex_lock(&srv->send_lock);
	srv->corked = on;
	srv->cork_thread = pthread_self();
	if (!on && srv->out_len) {
		pthread_mutex_lock(&srv->lock);
		fd = srv->connected ? srv->wfd : -1;
		session = srv->session;
		pthread_mutex_unlock(&srv->lock);
		if (fd >= 0)
			err = flush_out_locked(srv, fd);
		srv->out_len = 0;
	}
	pthread_mutex_unlock(&srv->send_lock);
	if (err) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "send failed (%s); dropping the tool", strerror(-err));
		ks_drop_connection(srv, session);
	}
}

static int send_msg(struct kvmi_server *srv, uint64_t session, const struct kvmi_msg_hdr *hdr,
		    const void *p1, size_t l1, const void *p2, size_t l2, int pass_fd)
{
	size_t total = sizeof(*hdr) + l1 + l2;
	struct iovec iov[3];
	int cnt = 0, fd, err;

	iov[cnt].iov_base = (void *)hdr;
	iov[cnt++].iov_len = sizeof(*hdr);
	if (l1) {
		iov[cnt].iov_base = (void *)p1;
		iov[cnt++].iov_len = l1;
	}
	if (l2) {
		iov[cnt].iov_base = (void *)p2;
		iov[cnt++].iov_len = l2;
	}

	pthread_mutex_lock(&srv->send_lock);
	pthread_mutex_lock(&srv->lock);
	if (!srv->connected || session != srv->session) {
		pthread_mutex_unlock(&srv->lock);
		pthread_mutex_unlock(&srv->send_lock);
		return -ENOTCONN;
	}
	fd = srv->wfd;
	pthread_mutex_unlock(&srv->lock);
	if (srv->corked && pass_fd < 0 && pthread_equal(srv->cork_thread, pthread_self())) {
		err = 0;
		if (srv->out_len + total > OUT_SIZE)
			err = flush_out_locked(srv, fd);
		if (!err) {
			memcpy(srv->out + srv->out_len, hdr, sizeof(*hdr));
			if (l1)
				memcpy(srv->out + srv->out_len + sizeof(*hdr), p1, l1);
			if (l2)
				memcpy(srv->out + srv->out_len + sizeof(*hdr) + l1, p2, l2);
			srv->out_len += total;
		}
	} else {
		/* Whatever was gathered goes first: the wire keeps the order
		 * in which messages were made. */
		err = flush_out_locked(srv, fd);
		if (!err)
			err = write_iov(srv, fd, iov, cnt, pass_fd);
	}
	pthread_mutex_unlock(&srv->send_lock);
	if (err) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "send failed (%s); dropping the tool", strerror(-err));
		ks_drop_connection(srv, session);
	}
	return err;
}

int ks_send_msg(struct kvmi_server *srv, uint64_t session, const struct kvmi_msg_hdr *hdr,
		  const void *p1, size_t l1, const void *p2, size_t l2)
{
	return send_msg(srv, session, hdr, p1, l1, p2, l2, -1);
}

bool ks_conn_is_unix(struct kvmi_server *srv)
{
	int fds[2], dom;
	socklen_t len;

	pthread_mutex_lock(&srv->lock);
	fds[0] = srv->connected ? srv->rfd : -1;
	fds[1] = srv->connected ? srv->wfd : -1;
	pthread_mutex_unlock(&srv->lock);
	for (int i = 0; i < 2; i++) {
		len = sizeof(dom);
		if (fds[i] < 0 || getsockopt(fds[i], SOL_SOCKET, SO_DOMAIN, &dom, &len) < 0 ||
		    dom != AF_UNIX)
			return false;
	}
	return true;
}

int ks_reply_fd(struct kvmi_server *srv, const struct kvmi_reply_ctx *ctx,
		const void *data, size_t len, int fd)
{
	struct kvmi_error_code ec = { .err = 0, .padding = 0 };
	struct kvmi_msg_hdr hdr;

	/* Data replies with replies off never get this far (dispatch). */
	if (!ctx->enabled || sizeof(ec) + len > UINT16_MAX) {
		ks_drop_connection(srv, ctx->session);
		return -EPROTO;
	}
	hdr.id = ctx->id;
	hdr.seq = ctx->seq;
	hdr.size = (uint16_t)(sizeof(ec) + len);
	return send_msg(srv, ctx->session, &hdr, &ec, sizeof(ec), data, len, fd);
}

int ks_reply(struct kvmi_server *srv, const struct kvmi_reply_ctx *ctx, int err,
	       const void *data, size_t len)
{
	struct kvmi_error_code ec = { .err = err, .padding = 0 };
	struct kvmi_msg_hdr hdr;

	if (err)
		len = 0;
	if (!ctx->enabled) {
		if (err && ctx->error_event)
			return ks_send_cmd_error(srv, ctx, err);
		if (!err && len) {
			/* Decode-time checks keep data replies from getting
			 * here; if one does, the tool cannot stay in sync. */
			ks_drop_connection(srv, ctx->session);
			return -EPROTO;
		}
		return 0;
	}
	if (sizeof(ec) + len > UINT16_MAX) {
		ec.err = -KVM_ENOMEM;
		len = 0;
	}
	hdr.id = ctx->id;
	hdr.seq = ctx->seq;
	hdr.size = (uint16_t)(sizeof(ec) + len);
	return ks_send_msg(srv, ctx->session, &hdr, &ec, sizeof(ec), data, len);
}

/* ---- vCPU jobs ------------------------------------------------------ */

static void run_handler(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	int err = cmd->desc->handle(cmd);

	if (err == KVMI_CLOSE) {
		ks_drop_connection(srv, cmd->rctx.session);
		return;
	}
	if (err)
		ks_reply(srv, &cmd->rctx, kvmi_srv_errno_to_wire(err), NULL, 0);
	if (cmd->close_after)
		ks_drop_connection(srv, cmd->rctx.session);
}

void kvmi_vcpu_job_run(struct kvmi_vcpu_job *job)
{
	struct kvmi_server *srv = job->cmd.srv;
	uint64_t session = job->cmd.rctx.session;
	bool current;

	pthread_mutex_lock(&srv->lock);
	current = ks_session_live_locked(srv, session);
	pthread_mutex_unlock(&srv->lock);
	/* A command from a tool that is gone must not touch the guest. */
	if (current)
		run_handler(&job->cmd);
	ks_job_done(srv, job->cmd.vcpu, session);
	free(job);
}

void kvmi_vcpu_job_cancel(struct kvmi_vcpu_job *job)
{
	ks_job_done(job->cmd.srv, job->cmd.vcpu, job->cmd.rctx.session);
	free(job);
}

static int queue_job(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_vcpu_job *job;
	int err;

	job = malloc(sizeof(*job) + cmd->req_size);
	if (!job)
		return -KVM_ENOMEM;
	job->cmd = *cmd;
	job->size = cmd->req_size;
	memcpy(job->req, cmd->req, cmd->req_size);
	job->cmd.req = job->req;

	pthread_mutex_lock(&srv->lock);
	srv->vcpus[cmd->vcpu].jobs++;
	pthread_mutex_unlock(&srv->lock);

	if (!srv->ops->queue_vcpu_job) {
		kvmi_vcpu_job_run(job);
		return 0;
	}
	err = srv->ops->queue_vcpu_job(srv->b, cmd->vcpu, job);
	if (err) {
		kvmi_vcpu_job_cancel(job);
		return err;
	}
	return 0;
}

/* ---- dispatch ------------------------------------------------------- */

/* Answer err to a command that failed its checks or its handler. */
static int fail(struct kvmi_cmd *cmd, int err)
{
	int ret = ks_reply(cmd->srv, &cmd->rctx, kvmi_srv_errno_to_wire(err), NULL, 0);

	if (cmd->close_after)
		return KVMI_CLOSE;
	return ret;
}

/* Unknown, disallowed or unsupported: with replies off the kernel closes
 * the connection for commands it cannot run at all, and so do we. */
static int refuse(struct kvmi_cmd *cmd, int err)
{
	if (!cmd->rctx.enabled && !cmd->rctx.error_event) {
		ks_log(cmd->srv, KVMI_SRV_LOG_WARN,
			 "command %u refused (%d) while replies are off; closing",
			 cmd->rctx.id, err);
		return KVMI_CLOSE;
	}
	return fail(cmd, err);
}

static int dispatch(struct kvmi_server *srv, const struct kvmi_msg_hdr *hdr, const uint8_t *payload)
{
	struct kvmi_cmd cmd = {
		.srv = srv,
		.req = payload,
		.req_size = hdr->size,
		.rctx = {
			.id = hdr->id,
			.seq = hdr->seq,
			.session = srv->session,
			.enabled = srv->replies_enabled,
			.error_event = !srv->replies_enabled && srv->error_events,
		},
	};
	const struct kvmi_cmd_desc *d;
	int err;

	if (hdr->id == KVMI_EVENT_REPLY)
		return ks_handle_event_reply(srv, hdr, payload);

	d = ks_cmd_lookup(hdr->id);
	if (!d) {
		ks_log(srv, KVMI_SRV_LOG_DEBUG, "unknown command id %u", hdr->id);
		return refuse(&cmd, -KVM_ENOSYS);
	}
	cmd.desc = d;
	if (!kvmi_policy_command_allowed(&srv->policy, hdr->id))
		return refuse(&cmd, -KVM_EPERM);
	err = ks_cmd_supported(srv, hdr->id);
	if (err)
		return refuse(&cmd, err);
	if (!cmd.rctx.enabled && (d->flags & KVMI_CMD_REPLY_DATA)) {
		ks_log(srv, KVMI_SRV_LOG_WARN,
			 "%s needs a reply but replies are off; closing", kvmi_srv_command_name(hdr->id));
		return KVMI_CLOSE;
	}

	if (d->scope != KVMI_SCOPE_VM) {
		const struct kvmi_vcpu_hdr *vh = (const void *)payload;

		if (hdr->size < sizeof(*vh))
			return fail(&cmd, -KVM_EINVAL);
		if (vh->padding1 || vh->padding2) {
			ks_log(srv, KVMI_SRV_LOG_WARN, "non-zero vCPU header padding; closing");
			return KVMI_CLOSE;
		}
		if (vh->vcpu >= srv->cfg.max_vcpus || vh->vcpu >= srv->ops->vcpu_count(srv->b))
			return fail(&cmd, -KVM_EINVAL);
		cmd.vcpu = vh->vcpu;
		cmd.req = payload + sizeof(*vh);
		cmd.req_size = hdr->size - sizeof(*vh);
	}
	if (!(d->flags & KVMI_CMD_VAR_SIZE) && cmd.req_size != d->size)
		return fail(&cmd, -KVM_EINVAL);
	if (d->validate) {
		err = d->validate(&cmd);
		if (err == KVMI_CLOSE)
			return KVMI_CLOSE;
		if (err)
			return fail(&cmd, err);
	}

	if (d->scope == KVMI_SCOPE_VCPU) {
		err = queue_job(&cmd);
		return err ? fail(&cmd, err) : 0;
	}
	err = d->handle(&cmd);
	if (err == KVMI_CLOSE)
		return KVMI_CLOSE;
	if (err)
		return fail(&cmd, err);
	return cmd.close_after ? KVMI_CLOSE : 0;
}

/* ---- session -------------------------------------------------------- */

static void session_begin(struct kvmi_server *srv, int rfd, int wfd)
{
	int type;
	socklen_t len = sizeof(type);
	unsigned i;

	pthread_mutex_lock(&srv->rx_lock);
	srv->in_start = srv->in_end = 0;
	srv->rx_proto_error = false;
	srv->rx_socket = getsockopt(rfd, SOL_SOCKET, SO_TYPE, &type, &len) == 0;
	pthread_mutex_unlock(&srv->rx_lock);

	pthread_mutex_lock(&srv->lock);
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
	pthread_mutex_unlock(&srv->lock);
	if (srv->ops->session_start)
		srv->ops->session_start(srv->b);
}

static void session_end(struct kvmi_server *srv)
{
	pthread_mutex_lock(&srv->lock);
	if (srv->connected) {
		shutdown(srv->rfd, SHUT_RDWR);
		if (srv->wfd != srv->rfd)
			shutdown(srv->wfd, SHUT_RDWR);
	}
	srv->connected = false;
	atomic_store(&srv->live, false);
	pthread_mutex_unlock(&srv->lock);

	/* Wait for a writer that still holds the old fd. */
	pthread_mutex_lock(&srv->send_lock);
	pthread_mutex_unlock(&srv->send_lock);

	ks_events_session_end(srv);
	if (srv->ops->session_end)
		srv->ops->session_end(srv->b);

	pthread_mutex_lock(&srv->lock);
	srv->rfd = srv->wfd = -1;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
}

/* ---- reading the tool's stream --------------------------------------- */

/*
 * Who reads: the introspection thread, and vCPU threads that wait for the
 * reply to their own event (events.c).  A sleeper in poll() on the socket
 * makes every write of the tool pay for waking it, and the reply then
 * needs one more wake-up to reach the vCPU; a vCPU that reads the socket
 * itself, spinning for a short while (KVMI_SPIN_US), gets its reply a few
 * microseconds after the tool wrote it.  While such vCPUs read
 * (vcpu_readers > 0) the introspection thread parks on kick_fd with a
 * short timeout instead of polling the socket.  A vCPU only takes event
 * replies off the head of the stream: at anything else it stops and kicks
 * the introspection thread, which dispatches in stream order, so commands
 * a tool sent before a reply still run before it.
 */

/* How long the introspection thread stays off the socket per look while
 * vCPUs read it themselves: also the longest a command can wait when it
 * arrives just after the last reading vCPU left (nobody wakes the
 * introspection thread then, so that events cost no wake-up). */
#define RX_PARK_NS (200 * 1000)

bool ks_rx_head(struct kvmi_server *srv, struct kvmi_msg_hdr *hdr, const uint8_t **payload)
{
	size_t have = srv->in_end - srv->in_start;

	if (have < sizeof(*hdr))
		return false;
	memcpy(hdr, srv->inbuf + srv->in_start, sizeof(*hdr));
	if (hdr->size > KVMI_MSG_SIZE || have < sizeof(*hdr) + hdr->size)
		return false;
	*payload = srv->inbuf + srv->in_start + sizeof(*hdr);
	return true;
}

void ks_rx_consume(struct kvmi_server *srv, size_t n)
{
	srv->in_start += n;
	if (srv->in_start == srv->in_end)
		srv->in_start = srv->in_end = 0;
}

ssize_t ks_rx_fill(struct kvmi_server *srv, int fd)
{
	size_t room;
	ssize_t n;

	/* Room for at least one whole message after what is pending. */
	room = sizeof(srv->inbuf) - srv->in_end;
	if (room < sizeof(struct kvmi_msg_hdr) + KVMI_MSG_SIZE && srv->in_start) {
		memmove(srv->inbuf, srv->inbuf + srv->in_start, srv->in_end - srv->in_start);
		srv->in_end -= srv->in_start;
		srv->in_start = 0;
		room = sizeof(srv->inbuf) - srv->in_end;
	}
	if (!room)
		return -ENOBUFS;
	for (;;) {
		if (srv->rx_socket) {
			n = recv(fd, srv->inbuf + srv->in_end, room, MSG_DONTWAIT);
		} else {
			/* A pipe (tests, fuzzing): read only what poll() saw. */
			struct pollfd p = { .fd = fd, .events = POLLIN };

			n = poll(&p, 1, 0);
			if (n == 0)
				return -EAGAIN;
			if (n > 0)
				n = read(fd, srv->inbuf + srv->in_end, room);
		}
		if (n >= 0)
			break;
		if (errno != EINTR)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	}
	srv->in_end += (size_t)n;
	return n;
}

void ks_kick_intro(struct kvmi_server *srv)
{
	uint64_t one = 1;
	ssize_t n = write(srv->kick_fd, &one, sizeof(one));

	(void)n;
}

static void drain_kick(struct kvmi_server *srv)
{
	uint64_t v;
	ssize_t n = read(srv->kick_fd, &v, sizeof(v));

	(void)n;
}

/*
 * Introspection thread: the next complete message, copied into rbuf and
 * returned with rx_lock held (the caller dispatches, then unlocks).
 * 1 with a message, 0 at EOF between messages, -errno.
 */
static int next_message(struct kvmi_server *srv, int fd, struct kvmi_msg_hdr *hdr, bool *more)
{
	/* A tool that sends one command after another (reads of guest
	 * memory, say) sends the next within microseconds of a reply: look
	 * for it without sleeping for a while (KVMI_SPIN_US) after each. */
	uint64_t spin_end = srv->rx_socket ? kvmi_spin_now_ns() + kvmi_spin_budget_ns() : 0;
	const struct timespec park = { 0, RX_PARK_NS };
	const uint8_t *payload;
	struct kvmi_msg_hdr next;
	unsigned spins = 0;
	ssize_t n;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = srv->kick_fd, .events = POLLIN },
		};

		pthread_mutex_lock(&srv->rx_lock);
		if (ks_rx_head(srv, hdr, &payload)) {
			memcpy(srv->rbuf, payload, hdr->size);
			/* Zeroed tail: small fixed reads past hdr.size see zeros. */
			memset(srv->rbuf + hdr->size, 0, sizeof(srv->rbuf) - hdr->size);
			ks_rx_consume(srv, sizeof(*hdr) + hdr->size);
			*more = ks_rx_head(srv, &next, &payload);
			return 1;
		}
		if (srv->in_end - srv->in_start >= sizeof(*hdr)) {
			memcpy(hdr, srv->inbuf + srv->in_start, sizeof(*hdr));
			if (hdr->size > KVMI_MSG_SIZE) {
				pthread_mutex_unlock(&srv->rx_lock);
				ks_log(srv, KVMI_SRV_LOG_WARN, "message %u of %u bytes exceeds %u; closing",
				       hdr->id, hdr->size, KVMI_MSG_SIZE);
				return -EPROTO;
			}
		}
		if (atomic_load(&srv->vcpu_readers)) {
			/* A vCPU reads; it kicks us when it meets something
			 * else than a reply, or stops reading. */
			pthread_mutex_unlock(&srv->rx_lock);
			if (ppoll(&p[1], 1, &park, NULL) > 0)
				drain_kick(srv);
			continue;
		}
		n = ks_rx_fill(srv, fd);
		if (srv->rx_proto_error) {
			/* a vCPU met a bad reply and closed (events.c) */
			pthread_mutex_unlock(&srv->rx_lock);
			return -EPROTO;
		}
		if (n == 0 && srv->in_end != srv->in_start) {
			pthread_mutex_unlock(&srv->rx_lock);
			ks_log(srv, KVMI_SRV_LOG_WARN, "truncated message (%zu bytes at the end); closing",
			       srv->in_end - srv->in_start);
			return -EPROTO;
		}
		pthread_mutex_unlock(&srv->rx_lock);
		if (n > 0)
			continue;
		if (n == 0)
			return 0;
		if (n != -EAGAIN)
			return (int)n;
		/* (not while vCPUs sleep on replies: several events in flight
		 * need the CPUs for the vCPUs and the tool) */
		if (spin_end && kvmi_spin_now_ns() < spin_end && !atomic_load(&srv->vcpu_sleepers)) {
			kvmi_spin_relax(++spins);
			continue;
		}
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents & POLLIN)
			drain_kick(srv);
	}
}

int kvmi_server_serve(struct kvmi_server *srv, int rfd, int wfd)
{
	bool corked = false;     /* this thread's replies are being gathered */
	int ret = 0;

	session_begin(srv, rfd, wfd);
	pthread_mutex_lock(&srv->lock);
	if (srv->stopping) {
		shutdown(rfd, SHUT_RDWR);
		if (wfd != rfd)
			shutdown(wfd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&srv->lock);
	for (;;) {
		struct kvmi_msg_hdr hdr;
		bool more = false;
		int err;

		err = next_message(srv, rfd, &hdr, &more);
		if (err <= 0) {
			/* EOF between messages is the tool's normal goodbye. */
			ret = err == -ECONNRESET ? 0 : err;
			break;
		}
		/* Replies to a batch of requests go out together. */
		if (more && !corked) {
			set_cork(srv, true);
			corked = true;
		}
		err = dispatch(srv, &hdr, srv->rbuf);
		pthread_mutex_unlock(&srv->rx_lock);
		if (!more && corked) {
			set_cork(srv, false);
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
		pthread_mutex_lock(&srv->lock);
		err = srv->dropped;
		pthread_mutex_unlock(&srv->lock);
		if (err)
			break;
	}
	set_cork(srv, false);
	session_end(srv);
	return ret;
}
