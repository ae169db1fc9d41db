/* SPDX-License-Identifier: MIT */
/*
 * Every vCPU reports its index with GUEST_SYNC, then, in ring 3, adds to a
 * shared counter with atomic increments; a barrier waits for all of them and
 * each vCPU checks the total before GUEST_DONE.  Run with --vcpus 2 and 4.
 */
#include "guest.h"

#define INCREMENTS 100000u

static uint32_t arrived;
static uint64_t counter;
static struct guest_barrier barrier;

static uint64_t ring3_count(void *arg)
{
	unsigned nr = *(const unsigned *)arg;

	__atomic_add_fetch(&arrived, 1, __ATOMIC_ACQ_REL);
	guest_barrier_wait(&barrier, nr);
	for (unsigned i = 0; i < INCREMENTS; i++)
		__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
	guest_barrier_wait(&barrier, nr);
	return __atomic_load_n(&counter, __ATOMIC_ACQUIRE);
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	uint64_t total;

	GUEST_ASSERT(vcpu < nr_vcpus);
	GUEST_ASSERT_EQ(guest_vcpu_id(), vcpu);
	GUEST_SYNC(vcpu);
	total = run_in_ring3(ring3_count, &nr_vcpus);
	GUEST_ASSERT_EQ(__atomic_load_n(&arrived, __ATOMIC_ACQUIRE), nr_vcpus);
	GUEST_ASSERT_EQ(total, (uint64_t)nr_vcpus * INCREMENTS);
	GUEST_PRINTF("vcpu %u of %u: counter %llu", vcpu, nr_vcpus, (unsigned long long)total);
	GUEST_DONE();
}
