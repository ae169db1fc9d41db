/* SPDX-License-Identifier: MIT */
/* Power-off with a value: kvmi-vm exits with that status (7). */
#include "guest.h"

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	serial_puts("powering off with status 7\n");
	power_off(7);
}
