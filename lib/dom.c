/* Client library: one connected guest (struct kvmi_dom).
 *
 * Owns the connection lifecycle, the command/reply round trip and the event
 * API.  Reading is in recv.c: the thread that waits for a message reads the
 * socket itself when nobody else does (leader/follower), a background
 * reader thread takes over while the API is idle.  Events go to the event
 * queue, anything else to the one command that waits for a reply (commands
 * are serialized by cmd_lock).  Messages are always consumed whole, so a bad
 * reply never desynchronizes the stream (libkvmi leaves unread bytes behind
 * in that case). */
#include "internal.h"
#include "../src/common/spin_wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

uint32_t kc_next_seq(struct kvmi_dom *dom)
{
	return atomic_fetch_add(&dom->seq, 1) + 1;
}

static void timespec_from_deadline(struct timespec *ts, int64_t deadline)
{
	/* Condition variables use CLOCK_MONOTONIC (see dom_alloc). */
	ts->tv_sec = deadline / 1000;
	ts->tv_nsec = (deadline % 1000) * 1000000;
}

/* Every change a waiter may look for (dom->lock held), including a waiter
 * in poll() on the event descriptor. */
void kc_notify(struct kvmi_dom *dom)
{
	atomic_fetch_add_explicit(&dom->changes, 1, memory_order_release);
	pthread_cond_broadcast(&dom->cond);
	kc_event_fd_sync(dom);
}

void kc_event_fd_sync(struct kvmi_dom *dom)
{
	uint64_t one = 1;
	bool want;

	if (dom->ev_fd < 0)
		return;
	want = dom->ev_count || dom->bad_events || !dom->connected;
	if (want == dom->ev_fd_set)
		return;
	/* A non-blocking eventfd: neither call can block or fail here. */
	if (want)
		(void)!write(dom->ev_fd, &one, sizeof(one));
	else
		(void)!read(dom->ev_fd, &one, sizeof(one));
	dom->ev_fd_set = want;
}

/*
 * Waits for a change (dom->lock held).  A reply or an event usually comes
 * within tens of microseconds, and a sleeping waiter then costs a wake-up
 * through the scheduler (several microseconds here, more across CPUs): spin
 * for a short while first (KVMI_SPIN_US, src/common/spin_wait.h), then sleep.
 */
int kc_cond_wait(struct kvmi_dom *dom, int64_t deadline)
{
	struct timespec ts;
	unsigned start = atomic_load_explicit(&dom->changes, memory_order_acquire);

	if (kvmi_spin_budget_ns()) {
		pthread_mutex_unlock(&dom->lock);
		kvmi_spin_while_equal(&dom->changes, start, kvmi_spin_budget_ns());
		pthread_mutex_lock(&dom->lock);
		if (atomic_load_explicit(&dom->changes, memory_order_acquire) != start)
			return 0;
	}

	if (deadline < 0)
		return pthread_cond_wait(&dom->cond, &dom->lock) ? -EINVAL : 0;
	timespec_from_deadline(&ts, deadline);
	return pthread_cond_timedwait(&dom->cond, &dom->lock, &ts) == ETIMEDOUT ? -ETIMEDOUT : 0;
}

static struct kvmi_dom *dom_alloc(int fd, const struct kvmi_config *cfg)
{
	struct kvmi_dom *dom = calloc(1, sizeof(*dom));
	pthread_condattr_t ca;

	if (!dom)
		return NULL;
	if (kc_config_copy(&dom->cfg, cfg)) {
		free(dom);
		return NULL;
	}
	if (kc_rx_init(dom)) {
		free(dom);
		return NULL;
	}
	dom->fd = fd;
	dom->ev_fd = -1;
	atomic_init(&dom->seq, 0);
	pthread_mutex_init(&dom->cmd_lock, NULL);
	pthread_mutex_init(&dom->send_lock, NULL);
	pthread_mutex_init(&dom->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dom->cond, &ca);
	pthread_condattr_destroy(&ca);
	return dom;
}

static void dom_free(struct kvmi_dom *dom)
{
	struct kc_event_node *n = dom->ev_head;

	while (n) {
		struct kc_event_node *next = n->next;

		kvmi_event_free(n->ev);
		free(n);
		n = next;
	}
	free(dom->reply.payload);
	kc_msg_close_fd(&dom->reply);
	kc_rx_free(dom);
	if (dom->ev_fd >= 0)
		close(dom->ev_fd);
	pthread_cond_destroy(&dom->cond);
	pthread_mutex_destroy(&dom->lock);
	pthread_mutex_destroy(&dom->send_lock);
	pthread_mutex_destroy(&dom->cmd_lock);
	free(dom);
}

int kvmi_dom_open_fd(int fd, const struct kvmi_config *cfg, struct kvmi_dom **out)
{
	struct kvmi_config check;
	struct kvmi_dom *dom;
	int err;

	if (out)
		*out = NULL;
	if (fd < 0 || !out || kc_config_copy(&check, cfg)) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	dom = dom_alloc(fd, cfg);
	if (!dom) {
		close(fd);
		return -ENOMEM;
	}
	err = kc_handshake(dom);
	if (err) {
		kvmi_dom_close(dom);
		return err;
	}
	pthread_mutex_lock(&dom->lock);
	dom->published = true;
	pthread_mutex_unlock(&dom->lock);
	*out = dom;
	return 0;
}

void kvmi_dom_close(struct kvmi_dom *dom)
{
	bool from_reader;

	if (!dom)
		return;
	pthread_mutex_lock(&dom->lock);
	dom->closing = true;
	dom->connected = false;
	kc_notify(dom);
	pthread_cond_broadcast(&dom->rcond);
	pthread_mutex_unlock(&dom->lock);

	/* Wakes whoever reads out of poll()/recv(). */
	shutdown(dom->fd, SHUT_RDWR);
	/* Waiting threads return -ENOTCONN: let them leave first. */
	pthread_mutex_lock(&dom->lock);
	kc_wait_quiesce(dom);
	pthread_mutex_unlock(&dom->lock);
	from_reader = dom->reader_started && pthread_equal(dom->reader, pthread_self());
	if (dom->reader_started) {
		if (from_reader)
			pthread_detach(dom->reader);   /* called from on_disconnect */
		else
			pthread_join(dom->reader, NULL);
	}
	close(dom->fd);
	dom_free(dom);
}

bool kvmi_dom_is_connected(struct kvmi_dom *dom)
{
	bool c;

	pthread_mutex_lock(&dom->lock);
	c = dom->connected;
	pthread_mutex_unlock(&dom->lock);
	return c;
}

int kvmi_dom_fd(const struct kvmi_dom *dom)
{
	return dom->fd;
}

const struct kvmi_hello *kvmi_dom_hello(const struct kvmi_dom *dom)
{
	return &dom->hello;
}

const char *kvmi_dom_name(const struct kvmi_dom *dom)
{
	return dom->hello.name;
}

void kvmi_dom_set_user(struct kvmi_dom *dom, void *user)
{
	dom->user = user;
}

void *kvmi_dom_user(const struct kvmi_dom *dom)
{
	return dom->user;
}

int kvmi_dom_get_version(const struct kvmi_dom *dom, uint32_t *version,
			 struct kvmi_features *features)
{
	if (version)
		*version = dom->version;
	if (features)
		*features = dom->features;
	return 0;
}

int kvmi_dom_shutdown(struct kvmi_dom *dom)
{
	return shutdown(dom->fd, SHUT_RDWR) ? -errno : 0;
}

int kc_send(struct kvmi_dom *dom, struct iovec *iov, int iovcnt)
{
	int err;

	pthread_mutex_lock(&dom->send_lock);
	err = kvmi_proto_writev_full(dom->fd, iov, iovcnt, -1,
				     kvmi_proto_deadline(dom->cfg.io_timeout_ms));
	pthread_mutex_unlock(&dom->send_lock);
	if (err)
		kc_log(&dom->cfg, KVMI_LOG_ERROR, "%s: send failed: %s", dom->hello.name, strerror(-err));
	return err;
}

/* ---- command round trip ---------------------------------------------- */

int kc_map_err(int32_t err)
{
	switch (err) {
	case -KVM_ENOSYS:     return -ENOSYS;
	case -KVM_EFAULT:     return -EFAULT;
	case -KVM_E2BIG:      return -E2BIG;
	case -KVM_EPERM:      return -EPERM;
	case -KVM_EOPNOTSUPP: return -EOPNOTSUPP;
	case -KVM_EAGAIN:     return -EAGAIN;
	case -KVM_EBUSY:      return -EBUSY;
	case -KVM_EINVAL:     return -EINVAL;
	case -KVM_ENOENT:     return -ENOENT;
	case -KVM_ENOMEM:     return -ENOMEM;
	default:              return -EPROTO;
	}
}

static bool have_reply(struct kvmi_dom *dom, const void *arg)
{
	(void)arg;
	return dom->have_reply;
}

int kc_wait_reply(struct kvmi_dom *dom, uint16_t id, uint32_t seq, int64_t deadline,
		  struct kc_msg *out)
{
	int err;

	pthread_mutex_lock(&dom->lock);
	err = kc_wait(dom, deadline, have_reply, NULL);
	if (dom->have_reply) {
		*out = dom->reply;
		memset(&dom->reply, 0, sizeof(dom->reply));
		dom->reply.fd = -1;
		dom->have_reply = false;
		err = dom->reply_err;
	} else if (err != -ETIMEDOUT) {
		err = dom->closing ? -ENOTCONN : -ECONNRESET;
	}
	if (err == -ETIMEDOUT) {
		/* Drop the reply if it ever comes, keep the stream usable. */
		dom->abandoned[dom->abandoned_next].id = id;
		dom->abandoned[dom->abandoned_next].seq = seq;
		dom->abandoned_next = (dom->abandoned_next + 1) % KC_ABANDONED_SLOTS;
	}
	dom->waiting = false;
	pthread_mutex_unlock(&dom->lock);

	if (err)
		return err;
	if (out->hdr.id != id || out->hdr.seq != seq) {
		kc_log(&dom->cfg, KVMI_LOG_ERROR,
		       "%s: wrong reply: id %u seq %u, expected id %u seq %u",
		       dom->hello.name, out->hdr.id, out->hdr.seq, id, seq);
		free(out->payload);
		out->payload = NULL;
		kc_msg_close_fd(out);
		return -ENOMSG;
	}
	return 0;
}

int kc_send_wait(struct kvmi_dom *dom, uint16_t id, uint32_t seq, int64_t deadline,
		 struct iovec *iov, int iovcnt, bool wait_reply, struct kc_msg *out)
{
	int err;

	pthread_mutex_lock(&dom->lock);
	if (!dom->connected) {
		pthread_mutex_unlock(&dom->lock);
		return -ENOTCONN;
	}
	if (wait_reply) {
		dom->waiting = true;
		dom->wait_id = id;
		dom->wait_seq = seq;
	}
	pthread_mutex_unlock(&dom->lock);

	err = kc_send(dom, iov, iovcnt);
	if (err) {
		pthread_mutex_lock(&dom->lock);
		dom->waiting = false;
		pthread_mutex_unlock(&dom->lock);
		return err;
	}
	if (!wait_reply)
		return 0;
	return kc_wait_reply(dom, id, seq, deadline, out);
}

int kc_reply_data(const struct kc_msg *m, void *rpl, size_t rpl_size, size_t *received)
{
	struct kvmi_error_code ec;
	size_t data, n;

	if (received)
		*received = 0;
	if (m->hdr.size < sizeof(ec))
		return -ENODATA;
	memcpy(&ec, m->payload, sizeof(ec));
	if (ec.err)
		return kc_map_err(ec.err);

	data = m->hdr.size - sizeof(ec);
	n = data < rpl_size ? data : rpl_size;
	if (n)
		memcpy(rpl, m->payload + sizeof(ec), n);
	if (rpl_size > n)
		memset((uint8_t *)rpl + n, 0, rpl_size - n);
	if (received)
		*received = data;
	return 0;
}

int kc_command_fd(struct kvmi_dom *dom, uint16_t id, struct iovec *iov, int iovcnt,
		  void *rpl, size_t rpl_size, size_t *received, int *fd)
{
	struct iovec v[8];
	struct kvmi_msg_hdr hdr = { .id = id };
	struct kc_msg m = { 0 };
	size_t total = 0;
	int err;

	if (iovcnt > 7)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	/* The VMM drops the connection on anything larger (libkvmi would
	 * even let the u16 size field wrap). */
	if (total > KVMI_MSG_SIZE)
		return -E2BIG;
	hdr.size = (uint16_t)total;
	v[0].iov_base = &hdr;
	v[0].iov_len = sizeof(hdr);
	for (int i = 0; i < iovcnt; i++)
		v[i + 1] = iov[i];

	if (fd)
		*fd = -1;
	pthread_mutex_lock(&dom->cmd_lock);
	hdr.seq = kc_next_seq(dom);
	pthread_mutex_lock(&dom->lock);
	dom->wait_fd = fd != NULL;
	pthread_mutex_unlock(&dom->lock);
	err = kc_send_wait(dom, id, hdr.seq, kvmi_proto_deadline(dom->cfg.io_timeout_ms),
			   v, iovcnt + 1, true, &m);
	pthread_mutex_lock(&dom->lock);
	dom->wait_fd = false;
	pthread_mutex_unlock(&dom->lock);
	pthread_mutex_unlock(&dom->cmd_lock);
	if (err)
		return err;
	err = kc_reply_data(&m, rpl, rpl_size, received);
	free(m.payload);
	if (!err && fd && m.has_fd) {
		*fd = m.fd;
		m.has_fd = false;
	}
	kc_msg_close_fd(&m);
	return err;
}

int kc_command(struct kvmi_dom *dom, uint16_t id, struct iovec *iov, int iovcnt,
	       void *rpl, size_t rpl_size, size_t *received)
{
	return kc_command_fd(dom, id, iov, iovcnt, rpl, rpl_size, received, NULL);
}

int kc_vcpu_command(struct kvmi_dom *dom, uint16_t id, uint16_t vcpu,
		    const void *req, size_t req_size,
		    void *rpl, size_t rpl_size, size_t *received)
{
	struct kvmi_vcpu_hdr vh = { .vcpu = vcpu };
	struct iovec iov[2] = {
		{ .iov_base = &vh, .iov_len = sizeof(vh) },
		{ .iov_base = (void *)req, .iov_len = req_size },
	};

	return kc_command(dom, id, iov, req_size ? 2 : 1, rpl, rpl_size, received);
}

int kvmi_dom_command(struct kvmi_dom *dom, uint16_t id, const void *req, size_t req_size,
		     void *rpl, size_t rpl_size, size_t *received)
{
	struct iovec iov = { .iov_base = (void *)req, .iov_len = req_size };
	const struct kvmi_proto_cmd *c = kvmi_proto_command(id);

	if (c && (c->flags & KVMI_PROTO_NO_REPLY))
		return -EINVAL;         /* no reply would ever come */
	return kc_command(dom, id, &iov, req_size ? 1 : 0, rpl, rpl_size, received);
}

/* ---- events ----------------------------------------------------------- */

static bool have_event(struct kvmi_dom *dom, const void *arg)
{
	(void)arg;
	return dom->ev_count || dom->bad_events;
}

/* Lock held: queue what the socket already holds, unless somebody reads. */
static void poll_events(struct kvmi_dom *dom)
{
	if (!dom->ev_count && dom->connected && !dom->leading)
		(void)kc_wait(dom, kvmi_proto_now_ms(), have_event, NULL);
}

int kvmi_dom_wait_event(struct kvmi_dom *dom, int timeout_ms)
{
	int64_t deadline = kvmi_proto_deadline(timeout_ms);
	int err;

	pthread_mutex_lock(&dom->lock);
	(void)kc_wait(dom, deadline, have_event, NULL);
	if (dom->ev_count) {
		err = 0;
	} else if (dom->bad_events) {
		dom->bad_events = 0;
		kc_event_fd_sync(dom);
		err = -EBADMSG;
	} else if (!dom->connected) {
		err = -ENOTCONN;
	} else {
		err = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&dom->lock);
	return err;
}

int kvmi_dom_pop_event(struct kvmi_dom *dom, struct kvmi_event_msg **out)
{
	struct kc_event_node *n;

	*out = NULL;
	pthread_mutex_lock(&dom->lock);
	poll_events(dom);
	n = dom->ev_head;
	if (n) {
		dom->ev_head = n->next;
		if (!dom->ev_head)
			dom->ev_tail = NULL;
		dom->ev_count--;
		kc_event_fd_sync(dom);
	}
	pthread_mutex_unlock(&dom->lock);
	if (!n)
		return -EAGAIN;
	*out = n->ev;
	free(n);
	return 0;
}

int kvmi_dom_event_fd(struct kvmi_dom *dom)
{
	int fd;

	pthread_mutex_lock(&dom->lock);
	if (dom->ev_fd < 0) {
		dom->ev_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (dom->ev_fd < 0) {
			fd = -errno;
			pthread_mutex_unlock(&dom->lock);
			return fd;
		}
		kc_event_fd_sync(dom);
		/* From now on the reader thread reads whenever no API thread
		 * does (recv.c): nobody else may be waiting on the socket. */
		pthread_cond_signal(&dom->rcond);
	}
	fd = dom->ev_fd;
	pthread_mutex_unlock(&dom->lock);
	return fd;
}

unsigned int kvmi_dom_pending_events(struct kvmi_dom *dom)
{
	unsigned int n;

	pthread_mutex_lock(&dom->lock);
	poll_events(dom);
	n = dom->ev_count;
	pthread_mutex_unlock(&dom->lock);
	return n;
}

int kvmi_dom_next_event(struct kvmi_dom *dom, int timeout_ms, struct kvmi_event_msg **out)
{
	int err;

	*out = NULL;
	for (;;) {
		err = kvmi_dom_wait_event(dom, timeout_ms);
		if (err != -EBADMSG)
			break;
	}
	if (err)
		return err;
	return kvmi_dom_pop_event(dom, out);
}
