/* SPDX-License-Identifier: MIT */
/*
 * fake_host.h - a frontend for the engine's unit tests: slot ids and what
 * KVM would hold for each, recorded instead of issued; the engine runs
 * without KVM (kvm_fd and vm_fd are -1).
 */
#ifndef KVMI_TEST_FAKE_HOST_H
#define KVMI_TEST_FAKE_HOST_H

#include "internal.h"

#define MAX_SLOTS 32764
#define REGION_SLOT 7           /* the frontend's own id for the region */

struct fake_host {
	struct { bool used; uint32_t flags; uint64_t gpa, size; } slot[MAX_SLOTS];
	unsigned allocs, frees, sets, kicks;
	uint64_t ram_size;      /* of new_engine()'s memory */
	int fail_set_after;     /* > 0: the n-th slot_set from now fails */
};

/* The frontend's ops: slot ops recorded in the struct fake_host given as
 * the host; kick counts; request_stop does nothing. */
extern const struct kvmi_host_ops fake_ops;

/* KVM slots with a size, i.e. what the guest sees. */
unsigned kvm_slots(const struct fake_host *h);
/* The slot covering gpa, or -1. */
int slot_at(const struct fake_host *h, uint64_t gpa);
/* An engine with one RAM region [0, ram) already registered as slot
 * REGION_SLOT (as kvmi-vm does), and one vCPU (fd -1, a zeroed kvm_run). */
struct kvmi_engine *new_engine(struct fake_host *h, uint64_t ram, void **mem);
void free_engine(struct kvmi_engine *e, void *mem);

#endif
