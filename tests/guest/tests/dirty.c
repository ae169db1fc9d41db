/* SPDX-License-Identifier: MIT */
/*
 * Writes the same counter to two pages for ever, in ring 3: DIRTY_A
 * (which a tool write-protects, so that the VMM performs those stores
 * itself after each pre-write event) and DIRTY_B (never protected).  A
 * snapshot or migration of the VM restores both pages with equal
 * counters, unless the VMM's own stores were left out of KVM's dirty log
 * (tests/integration/test_qemu.c).
 */
#include "guest.h"
#include "dirty_abi.h"

static uint64_t ring3_count(void *arg)
{
	volatile uint64_t *a = (volatile uint64_t *)DIRTY_A_GPA;
	volatile uint64_t *b = (volatile uint64_t *)DIRTY_B_GPA;

	(void)arg;
	GUEST_SYNC(1);
	for (uint64_t n = 1;; n++) {
		*a = n;
		*b = n;
	}
	return 0;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	if (vcpu == 0)
		run_in_ring3(ring3_count, NULL);
	for (;;)
		cpu_relax();
}
