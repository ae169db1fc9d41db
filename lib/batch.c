/* Client library: batches (KVMI_CONTROL_CMD_RESPONSE), the way libkvmi's
 * kvmi_batch_* do it:
 *
 *   CMD_RESPONSE{enable=0, now=1}   seq taken by kvmi_batch_new()
 *   queued messages                 each takes a seq when queued
 *                                   (event replies keep the event's seq)
 *   CMD_RESPONSE{enable=1, now=W}   seq taken at submit
 *
 * all in one write.  W=1 (and the submit waits for that one reply) unless an
 * event reply is queued: then nothing answers and submit returns at once.
 * A batch holding nothing but one event reply is sent bare. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BATCH_MAX_BYTES (1024u * 1024u - 32u)   /* libkvmi's MAX_BATCH_BYTES */

int kc_build_page_access(const uint64_t *gpa, const uint8_t *access, unsigned int count,
			 uint16_t view, void **out, size_t *out_size);

struct kvmi_batch {
	struct kvmi_dom *dom;
	uint8_t *buf;
	size_t len, cap;
	unsigned int nmsgs;
	bool have_first_seq;
	uint32_t first_seq;
	bool has_event_reply;
};

int kvmi_batch_new(struct kvmi_dom *dom, struct kvmi_batch **out)
{
	struct kvmi_batch *b;

	if (!dom || !out)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->dom = dom;
	b->first_seq = kc_next_seq(dom);
	b->have_first_seq = true;
	*out = b;
	return 0;
}

void kvmi_batch_destroy(struct kvmi_batch *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b);
}

static int append(struct kvmi_batch *b, const struct kvmi_msg_hdr *hdr,
		  const void *p1, size_t n1, const void *p2, size_t n2)
{
	size_t need = sizeof(*hdr) + n1 + n2;

	if (n1 + n2 > KVMI_MSG_SIZE)
		return -E2BIG;
	if (b->len + need > BATCH_MAX_BYTES)
		return -E2BIG;
	if (b->len + need > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		uint8_t *nb;

		while (cap < b->len + need)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb)
			return -ENOMEM;
		b->buf = nb;
		b->cap = cap;
	}
	if (!b->have_first_seq) {
		b->first_seq = kc_next_seq(b->dom);
		b->have_first_seq = true;
	}
	memcpy(b->buf + b->len, hdr, sizeof(*hdr));
	b->len += sizeof(*hdr);
	if (n1) {
		memcpy(b->buf + b->len, p1, n1);
		b->len += n1;
	}
	if (n2) {
		memcpy(b->buf + b->len, p2, n2);
		b->len += n2;
	}
	b->nmsgs++;
	return 0;
}

static int add_cmd(struct kvmi_batch *b, uint16_t id, const void *p1, size_t n1,
		   const void *p2, size_t n2)
{
	struct kvmi_msg_hdr hdr = { .id = id, .size = (uint16_t)(n1 + n2) };

	if (!b->have_first_seq) {
		/* Keep libkvmi's order: the batch's own seq comes first. */
		b->first_seq = kc_next_seq(b->dom);
		b->have_first_seq = true;
	}
	hdr.seq = kc_next_seq(b->dom);
	return append(b, &hdr, p1, n1, p2, n2);
}

int kvmi_batch_add(struct kvmi_batch *b, uint16_t id, const void *req, size_t req_size)
{
	if (!b || (!req && req_size) || id == KVMI_EVENT || id == KVMI_EVENT_REPLY)
		return -EINVAL;
	return add_cmd(b, id, req, req_size, NULL, 0);
}

int kvmi_batch_set_registers(struct kvmi_batch *b, uint16_t vcpu,
			     const struct kvmi_x86_regs *regs)
{
	struct kvmi_vcpu_hdr vh = { .vcpu = vcpu };

	if (!b || !regs)
		return -EINVAL;
	return add_cmd(b, KVMI_SET_REGISTERS, &vh, sizeof(vh), regs, sizeof(*regs));
}

int kvmi_batch_set_page_access(struct kvmi_batch *b, const uint64_t *gpa,
			       const uint8_t *access, unsigned int count, uint16_t view)
{
	void *req;
	size_t size;
	int err;

	if (!b)
		return -EINVAL;
	err = kc_build_page_access(gpa, access, count, view, &req, &size);
	if (err)
		return err;
	err = add_cmd(b, KVMI_SET_PAGE_ACCESS, req, size, NULL, 0);
	free(req);
	return err;
}

int kvmi_batch_pause_vcpu(struct kvmi_batch *b, uint16_t vcpu, bool wait)
{
	struct kvmi_vcpu_hdr vh = { .vcpu = vcpu };
	struct kvmi_pause_vcpu req = { .wait = wait };

	if (!b)
		return -EINVAL;
	return add_cmd(b, KVMI_PAUSE_VCPU, &vh, sizeof(vh), &req, sizeof(req));
}

int kvmi_batch_control_events(struct kvmi_batch *b, uint16_t vcpu, uint16_t event_id,
			      bool enable)
{
	struct kvmi_vcpu_hdr vh = { .vcpu = vcpu };
	struct kvmi_control_events req = { .event_id = event_id, .enable = enable };

	if (!b)
		return -EINVAL;
	return add_cmd(b, KVMI_CONTROL_EVENTS, &vh, sizeof(vh), &req, sizeof(req));
}

int kvmi_batch_reply_event(struct kvmi_batch *b, const struct kvmi_event_msg *ev,
			   uint8_t action, const void *specific, size_t specific_size)
{
	struct kvmi_msg_hdr hdr;
	uint8_t rpl_hdr[16];
	struct iovec iov[3];
	int err;

	if (!b || !ev || (!specific && specific_size))
		return -EINVAL;
	if (specific_size > KVMI_MSG_SIZE - sizeof(rpl_hdr))
		return -E2BIG;
	kc_event_build_reply(iov, &hdr, rpl_hdr, ev, action, specific, specific_size);
	err = append(b, &hdr, rpl_hdr, sizeof(rpl_hdr), specific, specific_size);
	if (!err)
		b->has_event_reply = true;
	return err;
}

static void reset(struct kvmi_batch *b)
{
	b->len = 0;
	b->nmsgs = 0;
	b->has_event_reply = false;
	b->have_first_seq = false;
}

int kvmi_batch_submit(struct kvmi_batch *b)
{
	struct kvmi_dom *dom;
	struct kvmi_control_cmd_response off = { .enable = 0, .now = 1 };
	struct kvmi_control_cmd_response on = { .enable = 1 };
	struct kvmi_msg_hdr pre = { .id = KVMI_CONTROL_CMD_RESPONSE, .size = sizeof(off) };
	struct kvmi_msg_hdr post = { .id = KVMI_CONTROL_CMD_RESPONSE, .size = sizeof(on) };
	struct iovec iov[5];
	struct kc_msg m = { 0 };
	bool wait;
	int err;

	if (!b)
		return -EINVAL;
	dom = b->dom;
	if (b->nmsgs == 0) {
		reset(b);
		return 0;
	}

	pthread_mutex_lock(&dom->cmd_lock);
	if (b->nmsgs == 1 && b->has_event_reply) {
		struct iovec one = { .iov_base = b->buf, .iov_len = b->len };

		err = kc_send_wait(dom, 0, 0, -1, &one, 1, false, NULL);
		goto out;
	}

	wait = !b->has_event_reply;
	on.now = wait;
	pre.seq = b->first_seq;
	post.seq = kc_next_seq(dom);
	iov[0] = (struct iovec){ .iov_base = &pre, .iov_len = sizeof(pre) };
	iov[1] = (struct iovec){ .iov_base = &off, .iov_len = sizeof(off) };
	iov[2] = (struct iovec){ .iov_base = b->buf, .iov_len = b->len };
	iov[3] = (struct iovec){ .iov_base = &post, .iov_len = sizeof(post) };
	iov[4] = (struct iovec){ .iov_base = &on, .iov_len = sizeof(on) };
	err = kc_send_wait(dom, KVMI_CONTROL_CMD_RESPONSE, post.seq,
			   kvmi_proto_deadline(dom->cfg.io_timeout_ms), iov, 5, wait, &m);
	if (!err && wait) {
		err = kc_reply_data(&m, NULL, 0, NULL);
		free(m.payload);
	}
out:
	pthread_mutex_unlock(&dom->cmd_lock);
	reset(b);
	return err;
}
