/* SPDX-License-Identifier: MIT */
/*
 * A ucall whose answer only a VMM hook could give (command 256, which no
 * handler knows): kvmi-vm reports an unknown ucall and stops with status 3;
 * under QEMU, where nothing could answer, the runtime reports it as an
 * assertion failure (status 3 too) instead of returning a made-up value.
 */
#include "guest.h"

#define UCALL_NEEDS_REPLY 256

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	uint64_t reply;

	(void)nr_vcpus;
	(void)vcpu;
	GUEST_SYNC(1);
	reply = guest_ucall(UCALL_NEEDS_REPLY, 1, 42);
	GUEST_FAIL("ucall %u came back with %llu", UCALL_NEEDS_REPLY, (unsigned long long)reply);
}
