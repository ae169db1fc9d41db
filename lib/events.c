/* Client library: event decoding and event replies.
 *
 * Decoding is tolerant the way libkvmi is: the common part may be shorter
 * (>= 8 bytes, rest zero) or longer (extra ignored) than our 544-byte
 * struct kvmi_event, and the specific part starts at kvmi_event.size; the
 * specific part may also be shorter or longer than the struct we know.
 * Unlike libkvmi, events with ids we do not know (e.g. the kernel's
 * CMD_ERROR) are delivered too, with their raw bytes, so the tool can still
 * reply to them instead of leaving a vCPU waiting. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Size of the event-specific struct this library knows for @id; all that
 * came, up to the largest we know, for an id we do not know. */
static size_t specific_known(uint8_t id)
{
	const struct kvmi_proto_event *e = kvmi_proto_event(id);

	return e ? e->data_size : sizeof(((struct kvmi_event_msg *)0)->specific.raw);
}

int kc_decode_event(const struct kc_msg *m, struct kvmi_event_msg **out)
{
	struct kvmi_event_msg *ev;
	size_t size = m->hdr.size, common, n, spec;
	uint16_t csize;

	*out = NULL;
	if (size > KVMI_MSG_SIZE)
		return -EMSGSIZE;
	if (size < KVMI_EVENT_COMMON_MIN_SIZE)
		return -EINVAL;
	memcpy(&csize, m->payload, sizeof(csize));
	common = csize;
	if (common < KVMI_EVENT_COMMON_MIN_SIZE || common > size)
		return -EINVAL;

	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	n = common < sizeof(ev->common) ? common : sizeof(ev->common);
	memcpy(&ev->common, m->payload, n);

	ev->seq = m->hdr.seq;
	ev->vcpu = ev->common.vcpu;
	ev->event = ev->common.event;
	ev->common_size = (uint32_t)common;
	ev->specific_size = (uint32_t)(size - common);

	spec = specific_known(ev->event);
	n = ev->specific_size < spec ? ev->specific_size : spec;
	memcpy(&ev->specific, m->payload + common, n);

	*out = ev;
	return 0;
}

void kvmi_event_free(struct kvmi_event_msg *ev)
{
	free(ev);
}

bool kvmi_event_needs_reply(const struct kvmi_event_msg *ev)
{
	return kvmi_proto_event_needs_reply(ev->event);
}

void kc_event_build_reply(struct iovec iov[3], struct kvmi_msg_hdr *hdr,
			  uint8_t rpl_hdr[16], const struct kvmi_event_msg *ev,
			  uint8_t action, const void *specific, size_t specific_size)
{
	struct kvmi_vcpu_hdr vh = { .vcpu = ev->vcpu };
	struct kvmi_event_reply er = { .action = action, .event = ev->event };

	memcpy(rpl_hdr, &vh, sizeof(vh));
	memcpy(rpl_hdr + sizeof(vh), &er, sizeof(er));

	hdr->id = KVMI_EVENT_REPLY;
	hdr->size = (uint16_t)(sizeof(vh) + sizeof(er) + specific_size);
	hdr->seq = ev->seq;

	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(*hdr);
	iov[1].iov_base = rpl_hdr;
	iov[1].iov_len = sizeof(vh) + sizeof(er);
	iov[2].iov_base = (void *)specific;
	iov[2].iov_len = specific ? specific_size : 0;
}

int kvmi_dom_reply_event(struct kvmi_dom *dom, const struct kvmi_event_msg *ev,
			 uint8_t action, const void *specific, size_t specific_size)
{
	struct kvmi_msg_hdr hdr;
	uint8_t rpl_hdr[16];
	struct iovec iov[3];

	if (!ev || (!specific && specific_size))
		return -EINVAL;
	if (specific_size > KVMI_MSG_SIZE - sizeof(rpl_hdr))
		return -E2BIG;
	if (!kvmi_dom_is_connected(dom))
		return -ENOTCONN;
	kc_event_build_reply(iov, &hdr, rpl_hdr, ev, action, specific, specific_size);
	return kc_send(dom, iov, specific_size ? 3 : 2);
}

int kvmi_dom_reply_event_raw(struct kvmi_dom *dom, uint32_t seq, const void *data,
			     size_t size)
{
	struct kvmi_msg_hdr hdr = { .id = KVMI_EVENT_REPLY, .seq = seq };
	struct iovec iov[2] = {
		{ .iov_base = &hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = (void *)data, .iov_len = size },
	};

	if (!data && size)
		return -EINVAL;
	if (size > KVMI_MSG_SIZE)
		return -E2BIG;
	if (!kvmi_dom_is_connected(dom))
		return -ENOTCONN;
	hdr.size = (uint16_t)size;
	return kc_send(dom, iov, size ? 2 : 1);
}
