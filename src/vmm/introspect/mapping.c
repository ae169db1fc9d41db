/* SPDX-License-Identifier: MIT */
/*
 * KVMI_X_MAP_MEMORY for kvmi-vm: the tool gets the guest-RAM memfd itself
 * (sealed against shrinking, see memory.c), so its mapping is the guest's
 * RAM with no copy and no VMM involvement after this call.  A read-only
 * request gets a separate read-only open of the file, so the tool cannot
 * mprotect() its way to writing.
 *
 * The whole file is reachable through the descriptor: the range check
 * keeps honest tools inside RAM, it is not a security boundary (see
 * docs/limitations.md).
 */
#include "mapping.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../memory.h"
#include "../util.h"

int mapping_map(const struct guest_memory *mem, struct kvmi_map_tokens *tokens,
		const struct kvmi_map_mem_token *token, uint64_t gpa, uint64_t len,
		bool readonly, int *fd, uint64_t *offset)
{
	const struct mem_region *r = NULL;
	int err, nfd;

	/* Token first: without one the tool learns nothing, not even the
	 * layout; a matched token is spent whatever follows. */
	err = kvmi_map_tokens_redeem(tokens, token);
	if (err)
		return err;
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *c = &mem->regions[i];

		if (gpa >= c->gpa && gpa - c->gpa < c->size && len <= c->size - (gpa - c->gpa)) {
			r = c;
			break;
		}
	}
	if (!r)
		return -KVM_ENOENT;
	if (readonly) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/self/fd/%d", mem->memfd);
		nfd = open(path, O_RDONLY | O_CLOEXEC);
	} else {
		nfd = fcntl(mem->memfd, F_DUPFD_CLOEXEC, 0);
	}
	if (nfd < 0) {
		err = errno;
		pr_err("introspection: cannot hand out guest memory: %s", strerror(err));
		return err == EMFILE || err == ENFILE || err == ENOMEM ? -KVM_ENOMEM : -KVM_EFAULT;
	}
	*fd = nfd;
	*offset = r->fd_offset + (gpa - r->gpa);
	return 0;
}
