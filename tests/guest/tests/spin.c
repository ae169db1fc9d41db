/* SPDX-License-Identifier: MIT */
/* Spins in ring 3 for ever: only kvmi-vm's --timeout ends it (status 5). */
#include "guest.h"

static uint64_t ring3_spin(void *arg)
{
	(void)arg;
	GUEST_SYNC(1);
	for (;;)
		cpu_relax();
	return 0;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	run_in_ring3(ring3_spin, NULL);
	GUEST_FAIL("the spin loop ended");
}
