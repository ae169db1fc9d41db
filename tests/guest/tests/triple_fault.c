/* SPDX-License-Identifier: MIT */
/* An empty IDT, then a fault: #UD cannot be delivered, nor the #DF, so the
 * CPU shuts down and the VMM sees KVM_EXIT_SHUTDOWN (status 4). */
#include "guest.h"

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	struct __attribute__((packed)) {
		uint16_t limit;
		uint64_t base;
	} idtr = { 0, 0 };

	(void)nr_vcpus;
	(void)vcpu;
	GUEST_SYNC(1);
	__asm__ volatile("lidt %0\n\tud2" : : "m"(idtr) : "memory");
	GUEST_FAIL("no triple fault");
}
