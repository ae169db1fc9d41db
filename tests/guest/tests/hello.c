/* SPDX-License-Identifier: MIT */
/* The smallest payload: one line on COM1 (from vCPU 0), then GUEST_DONE. */
#include "guest.h"

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	if (vcpu == 0)
		serial_puts("Hello from the kvmi guest runtime\n");
	GUEST_DONE();
}
