/* SPDX-License-Identifier: MIT */
/* ud2 with no handler installed: the runtime reports vector 6 to the VMM
 * (KVMI_UCALL_UNEXPECTED_EXCEPTION), which stops with status 3. */
#include "guest.h"

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	GUEST_SYNC(1);
	__asm__ volatile("ud2" : : : "memory");
	GUEST_FAIL("execution went on after an unhandled #UD");
}
