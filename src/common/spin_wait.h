/* SPDX-License-Identifier: MIT */
/*
 * Spin-then-sleep helpers shared by kvmi-vm and the client library.
 *
 * A reply or an event usually comes within tens of microseconds; a waiter
 * that sleeps on a condition variable then costs a scheduler wake-up (more
 * when it crosses CPUs).  Waiters may spin on a change counter for a short
 * budget first.  KVMI_SPIN_US in the environment sets the budget in
 * microseconds (0..100000; 0 never spins); the default is 50 where two or
 * more CPUs are online and 0 on a single CPU, where a spinner would only
 * keep the thread it waits for off the CPU.  Header-only: each component
 * keeps its own copy of the cached setting.
 */
#ifndef KVMI_COMMON_SPIN_WAIT_H
#define KVMI_COMMON_SPIN_WAIT_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define KVMI_SPIN_DEFAULT_US 50

static inline uint64_t kvmi_spin_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The budget in ns, read from the environment once. */
static inline uint64_t kvmi_spin_budget_ns(void)
{
	static atomic_llong cached = -1;
	long long v = atomic_load_explicit(&cached, memory_order_relaxed);

	if (v < 0) {
		const char *env = getenv("KVMI_SPIN_US");
		char *end = NULL;
		long dflt = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? KVMI_SPIN_DEFAULT_US : 0;
		long us = env ? strtol(env, &end, 10) : dflt;

		if (env && (!end || *end || us < 0 || us > 100000))
			us = dflt;
		v = (long long)us * 1000;
		atomic_store_explicit(&cached, v, memory_order_relaxed);
	}
	return (uint64_t)v;
}

/*
 * How many threads of one component may spin at once: one less than the
 * online CPUs (at least one), so that with more waiters than CPUs (4 vCPUs
 * on 2 CPUs) the thread that will answer still finds a CPU.  Callers
 * count their spinners in an atomic and sleep at once when it is full.
 */
static inline unsigned kvmi_spin_slots(void)
{
	static atomic_int cached;
	int n = atomic_load_explicit(&cached, memory_order_relaxed);

	if (!n) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		n = cpus > 2 ? (int)cpus - 1 : 1;
		atomic_store_explicit(&cached, n, memory_order_relaxed);
	}
	return (unsigned)n;
}

/* Takes a spinner slot of *count; false (and nothing taken) when full. */
static inline bool kvmi_spin_slot_get(atomic_uint *count)
{
	unsigned n = atomic_load(count);

	while (n < kvmi_spin_slots())
		if (atomic_compare_exchange_weak(count, &n, n + 1))
			return true;
	return false;
}

/*
 * One turn of a spin loop (i counts the turns from 1): a pause, and every
 * 64th turn a sched_yield() so that a thread this one waits for gets the
 * CPU when there are more runnable threads than CPUs (4 vCPUs and a tool
 * on 2 CPUs, say).
 */
static inline void kvmi_spin_relax(unsigned i)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
	if (!(i & 63))
		sched_yield();
}

/* Spins while *v == start, for at most budget_ns. */
static inline void kvmi_spin_while_equal(const atomic_uint *v, unsigned start, uint64_t budget_ns)
{
	uint64_t end = kvmi_spin_now_ns() + budget_ns;

	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(v, memory_order_acquire) != start)
			return;
		kvmi_spin_relax(i);
		if (!(i & 63) && kvmi_spin_now_ns() >= end)
			return;
	}
}

#endif
