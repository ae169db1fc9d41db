/* SPDX-License-Identifier: MIT */
/*
 * frame.c - finding whole messages in a byte stream: both ends read ahead
 * into a buffer (one system call for many pipelined messages) and take
 * messages off its head with these.
 */
#include "kvmi-proto.h"

#include <errno.h>
#include <string.h>

bool kvmi_proto_frame_hdr(const void *buf, size_t have, struct kvmi_msg_hdr *hdr)
{
	if (have < sizeof(*hdr))
		return false;
	/* the buffer need not be aligned */
	memcpy(hdr, buf, sizeof(*hdr));
	return true;
}

size_t kvmi_proto_frame_need(const void *buf, size_t have)
{
	struct kvmi_msg_hdr hdr;

	if (!kvmi_proto_frame_hdr(buf, have, &hdr))
		return sizeof(hdr);
	return sizeof(hdr) + hdr.size;
}

ssize_t kvmi_proto_frame(const void *buf, size_t have, size_t max_size,
			 struct kvmi_msg_hdr *hdr)
{
	if (!kvmi_proto_frame_hdr(buf, have, hdr))
		return 0;
	if (hdr->size > max_size)
		return -EMSGSIZE;
	if (have < sizeof(*hdr) + hdr->size)
		return 0;
	return (ssize_t)(sizeof(*hdr) + hdr->size);
}
