/* SPDX-License-Identifier: MIT */
/*
 * stream.c - reading the tool's stream: bytes read ahead into inbuf, whole
 * messages taken off its head (framing: src/proto), and the introspection
 * thread's wait for the next message.
 *
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
#include "internal.h"
#include "../common/spin_wait.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How long the introspection thread stays off the socket per look while
 * vCPUs read it themselves: also the longest a command can wait when it
 * arrives just after the last reading vCPU left (nobody wakes the
 * introspection thread then, so that events cost no wake-up). */
#define RX_PARK_NS (200 * 1000)

bool ks_rx_head(struct kvmi_server *srv, struct kvmi_msg_hdr *hdr, const uint8_t **payload)
{
	if (kvmi_proto_frame(srv->inbuf + srv->in_start, srv->in_end - srv->in_start,
			     KVMI_MSG_SIZE, hdr) <= 0)
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
 * rx_lock held: the message at the head of inbuf, copied into rbuf: 1, 0
 * when it is not all there yet, -EMSGSIZE when it can never fit.
 */
static int take_head(struct kvmi_server *srv, struct kvmi_msg_hdr *hdr, bool *more)
{
	ssize_t n = kvmi_proto_frame(srv->inbuf + srv->in_start, srv->in_end - srv->in_start,
				     KVMI_MSG_SIZE, hdr);
	const uint8_t *payload;
	struct kvmi_msg_hdr next;

	if (n <= 0)
		return (int)n;
	memcpy(srv->rbuf, srv->inbuf + srv->in_start + sizeof(*hdr), hdr->size);
	/* Zeroed tail: small fixed reads past hdr.size see zeros. */
	memset(srv->rbuf + hdr->size, 0, sizeof(srv->rbuf) - hdr->size);
	ks_rx_consume(srv, (size_t)n);
	*more = ks_rx_head(srv, &next, &payload);
	return 1;
}

/*
 * rx_lock held, released on return: reads what has arrived. Returns as
 * ks_rx_fill() does, or -EPROTO when the stream cannot go on.
 */
static ssize_t read_more(struct kvmi_server *srv, int fd)
{
	ssize_t n = ks_rx_fill(srv, fd);
	size_t left = srv->in_end - srv->in_start;
	bool vcpu_closed = srv->rx_proto_error;

	kvmi_mutex_unlock(&srv->rx_lock);
	/* a vCPU met a bad reply and closed (events.c) */
	if (vcpu_closed)
		return -EPROTO;
	if (n == 0 && left) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "truncated message (%zu bytes at the end); closing",
		       left);
		return -EPROTO;
	}
	return n;
}

/* Nothing to read: sleep until the socket or a kick wakes us. */
static int wait_for_bytes(struct kvmi_server *srv, int fd)
{
	struct pollfd p[2] = {
		{ .fd = fd, .events = POLLIN },
		{ .fd = srv->kick_fd, .events = POLLIN },
	};

	if (poll(p, 2, -1) < 0 && errno != EINTR)
		return -errno;
	if (p[1].revents & POLLIN)
		drain_kick(srv);
	return 0;
}

/* A vCPU reads; it kicks us when it meets something else than a reply,
 * or stops reading. */
static void park(struct kvmi_server *srv)
{
	const struct timespec ts = { 0, RX_PARK_NS };
	struct pollfd p = { .fd = srv->kick_fd, .events = POLLIN };

	if (ppoll(&p, 1, &ts, NULL) > 0)
		drain_kick(srv);
}

int ks_next_message(struct kvmi_server *srv, int fd, struct kvmi_msg_hdr *hdr, bool *more)
{
	/* A tool that sends one command after another (reads of guest
	 * memory, say) sends the next within microseconds of a reply: look
	 * for it without sleeping for a while (KVMI_SPIN_US) after each. */
	uint64_t spin_end = srv->rx_socket ? kvmi_spin_now_ns() + kvmi_spin_budget_ns() : 0;
	unsigned spins = 0;

	for (;;) {
		ssize_t n;
		int err;

		kvmi_mutex_lock(&srv->rx_lock);
		err = take_head(srv, hdr, more);
		if (err > 0)
			return 1;
		if (err < 0) {
			kvmi_mutex_unlock(&srv->rx_lock);
			ks_log(srv, KVMI_SRV_LOG_WARN, "message %u of %u bytes exceeds %u; closing",
			       hdr->id, hdr->size, KVMI_MSG_SIZE);
			return -EPROTO;
		}
		if (atomic_load(&srv->vcpu_readers)) {
			kvmi_mutex_unlock(&srv->rx_lock);
			park(srv);
			continue;
		}
		n = read_more(srv, fd);
		if (n > 0)
			continue;
		if (n != -EAGAIN)
			return (int)n;
		/* (not while vCPUs sleep on replies: several events in flight
		 * need the CPUs for the vCPUs and the tool) */
		if (spin_end && kvmi_spin_now_ns() < spin_end && !atomic_load(&srv->vcpu_sleepers)) {
			kvmi_spin_relax(++spins);
			continue;
		}
		err = wait_for_bytes(srv, fd);
		if (err)
			return err;
	}
}
