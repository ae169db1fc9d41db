/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the client library's event decoder (lib/events.c), which
 * reads what a VMM sends.  The input is the payload after the 8-byte
 * message header; the header's size is the input length (capped as the
 * reader caps it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kvmi_event_msg *ev = NULL;
	struct kc_msg m;

	if (size > 0xffff)
		return 0;
	memset(&m, 0, sizeof(m));
	m.hdr.id = KVMI_EVENT;
	m.hdr.size = (uint16_t)size;
	m.hdr.seq = 1;
	m.payload = malloc(size ? size : 1);
	if (!m.payload)
		return 0;
	memcpy(m.payload, data, size);
	if (kc_decode_event(&m, &ev) == 0) {
		/* Touch what a tool reads. */
		volatile uint32_t sink = ev->event + ev->vcpu + ev->common_size + ev->specific_size;

		(void)sink;
		kvmi_event_free(ev);
	}
	free(m.payload);
	return 0;
}
