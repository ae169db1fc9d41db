/* SPDX-License-Identifier: MIT */
/*
 * Ring 3: a loop of 10M iterations (native in ring 3; it would take seconds
 * emulated in ring 0), ucalls and COM1 output from ring 3, and the way back
 * to ring 0 with a value.  Ring 0 checks the value with a 24-step jump-ahead
 * of the same recurrence instead of running the loop itself.
 */
#include "guest.h"

#define LOOPS 10000000ull
#define MUL   6364136223846793005ull
#define INC   1442695040888963407ull

static uint64_t ring3_work(void *arg)
{
	uint64_t x = *(const uint64_t *)arg;

	GUEST_ASSERT_EQ(guest_cpl(), 3);
	GUEST_PRINTF("ring3: cpl %u", guest_cpl());
	for (uint64_t i = 0; i < LOOPS; i++) {
		x = x * MUL + INC;
		__asm__ volatile("" : "+r"(x));   /* keep every step */
	}
	GUEST_SYNC(2);
	serial_puts("ring3: COM1 from ring 3\n");
	return x;
}

/* x after n steps of x = x * MUL + INC, by composing the affine map. */
static uint64_t lcg_jump(uint64_t x, uint64_t n)
{
	uint64_t a = MUL, c = INC, A = 1, C = 0;

	for (; n; n >>= 1) {
		if (n & 1) {
			A *= a;
			C = C * a + c;
		}
		c = c * a + c;
		a *= a;
	}
	return A * x + C;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	uint64_t seed = 42, expect = lcg_jump(seed, LOOPS), got;

	(void)nr_vcpus;
	(void)vcpu;
	GUEST_ASSERT_EQ(guest_cpl(), 0);
	GUEST_SYNC(1);
	got = run_in_ring3(ring3_work, &seed);
	GUEST_ASSERT_EQ(guest_cpl(), 0);
	GUEST_ASSERT_EQ(got, expect);
	GUEST_SYNC(3);
	/* A second excursion: the runtime restored its state. */
	seed = got;
	got = run_in_ring3(ring3_work, &seed);
	GUEST_ASSERT_EQ(got, lcg_jump(expect, LOOPS));
	GUEST_PRINTF("ring3: back in ring %u, result %#llx", guest_cpl(), (unsigned long long)got);
	GUEST_DONE();
}
