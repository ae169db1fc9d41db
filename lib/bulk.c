/* SPDX-License-Identifier: MIT */
/*
 * Pipelined READ_PHYSICAL: one READ_PHYSICAL reads at most one 4 KiB page,
 * so a large read is many commands.  Sent one at a time, each costs a full
 * round trip through both processes; here up to BULK_WINDOW requests are on
 * the wire at once and whoever reads the socket (normally this thread,
 * recv.c) copies each reply from the read buffer straight into the caller's
 * buffer: one memcpy, no allocation (replies come in request order: the VMM
 * serves VM commands one after another).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BULK_WINDOW 64u
#define PAGE        4096u

struct kc_bulk {
	uint32_t first_seq;
	unsigned int sent, done;
	int err;                        /* first failure, as -errno */
	uint8_t *dst[BULK_WINDOW];
	uint16_t len[BULK_WINDOW];
};

/* The leader, dom->lock held: a reply of the bulk in flight? */
bool kc_bulk_take(struct kvmi_dom *dom, struct kc_msg *m)
{
	struct kc_bulk *b = dom->bulk;
	struct kvmi_error_code ec;
	unsigned int slot;

	if (!b || m->hdr.id != KVMI_READ_PHYSICAL || m->hdr.seq != b->first_seq + b->done ||
	    b->done >= b->sent)
		return false;
	slot = b->done % BULK_WINDOW;
	if (m->hdr.size < sizeof(ec)) {
		if (!b->err)
			b->err = -EPROTO;
	} else {
		memcpy(&ec, m->payload, sizeof(ec));
		if (ec.err) {
			if (!b->err)
				b->err = kc_map_err(ec.err);
		} else if (m->hdr.size != sizeof(ec) + b->len[slot]) {
			if (!b->err)
				b->err = -EPROTO;
		} else {
			memcpy(b->dst[slot], m->payload + sizeof(ec), b->len[slot]);
		}
	}
	b->done++;
	/* The sender refills when half the window is free: wake it then. */
	if (b->done == b->sent || b->sent - b->done == BULK_WINDOW / 2)
		dom->rx_notify = true;
	return true;
}

struct bulk_wait {
	const struct kc_bulk *b;
	bool last;                      /* nothing left to send: wait for all */
};

/* Every reply in, or (with more to send) half the window free. */
static bool bulk_ready(struct kvmi_dom *dom, const void *arg)
{
	const struct bulk_wait *w = arg;

	(void)dom;
	return w->b->done == w->b->sent || (!w->last && w->b->sent - w->b->done <= BULK_WINDOW / 2);
}

/* Where the next request of the read starts. */
struct bulk_cursor {
	uint64_t gpa;
	uint8_t *out;
	size_t left;
	unsigned int total;             /* requests in all: one per page touched */
};

/* dom->lock held: appends the next request to hdr/req/iov slot k. */
static int bulk_next(struct kvmi_dom *dom, struct kc_bulk *b, struct bulk_cursor *c,
		     struct kvmi_msg_hdr *hdr, struct kvmi_read_physical *req, struct iovec *iov)
{
	uint16_t n = (uint16_t)(PAGE - (c->gpa & (PAGE - 1)));

	if (n > c->left)
		n = (uint16_t)c->left;
	memset(req, 0, sizeof(*req));
	req->gpa = c->gpa;
	req->size = n;
	*hdr = (struct kvmi_msg_hdr){ .id = KVMI_READ_PHYSICAL, .size = sizeof(*req),
				      .seq = kc_next_seq(dom) };
	if (b->sent == 0)
		b->first_seq = hdr->seq;
	/* seqs of one domain are handed out under cmd_lock only */
	if (hdr->seq != b->first_seq + b->sent)
		return -EPROTO;
	iov[0] = (struct iovec){ hdr, sizeof(*hdr) };
	iov[1] = (struct iovec){ req, sizeof(*req) };
	b->dst[b->sent % BULK_WINDOW] = c->out;
	b->len[b->sent % BULK_WINDOW] = n;
	b->sent++;
	c->gpa += n;
	c->out += n;
	c->left -= n;
	return 0;
}

/* Fills the window with one writev. */
static int bulk_send(struct kvmi_dom *dom, struct kc_bulk *b, struct bulk_cursor *c)
{
	struct kvmi_msg_hdr hdr[BULK_WINDOW];
	struct kvmi_read_physical req[BULK_WINDOW];
	struct iovec iov[2 * BULK_WINDOW];
	unsigned int k = 0, first = b->sent;
	int err = 0;

	pthread_mutex_lock(&dom->lock);
	while (!err && b->sent < c->total && b->sent - b->done < BULK_WINDOW) {
		err = bulk_next(dom, b, c, &hdr[k], &req[k], &iov[2 * k]);
		k += !err;
	}
	pthread_mutex_unlock(&dom->lock);
	if (!k || err)
		return err;
	err = kc_send(dom, iov, (int)(2 * k));
	if (err) {
		pthread_mutex_lock(&dom->lock);
		b->sent = first;        /* whole writev or nothing counted */
		pthread_mutex_unlock(&dom->lock);
	}
	return err;
}

/* Waits until half the window is free again (or, with nothing left to
 * send, until every reply is in). True when the read is over; *err gets
 * why if it failed. */
static bool bulk_wait_window(struct kvmi_dom *dom, struct kc_bulk *b, unsigned int total,
			     int64_t deadline, int *err)
{
	struct bulk_wait w = { .b = b, .last = b->sent == total || *err };
	bool over = false;

	pthread_mutex_lock(&dom->lock);
	(void)kc_wait(dom, deadline, bulk_ready, &w);
	if (!bulk_ready(dom, &w)) {
		/* Timed out or disconnected: replies still due are dropped
		 * as strays if they ever come. */
		if (!*err)
			*err = dom->connected ? -ETIMEDOUT : -ENOTCONN;
		over = true;
	} else if (w.last && b->done == b->sent) {
		over = true;
	}
	pthread_mutex_unlock(&dom->lock);
	return over;
}

int kvmi_dom_read_physical_bulk(struct kvmi_dom *dom, uint64_t gpa, void *buf, size_t size)
{
	struct bulk_cursor c = { .gpa = gpa, .out = buf, .left = size };
	struct kc_bulk b;
	int64_t deadline;
	int err = 0;

	if (!buf && size)
		return -EINVAL;
	if (size && gpa + size - 1 < gpa)
		return -EINVAL;
	for (uint64_t a = gpa; a < gpa + size; a = (a & ~(uint64_t)(PAGE - 1)) + PAGE)
		c.total++;
	if (!c.total)
		return 0;

	memset(&b, 0, sizeof(b));
	pthread_mutex_lock(&dom->cmd_lock);
	pthread_mutex_lock(&dom->lock);
	if (!dom->connected) {
		pthread_mutex_unlock(&dom->lock);
		pthread_mutex_unlock(&dom->cmd_lock);
		return -ENOTCONN;
	}
	dom->bulk = &b;
	pthread_mutex_unlock(&dom->lock);

	deadline = kvmi_proto_deadline(dom->cfg.io_timeout_ms);
	do {
		/* (no more sending after a send error) */
		if (!err && b.sent < c.total && b.sent - b.done <= BULK_WINDOW / 2)
			err = bulk_send(dom, &b, &c);
	} while (!bulk_wait_window(dom, &b, c.total, deadline, &err));

	pthread_mutex_lock(&dom->lock);
	dom->bulk = NULL;
	pthread_mutex_unlock(&dom->lock);
	pthread_mutex_unlock(&dom->cmd_lock);
	return err ? err : b.err;
}
