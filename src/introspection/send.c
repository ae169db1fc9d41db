/* SPDX-License-Identifier: MIT */
/*
 * send.c - the thread-safe writer every reply and event goes through:
 * whole messages under send_lock, a session check so that nothing reaches
 * a newer tool, the corking of replies to a batch of pipelined requests
 * (one system call for the batch), and the reply rules of
 * CONTROL_CMD_RESPONSE. A send that fails or times out drops the tool.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* pass_fd >= 0: attached to the first bytes that go out. */
static int write_iov(struct kvmi_server *srv, int fd, struct iovec *iov, int cnt, int pass_fd)
{
	return kvmi_proto_writev_full(fd, iov, cnt, pass_fd,
				      kvmi_proto_now_ms() + srv->cfg.send_timeout_ms);
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
void ks_set_cork(struct kvmi_server *srv, bool on)
{
	uint64_t session;
	int fd, err = 0;

	kvmi_mutex_lock(&srv->send_lock);
	srv->corked = on;
	srv->cork_thread = pthread_self();
	if (!on && srv->out_len) {
		kvmi_mutex_lock(&srv->lock);
		fd = srv->connected ? srv->wfd : -1;
		session = srv->session;
		kvmi_mutex_unlock(&srv->lock);
		if (fd >= 0)
			err = flush_out_locked(srv, fd);
		srv->out_len = 0;
	}
	kvmi_mutex_unlock(&srv->send_lock);
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

	kvmi_mutex_lock(&srv->send_lock);
	kvmi_mutex_lock(&srv->lock);
	if (!srv->connected || session != srv->session) {
		kvmi_mutex_unlock(&srv->lock);
		kvmi_mutex_unlock(&srv->send_lock);
		return -ENOTCONN;
	}
	fd = srv->wfd;
	kvmi_mutex_unlock(&srv->lock);
	if (srv->corked && pass_fd < 0 && pthread_equal(srv->cork_thread, pthread_self())) {
		err = 0;
		if (srv->out_len + total > KS_OUT_SIZE)
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
	kvmi_mutex_unlock(&srv->send_lock);
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

	kvmi_mutex_lock(&srv->lock);
	fds[0] = srv->connected ? srv->rfd : -1;
	fds[1] = srv->connected ? srv->wfd : -1;
	kvmi_mutex_unlock(&srv->lock);
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
