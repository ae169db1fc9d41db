/* SPDX-License-Identifier: MIT */
/* A failing GUEST_ASSERT_EQ: the VMM prints file:line and stops with 3. */
#include "guest.h"

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	GUEST_ASSERT_EQ(1, 2);
	GUEST_DONE();                   /* not reached */
}
