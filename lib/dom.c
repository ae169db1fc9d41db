/* Client library: one connected guest (struct kvmi_dom).
 *
 * Owns the connection lifecycle, the reader thread, and the command/reply
 * round trip.  A single reader thread per domain reads every message the VMM
 * sends: events go to the event queue, anything else is handed to the one
 * command that waits for a reply (commands are serialized by cmd_lock).
 * Messages are always consumed whole, so a bad reply never desynchronizes the
 * stream (libkvmi leaves unread bytes behind in that case). */
#include "internal.h"
#include "../src/common/spin_wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
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

/* Wait on dom->cond until @deadline (-1: forever).  Caller holds dom->lock. */
/* Every change a waiter may look for (dom->lock held). */
void kc_notify(struct kvmi_dom *dom)
{
	atomic_fetch_add_explicit(&dom->changes, 1, memory_order_release);
	pthread_cond_broadcast(&dom->cond);
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
	dom->fd = fd;
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
	pthread_mutex_unlock(&dom->lock);

	/* Wakes the reader out of poll()/recv(). */
	shutdown(dom->fd, SHUT_RDWR);
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
	err = kc_writev_full(dom->fd, iov, iovcnt, kc_deadline(dom->cfg.io_timeout_ms));
	pthread_mutex_unlock(&dom->send_lock);
	if (err)
		kc_log(&dom->cfg, KVMI_LOG_ERROR, "%s: send failed: %s", dom->hello.name, strerror(-err));
	return err;
}

/* ---- reader thread ---------------------------------------------------- */

static bool is_abandoned(struct kvmi_dom *dom, const struct kvmi_msg_hdr *h)
{
	for (unsigned int i = 0; i < KC_ABANDONED_SLOTS; i++) {
		if (dom->abandoned[i].seq == h->seq && dom->abandoned[i].id == h->id &&
		    h->seq != 0) {
			dom->abandoned[i].seq = 0;
			return true;
		}
	}
	return false;
}

static void queue_event(struct kvmi_dom *dom, struct kvmi_event_msg *ev)
{
	struct kc_event_node *n = malloc(sizeof(*n));

	pthread_mutex_lock(&dom->lock);
	if (!n) {
		/* Out of memory: count it like a malformed event. */
		dom->bad_events++;
		kvmi_event_free(ev);
	} else {
		n->next = NULL;
		n->ev = ev;
		if (dom->ev_tail)
			dom->ev_tail->next = n;
		else
			dom->ev_head = n;
		dom->ev_tail = n;
		dom->ev_count++;
	}
	kc_notify(dom);
	pthread_mutex_unlock(&dom->lock);
}

void kc_msg_close_fd(struct kc_msg *m)
{
	if (m->has_fd)
		close(m->fd);
	m->has_fd = false;
	m->fd = -1;
}

static void handle_message(struct kvmi_dom *dom, struct kc_msg *m)
{
	if (m->has_fd && (m->hdr.id == KVMI_EVENT || !dom->wait_fd)) {
		/* Only KVMI_X_MAP_MEMORY replies carry one; never leak it. */
		kc_log(&dom->cfg, KVMI_LOG_WARNING,
		       "%s: closed a descriptor that came with message id %u seq %u",
		       dom->hello.name, m->hdr.id, m->hdr.seq);
		kc_msg_close_fd(m);
	}
	if (m->hdr.id == KVMI_EVENT) {
		struct kvmi_event_msg *ev;
		int err = kc_decode_event(m, &ev);

		if (err) {
			kc_log(&dom->cfg, KVMI_LOG_WARNING,
			       "%s: dropped a malformed event (seq %u, %u bytes): %s",
			       dom->hello.name, m->hdr.seq, m->hdr.size, strerror(-err));
			pthread_mutex_lock(&dom->lock);
			dom->bad_events++;
			kc_notify(dom);
			pthread_mutex_unlock(&dom->lock);
		} else {
			queue_event(dom, ev);
		}
		free(m->payload);
		return;
	}

	pthread_mutex_lock(&dom->lock);
	if (kc_bulk_take(dom, m)) {
		pthread_mutex_unlock(&dom->lock);
		free(m->payload);
		kc_msg_close_fd(m);
		return;
	}
	if (is_abandoned(dom, &m->hdr) || !dom->waiting || dom->have_reply) {
		dom->stray_msgs++;
		kc_log(&dom->cfg, KVMI_LOG_WARNING,
		       "%s: dropped an unexpected message (id %u, seq %u, %u bytes)",
		       dom->hello.name, m->hdr.id, m->hdr.seq, m->hdr.size);
		free(m->payload);
		kc_msg_close_fd(m);
	} else {
		dom->reply = *m;
		dom->have_reply = true;
		kc_notify(dom);
	}
	pthread_mutex_unlock(&dom->lock);
}

static int read_message(struct kvmi_dom *dom, struct kc_msg *m)
{
	unsigned int extra = 0;
	int64_t deadline;
	int passed = -1;
	int err;

	/* Wait forever for the start of a message ... A descriptor the VMM
	 * attaches to a message arrives with its first byte. */
	err = kc_read_full_fds(dom->fd, &m->hdr, 1, -1, &passed, &extra);
	if (err)
		goto out;
	/* ... but once it started, the rest must follow in io_timeout. */
	deadline = kc_deadline(dom->cfg.io_timeout_ms);
	err = kc_read_full_fds(dom->fd, (uint8_t *)&m->hdr + 1, sizeof(m->hdr) - 1, deadline,
			       &passed, &extra);
	if (err)
		goto out;
	m->payload = malloc(m->hdr.size ? m->hdr.size : 1);
	if (!m->payload) {
		err = -ENOMEM;
		goto out;
	}
	err = kc_read_full_fds(dom->fd, m->payload, m->hdr.size, deadline, &passed, &extra);
	if (err) {
		free(m->payload);
		m->payload = NULL;
	}
out:
	if (extra) {
		kc_log(&dom->cfg, KVMI_LOG_WARNING, "%s: %u unexpected descriptors closed",
		       dom->hello.name, extra);
		/* Which one was meant is unknown: keep none. */
		if (passed >= 0)
			close(passed);
		passed = -1;
	}
	if (passed >= 0 && err)
		close(passed);
	else if (passed >= 0) {
		m->fd = passed;
		m->has_fd = true;
	}
	return err;
}

static void *reader_main(void *arg)
{
	struct kvmi_dom *dom = arg;
	kvmi_disconnect_fn cb;
	void *ctx;
	int err;

	for (;;) {
		struct kc_msg m = { 0 };

		err = read_message(dom, &m);
		if (err)
			break;
		handle_message(dom, &m);
	}

	pthread_mutex_lock(&dom->lock);
	dom->connected = false;
	dom->disconnect_err = err;
	kc_notify(dom);
	cb = dom->closing || !dom->published ? NULL : dom->cfg.on_disconnect;
	ctx = dom->cfg.ctx;
	pthread_mutex_unlock(&dom->lock);

	if (cb) {
		kc_log(&dom->cfg, KVMI_LOG_INFO, "%s: disconnected (%s)", dom->hello.name,
		       strerror(-err));
		/* Last use of dom here: the callback may kvmi_dom_close() it. */
		cb(dom, ctx);
	}
	return NULL;
}

int kc_start_reader(struct kvmi_dom *dom)
{
	int err;

	dom->connected = true;
	err = pthread_create(&dom->reader, NULL, reader_main, dom);
	if (err) {
		dom->connected = false;
		return -err;
	}
	dom->reader_started = true;
	return 0;
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

int kc_wait_reply(struct kvmi_dom *dom, uint16_t id, uint32_t seq, int64_t deadline,
		  struct kc_msg *out)
{
	int err = 0;

	pthread_mutex_lock(&dom->lock);
	while (!dom->have_reply && dom->connected && !err)
		err = kc_cond_wait(dom, deadline);

	if (dom->have_reply) {
		*out = dom->reply;
		memset(&dom->reply, 0, sizeof(dom->reply));
		dom->have_reply = false;
		err = 0;
	} else if (!err) {
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
	err = kc_send_wait(dom, id, hdr.seq, kc_deadline(dom->cfg.io_timeout_ms),
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

	if (id == KVMI_EVENT_REPLY || id == KVMI_EVENT)
		return -EINVAL;         /* no reply would ever come */
	return kc_command(dom, id, &iov, req_size ? 1 : 0, rpl, rpl_size, received);
}

/* ---- events ----------------------------------------------------------- */

int kvmi_dom_wait_event(struct kvmi_dom *dom, int timeout_ms)
{
	int64_t deadline = kc_deadline(timeout_ms);
	int err = 0;

	pthread_mutex_lock(&dom->lock);
	for (;;) {
		if (dom->ev_count) {
			err = 0;
			break;
		}
		if (dom->bad_events) {
			dom->bad_events = 0;
			err = -EBADMSG;
			break;
		}
		if (!dom->connected) {
			err = -ENOTCONN;
			break;
		}
		if (timeout_ms == 0 || err == -ETIMEDOUT) {
			err = -ETIMEDOUT;
			break;
		}
		err = kc_cond_wait(dom, deadline);
	}
	pthread_mutex_unlock(&dom->lock);
	return err;
}

int kvmi_dom_pop_event(struct kvmi_dom *dom, struct kvmi_event_msg **out)
{
	struct kc_event_node *n;

	*out = NULL;
	pthread_mutex_lock(&dom->lock);
	n = dom->ev_head;
	if (n) {
		dom->ev_head = n->next;
		if (!dom->ev_head)
			dom->ev_tail = NULL;
		dom->ev_count--;
	}
	pthread_mutex_unlock(&dom->lock);
	if (!n)
		return -EAGAIN;
	*out = n->ev;
	free(n);
	return 0;
}

unsigned int kvmi_dom_pending_events(struct kvmi_dom *dom)
{
	unsigned int n;

	pthread_mutex_lock(&dom->lock);
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
