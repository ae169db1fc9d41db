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

int kvmi_dom_read_physical_bulk(struct kvmi_dom *dom, uint64_t gpa, void *buf, size_t size)
{
	struct kc_bulk b;
	uint8_t *out = buf;
	size_t left = size;
	unsigned int total = 0;
	int64_t deadline;
	int err = 0;

	if (!buf && size)
		return -EINVAL;
	if (size && gpa + size - 1 < gpa)
		return -EINVAL;
	for (uint64_t a = gpa; a < gpa + size; a = (a & ~(uint64_t)(PAGE - 1)) + PAGE)
		total++;
	if (!total)
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

	deadline = kc_deadline(dom->cfg.io_timeout_ms);
	for (;;) {
		/* Fill the window with one writev (stop after a send error). */
		if (!err && b.sent < total && b.sent - b.done <= BULK_WINDOW / 2) {
			struct kvmi_msg_hdr hdr[BULK_WINDOW];
			struct kvmi_read_physical req[BULK_WINDOW];
			struct iovec iov[2 * BULK_WINDOW];
			unsigned int k = 0, first = b.sent;

			pthread_mutex_lock(&dom->lock);
			while (b.sent < total && b.sent - b.done < BULK_WINDOW) {
				uint16_t n = (uint16_t)(PAGE - (gpa & (PAGE - 1)));
				unsigned int slot = b.sent % BULK_WINDOW;

				if (n > left)
					n = (uint16_t)left;
				memset(&req[k], 0, sizeof(req[k]));
				req[k].gpa = gpa;
				req[k].size = n;
				hdr[k] = (struct kvmi_msg_hdr){ .id = KVMI_READ_PHYSICAL, .size = sizeof(req[k]),
								 .seq = kc_next_seq(dom) };
				if (b.sent == 0)
					b.first_seq = hdr[k].seq;
				/* seqs of one domain are handed out under cmd_lock only */
				if (hdr[k].seq != b.first_seq + b.sent) {
					err = -EPROTO;
					break;
				}
				iov[2 * k] = (struct iovec){ &hdr[k], sizeof(hdr[k]) };
				iov[2 * k + 1] = (struct iovec){ &req[k], sizeof(req[k]) };
				b.dst[slot] = out;
				b.len[slot] = n;
				b.sent++;
				gpa += n;
				out += n;
				left -= n;
				k++;
			}
			pthread_mutex_unlock(&dom->lock);
			if (k && !err) {
				err = kc_send(dom, iov, (int)(2 * k));
				if (err) {
					pthread_mutex_lock(&dom->lock);
					b.sent = first; /* whole writev or nothing counted */
					pthread_mutex_unlock(&dom->lock);
				}
			}
		}
		/* Wait until half the window is free again (or, with nothing
		 * left to send, until every reply is in). */
		pthread_mutex_lock(&dom->lock);
		{
			bool last = b.sent == total || err;
			struct bulk_wait w = { .b = &b, .last = last };

			(void)kc_wait(dom, deadline, bulk_ready, &w);
			if (!bulk_ready(dom, &w)) {
				/* Timed out or disconnected: replies still due are
				 * dropped as strays if they ever come. */
				if (!err)
					err = dom->connected ? -ETIMEDOUT : -ENOTCONN;
				pthread_mutex_unlock(&dom->lock);
				break;
			}
			if (last && b.done == b.sent) {
				pthread_mutex_unlock(&dom->lock);
				break;
			}
		}
		pthread_mutex_unlock(&dom->lock);
	}

	pthread_mutex_lock(&dom->lock);
	dom->bulk = NULL;
	pthread_mutex_unlock(&dom->lock);
	pthread_mutex_unlock(&dom->cmd_lock);
	return err ? err : b.err;
}
