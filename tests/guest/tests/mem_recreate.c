/* SPDX-License-Identifier: MIT */
/*
 * guest_mem_recreate(0): kvmi-vm deletes and re-creates the memslots of the
 * RAM below 4 GiB while the guest runs, and the guest goes on (status 0).
 * Under QEMU there is no such device (port 0x518 is fw_cfg DMA there): the
 * runtime reports an assertion failure instead of touching the port.
 */
#include "guest.h"

static uint64_t marker = 0x5eed;

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	GUEST_SYNC(1);
	guest_mem_recreate(0);
	GUEST_ASSERT_EQ(marker, 0x5eed);        /* RAM kept its contents */
	GUEST_SYNC(2);
	GUEST_DONE();
}
