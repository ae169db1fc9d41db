/* SPDX-License-Identifier: MIT */
/*
 * Zero-copy guest memory for the introspection tool: GET_MAP_TOKEN and the
 * kvmi extension KVMI_X_MAP_MEMORY on top of the guest-RAM memfd.
 */
#ifndef KVMI_VM_INTROSPECT_MAPPING_H
#define KVMI_VM_INTROSPECT_MAPPING_H

#include <stdbool.h>
#include <stdint.h>

#include "../../introspection/introspection.h"

struct guest_memory;

/* Redeem token, check that [gpa, gpa+len) is RAM of one region, and return
 * a new descriptor of the memfd (read-only: a fresh read-only open of it)
 * with the offset of gpa in it.  0 or -KVM_E*. */
int mapping_map(const struct guest_memory *mem, struct kvmi_map_tokens *tokens,
		const struct kvmi_map_mem_token *token, uint64_t gpa, uint64_t len,
		bool readonly, int *fd, uint64_t *offset);

#endif
