/* Client library: reading what the VMM sends (leader/follower).
 *
 * Waking a thread that sleeps on the socket or on a condition variable
 * costs several microseconds here (more across CPUs, an IPI in a VM), and
 * a sleeper in poll()/read() on the socket makes every VMM write pay for
 * the wake-up.  So the thread that waits for a message reads the socket
 * itself:
 *
 *   - Leader: the one thread that reads (dom->leading).  An API thread in
 *     kc_wait() (an event, a command's reply, the bulk read's replies)
 *     becomes the leader when nobody else reads, and dispatches everything
 *     that arrives the way a reader thread would: events are queued,
 *     replies go to the waiting command or the bulk read, stray and
 *     abandoned replies are dropped.  It spins on non-blocking reads for
 *     kvmi_spin_budget_ns() before sleeping in poll(), and stops leading
 *     as soon as what it waits for is there.
 *   - Followers: other waiting threads sleep on dom->cond (spinning on the
 *     change counter first) and get their message handed over; they take
 *     the lead when the leader leaves.
 *   - The reader thread parks on its own condition variable (with a
 *     timeout, never signalled from the hot path) while the API is in use,
 *     and leads once no kc_wait() has run for RX_GRACE_NS when it looks
 *     (it looks at intervals growing to RX_PARK_MAX_NS while the API stays
 *     busy), so that events are still queued, and a disconnect still seen,
 *     while the tool does something else.  When an API thread starts waiting while
 *     the reader thread leads, it follows for that message (one hand-over)
 *     and the reader thread parks again.
 *   - Once the tool asked for the event descriptor (kvmi_dom_event_fd()),
 *     its thread sleeps in poll() on that descriptor, not on the socket:
 *     the reader thread then leads whenever no API thread waits, without
 *     the grace period, and an API thread that stops waiting wakes it.
 *
 * The leader reads into a per-domain buffer, so pipelined messages cost one
 * system call.  Messages are dispatched in stream order, each consumed
 * whole (a bad one never desynchronizes the stream).
 *
 * Descriptors (SCM_RIGHTS; only KVMI_X_MAP_MEMORY replies carry one): the
 * VMM attaches one to the first byte of its message.  A unix stream
 * recvmsg() does copy data of earlier messages into the same call as the
 * skb carrying descriptors, but stops right after that skb.  So a
 * descriptor belongs to the message holding the last byte of the recvmsg()
 * that brought it (the fd-carrying message is the last one that started
 * in that read).  While a command waits for a descriptor, reads also stop
 * at every message boundary, which makes that exact whatever the sender's
 * write boundaries.
 */
#include "internal.h"
#include "../src/common/spin_wait.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The reader thread leads after the API has been idle for this long ... */
#define RX_GRACE_NS        (2u * 1000000u)
/* ... and, while the API stays busy, looks again at growing intervals. */
#define RX_PARK_MAX_NS     (32u * 1000000u)

int kc_rx_init(struct kvmi_dom *dom)
{
	pthread_condattr_t ca;

	dom->rx_buf = malloc(KC_RX_CAP);
	if (!dom->rx_buf)
		return -ENOMEM;
	dom->rx_msg_deadline = -1;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dom->rcond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

void kc_rx_free(struct kvmi_dom *dom)
{
	for (unsigned int i = 0; i < dom->rx_nfds; i++)
		if (dom->rx_fds[i].fd >= 0)
			close(dom->rx_fds[i].fd);
	dom->rx_nfds = 0;
	free(dom->rx_buf);
	dom->rx_buf = NULL;
	pthread_cond_destroy(&dom->rcond);
}

/* ---- the socket ----------------------------------------------------- */

/* The descriptors (SCM_RIGHTS) a recvmsg() brought: the first goes to
 * *passed if that is still -1, any further one is closed and counted in
 * *extra, as is a truncated control message. */
static void take_fds(const struct msghdr *mh, int *passed, unsigned int *extra)
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

/* Leader: a descriptor came with the bytes up to stream offset @last. */
static void rx_add_fd(struct kvmi_dom *dom, int fd, uint64_t last)
{
	if (dom->rx_nfds && dom->rx_fds[dom->rx_nfds - 1].last == last) {
		/* Not possible from one recvmsg; be safe: keep none. */
		if (dom->rx_fds[dom->rx_nfds - 1].fd >= 0)
			close(dom->rx_fds[dom->rx_nfds - 1].fd);
		dom->rx_fds[dom->rx_nfds - 1].fd = -1;
		if (fd >= 0)
			close(fd);
		return;
	}
	if (dom->rx_nfds == KC_RX_FDS) {
		kc_log(&dom->cfg, KVMI_LOG_WARNING, "%s: closed a descriptor (too many pending)",
		       dom->hello.name);
		if (fd >= 0)
			close(fd);
		return;
	}
	dom->rx_fds[dom->rx_nfds].fd = fd;
	dom->rx_fds[dom->rx_nfds].last = last;
	dom->rx_nfds++;
}

/* Leader: one non-blocking recvmsg() of at most @space bytes into the
 * buffer.  Returns the byte count, -EAGAIN, -ECONNRESET (EOF) or -errno. */
static ssize_t rx_recv(struct kvmi_dom *dom, size_t space)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = dom->rx_buf + dom->rx_tail, .iov_len = space };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	unsigned int extra = 0;
	int passed = -1;
	ssize_t n;

	n = recvmsg(dom->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;

	take_fds(&mh, &passed, &extra);
	if (extra) {
		kc_log(&dom->cfg, KVMI_LOG_WARNING, "%s: %u unexpected descriptors closed",
		       dom->hello.name, extra);
		/* Which one was meant is unknown: keep none. */
		if (passed >= 0)
			close(passed);
		passed = -1;
	}
	if (n == 0) {
		if (passed >= 0)
			close(passed);
		return -ECONNRESET;
	}
	if (passed >= 0 || extra)
		rx_add_fd(dom, passed, dom->rx_pos + (dom->rx_tail - dom->rx_head) + (uint64_t)n - 1);
	dom->rx_tail += (size_t)n;
	return n;
}

/*
 * Leader, no lock: reads more of the stream into the buffer.  Spins on
 * non-blocking reads for up to @spin_ns (not past @deadline), then sleeps
 * in poll() until @deadline (ms, -1: none).  With @exact, reads stop at the
 * end of the message that is being received.  Returns the bytes read,
 * -ETIMEDOUT, -ECONNRESET (EOF) or -errno.
 */
static ssize_t rx_fill(struct kvmi_dom *dom, bool exact, int64_t deadline, uint64_t spin_ns)
{
	size_t have, space;
	uint64_t spin_end = 0;

	if (dom->rx_head == dom->rx_tail) {
		dom->rx_head = dom->rx_tail = 0;
	} else if (KC_RX_CAP - dom->rx_head < KC_RX_MSG_MAX) {
		/* Keep room for the whole message that has started. */
		memmove(dom->rx_buf, dom->rx_buf + dom->rx_head, dom->rx_tail - dom->rx_head);
		dom->rx_tail -= dom->rx_head;
		dom->rx_head = 0;
	}
	have = dom->rx_tail - dom->rx_head;
	space = KC_RX_CAP - dom->rx_tail;
	if (exact) {
		size_t want = kvmi_proto_frame_need(dom->rx_buf + dom->rx_head, have);

		if (want > have && want - have < space)
			space = want - have;
	}

	if (spin_ns) {
		spin_end = kvmi_spin_now_ns() + spin_ns;
		if (deadline >= 0 && spin_end > (uint64_t)deadline * 1000000u)
			spin_end = (uint64_t)deadline * 1000000u;
	}
	for (;;) {
		struct pollfd pfd = { .fd = dom->fd, .events = POLLIN };
		ssize_t n = rx_recv(dom, space);
		int r;

		if (n != -EAGAIN)
			return n;
		/*
		 * Spin with poll(0): it looks at the queue without its lock and
		 * without registering a waiter, so the VMM's sendmsg() neither
		 * contends with us nor pays a wake-up (a spinning recvmsg()
		 * takes the locks the sender needs).
		 */
		while (spin_end) {
			r = poll(&pfd, 1, 0);
			if (r > 0)
				break;
			if (r < 0 && errno != EINTR)
				return -errno;
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			if (kvmi_spin_now_ns() >= spin_end)
				spin_end = 0;
		}
		if (pfd.revents)
			continue;
		r = poll(&pfd, 1, kvmi_proto_poll_ms(deadline));
		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* ---- dispatch ------------------------------------------------------- */

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

void kc_msg_close_fd(struct kc_msg *m)
{
	if (m->has_fd)
		close(m->fd);
	m->has_fd = false;
	m->fd = -1;
}

/* Leader, lock held: the message at rx_head is @total bytes long; give it
 * the descriptor that came with it, if any. */
static void rx_take_fd(struct kvmi_dom *dom, size_t total, struct kc_msg *m)
{
	uint64_t end = dom->rx_pos + total;
	unsigned int n = 0;

	m->has_fd = false;
	m->fd = -1;
	while (n < dom->rx_nfds && dom->rx_fds[n].last < end)
		n++;
	if (!n)
		return;
	if (n == 1 && dom->rx_fds[0].fd >= 0) {
		m->has_fd = true;
		m->fd = dom->rx_fds[0].fd;
	} else {
		kc_log(&dom->cfg, KVMI_LOG_WARNING,
		       "%s: closed %u descriptors that came with message id %u seq %u",
		       dom->hello.name, n, m->hdr.id, m->hdr.seq);
		for (unsigned int i = 0; i < n; i++)
			if (dom->rx_fds[i].fd >= 0)
				close(dom->rx_fds[i].fd);
	}
	dom->rx_nfds -= n;
	memmove(dom->rx_fds, dom->rx_fds + n, dom->rx_nfds * sizeof(dom->rx_fds[0]));
}

static void queue_event(struct kvmi_dom *dom, struct kvmi_event_msg *ev)
{
	struct kc_event_node *n = malloc(sizeof(*n));

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
	dom->rx_notify = true;
}

/* Leader, lock held.  m->payload is borrowed from the buffer. */
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
			dom->bad_events++;
			dom->rx_notify = true;
		} else {
			queue_event(dom, ev);
		}
		return;
	}

	if (kc_bulk_take(dom, m)) {
		kc_msg_close_fd(m);
		return;
	}
	/* A reply to an earlier request (an abandoned one past the slots, the
	 * tail of a failed bulk read) never goes to the waiting command: it
	 * may have been in the socket before that command was even sent. */
	if (is_abandoned(dom, &m->hdr) || !dom->waiting || dom->have_reply ||
	    (int32_t)(m->hdr.seq - dom->wait_seq) < 0) {
		dom->stray_msgs++;
		kc_log(&dom->cfg, KVMI_LOG_WARNING,
		       "%s: dropped an unexpected message (id %u, seq %u, %u bytes)",
		       dom->hello.name, m->hdr.id, m->hdr.seq, m->hdr.size);
		kc_msg_close_fd(m);
		return;
	}
	dom->reply = *m;
	dom->reply.payload = malloc(m->hdr.size ? m->hdr.size : 1);
	if (dom->reply.payload) {
		memcpy(dom->reply.payload, m->payload, m->hdr.size);
		dom->reply_err = 0;
	} else {
		dom->reply_err = -ENOMEM;
		kc_msg_close_fd(&dom->reply);
	}
	dom->have_reply = true;
	dom->rx_notify = true;
}

/* Leader, lock held: dispatches every whole message in the buffer. */
static void rx_dispatch(struct kvmi_dom *dom)
{
	for (;;) {
		struct kc_msg m;
		/* any u16 size is a message: the VMM's limit is not ours to enforce */
		ssize_t n = kvmi_proto_frame(dom->rx_buf + dom->rx_head,
					     dom->rx_tail - dom->rx_head, UINT16_MAX, &m.hdr);
		size_t total = (size_t)n;

		if (n <= 0)
			break;
		m.payload = dom->rx_buf + dom->rx_head + sizeof(m.hdr);
		rx_take_fd(dom, total, &m);
		handle_message(dom, &m);
		dom->rx_head += total;
		dom->rx_pos += total;
	}
	/* Once a message has started, the rest must follow in io_timeout. */
	if (dom->rx_head == dom->rx_tail) {
		dom->rx_partial = false;
		dom->rx_msg_deadline = -1;
	} else if (!dom->rx_partial || dom->rx_partial_pos != dom->rx_pos) {
		dom->rx_partial = true;
		dom->rx_partial_pos = dom->rx_pos;
		dom->rx_msg_deadline = kvmi_proto_deadline(dom->cfg.io_timeout_ms);
	}
	if (dom->rx_notify) {
		dom->rx_notify = false;
		kc_notify(dom);
	}
}

/* Lock held: the stream is gone (EOF, error, or a message never finished).
 * Nobody reads it again. */
static void rx_fail(struct kvmi_dom *dom, int err)
{
	if (dom->connected) {
		dom->connected = false;
		dom->disconnect_err = err;
	}
	kc_notify(dom);
	/* The reader thread reports it (on_disconnect) and ends. */
	pthread_cond_signal(&dom->rcond);
}

/* The poll() deadline of a leader waiting until @deadline. */
static int64_t rx_deadline(const struct kvmi_dom *dom, int64_t deadline)
{
	int64_t m = dom->rx_partial ? dom->rx_msg_deadline : -1;

	if (m < 0)
		return deadline;
	if (deadline < 0 || m < deadline)
		return m;
	return deadline;
}

/*
 * Lock held, leading: one read and its dispatch.  Returns 0, or -ETIMEDOUT
 * when the caller's @deadline passed (the stream stays usable); any other
 * failure marks the domain disconnected (and returns 0: !connected says it).
 */
static int rx_round(struct kvmi_dom *dom, int64_t deadline, uint64_t spin_ns)
{
	int64_t until = rx_deadline(dom, deadline);
	bool exact = dom->wait_fd;
	ssize_t n;

	pthread_mutex_unlock(&dom->lock);
	n = rx_fill(dom, exact, until, spin_ns);
	pthread_mutex_lock(&dom->lock);
	if (n > 0) {
		rx_dispatch(dom);
		return 0;
	}
	if (n == -ETIMEDOUT && (!dom->rx_partial || dom->rx_msg_deadline < 0 ||
				kvmi_proto_now_ms() < dom->rx_msg_deadline))
		return -ETIMEDOUT;
	if (n == -ETIMEDOUT)
		kc_log(&dom->cfg, KVMI_LOG_ERROR, "%s: a message stopped half-way", dom->hello.name);
	rx_fail(dom, (int)n);
	return 0;
}

/* ---- waiting -------------------------------------------------------- */

int kc_wait(struct kvmi_dom *dom, int64_t deadline, kc_done_fn done, const void *arg)
{
	int err = 0;

	dom->api_waiters++;
	dom->api_gen++;
	for (;;) {
		if (done(dom, arg)) {
			err = 0;
			break;
		}
		if (!dom->connected) {
			err = -ENOTCONN;
			break;
		}
		if (err == -ETIMEDOUT)
			break;
		if (!dom->leading) {
			dom->leading = true;
			while (!done(dom, arg) && dom->connected && !err)
				err = rx_round(dom, deadline, kvmi_spin_budget_ns());
			dom->leading = false;
			/* A follower may lead now. */
			kc_notify(dom);
			continue;
		}
		if (deadline >= 0 && kvmi_proto_now_ms() >= deadline)
			err = -ETIMEDOUT;
		else
			err = kc_cond_wait(dom, deadline);
	}
	dom->api_waiters--;
	dom->api_last_ns = kvmi_spin_now_ns();
	if (dom->closing)
		kc_notify(dom);         /* kc_wait_quiesce() */
	else if (dom->ev_fd >= 0 && !dom->api_waiters && !dom->leading)
		pthread_cond_signal(&dom->rcond);       /* back to the reader thread */
	return err;
}

void kc_wait_quiesce(struct kvmi_dom *dom)
{
	while (dom->api_waiters)
		pthread_cond_wait(&dom->cond, &dom->lock);
}

/* ---- the reader thread ---------------------------------------------- */

static void timespec_from_ns(struct timespec *ts, uint64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Lock held: lead until an API thread starts waiting (it then follows for
 * the message being read, and leads afterwards). */
static void reader_lead(struct kvmi_dom *dom)
{
	unsigned int gen = dom->api_gen;

	dom->leading = true;
	while (dom->connected && dom->api_gen == gen)
		(void)rx_round(dom, -1, 0);
	dom->leading = false;
	kc_notify(dom);
}

static void *reader_main(void *arg)
{
	struct kvmi_dom *dom = arg;
	uint64_t park = RX_GRACE_NS;
	kvmi_disconnect_fn cb;
	void *ctx;
	int err;

	pthread_mutex_lock(&dom->lock);
	while (dom->connected) {
		uint64_t now = kvmi_spin_now_ns();
		struct timespec ts;

		if (!dom->leading && !dom->api_waiters &&
		    (dom->ev_fd >= 0 || now - dom->api_last_ns >= RX_GRACE_NS)) {
			reader_lead(dom);
			park = RX_GRACE_NS;
			continue;
		}
		/* The API is busy: look again later, less often the longer it
		 * stays busy (a timer, never a signal from the API threads). */
		timespec_from_ns(&ts, now + park);
		park = park * 2 < RX_PARK_MAX_NS ? park * 2 : RX_PARK_MAX_NS;
		pthread_cond_timedwait(&dom->rcond, &dom->lock, &ts);
	}
	err = dom->disconnect_err;
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

	pthread_mutex_lock(&dom->lock);
	dom->connected = true;
	/* The handshake's GET_VERSION comes next: its thread leads. */
	dom->api_last_ns = kvmi_spin_now_ns();
	pthread_mutex_unlock(&dom->lock);
	err = pthread_create(&dom->reader, NULL, reader_main, dom);
	if (err) {
		pthread_mutex_lock(&dom->lock);
		dom->connected = false;
		pthread_mutex_unlock(&dom->lock);
		return -err;
	}
	dom->reader_started = true;
	return 0;
}
