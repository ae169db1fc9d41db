/* SPDX-License-Identifier: MIT */
/* A reset through port 0xcf9 (bit 2): kvmi-vm has no firmware to re-run and
 * ends the VM with status 0. */
#include "guest.h"

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	serial_puts("resetting\n");
	outb(KVMI_PORT_RESET_CF9, 0x6);
	guest_halt();
}
