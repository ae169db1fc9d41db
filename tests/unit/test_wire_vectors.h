/* SPDX-License-Identifier: MIT */
/*
 * test_wire_vectors.h - the recorded libkvmi wire vectors as a C table,
 * generated at build time by test_wire_gen.py (empty if the JSON file is
 * not available, and the vector tests then skip).
 */
#ifndef TEST_WIRE_VECTORS_H
#define TEST_WIRE_VECTORS_H

#include <stddef.h>
#include <stdint.h>

struct wire_vector {
	const char *name;
	const uint8_t *request;         /* every byte the tool (libkvmi) sent */
	size_t request_len;
	const uint8_t *reply;           /* every byte the recording VMM sent */
	size_t reply_len;
	const uint8_t *event;           /* event and reply_event vectors: the event */
	size_t event_len;
	const uint8_t *followup_request;
	size_t followup_request_len;
	const uint8_t *followup_reply;
	size_t followup_reply_len;
	unsigned hs_request_prefix;     /* handshake bytes before the messages */
	unsigned hs_reply_prefix;
	int last_reply_err;
	unsigned nr_replies;
};

extern const struct wire_vector wire_vectors[];
extern const size_t wire_vectors_count;

#endif
