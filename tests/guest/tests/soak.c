/* SPDX-License-Identifier: MIT */
/*
 * The guest of the fault-injection soak (tests/soak/): every vCPU loops
 * forever doing work that each kind of tool restriction catches (page
 * reads, writes and fetches, an MSR write, int3), with progress counters
 * in a mailbox; tests/soak/soak_abi.h has the layout.  Ring-0 work is kept
 * to a few instructions per loop: it is emulated on some hosts.
 */
#include "guest.h"

#include "../../soak/soak_abi.h"

#define MBOX ((volatile struct soak_mbox *)SOAK_MBOX_GPA)
#define BATCH_TSC  2000000ull      /* ring-3 batch: about a millisecond */
#define BATCH_MAX  (1u << 20)

static void on_bp(struct guest_regs *regs)
{
	(void)regs;
	MBOX->vcpu[guest_vcpu_id()].bp_count++;
}

/* A single-step the tool enabled reaches ring 3 as a #DB on some hosts:
 * count it and clear TF so that the guest goes on. */
static void on_db(struct guest_regs *regs)
{
	regs->rflags &= ~0x100ull;
	MBOX->vcpu[guest_vcpu_id()].db_count++;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static uint64_t ring3_batch(void *arg)
{
	volatile struct soak_vcpu *s = arg;
	unsigned vcpu = (unsigned)(s - MBOX->vcpu);
	uint64_t t0 = rdtsc(), sum = s->sum;

	for (unsigned i = 0; i < BATCH_MAX; i++) {
		uint64_t k = s->r3_iters, p = s->sweep_pos;
		volatile uint64_t *d = (volatile uint64_t *)(SOAK_DATA_GPA + (k % SOAK_DATA_PAGES) * 4096) + vcpu;
		volatile uint64_t *w = (volatile uint64_t *)(SOAK_SWEEP_GPA + p * 4096) + vcpu;
		uint64_t (*fn)(void) = (uint64_t (*)(void))(SOAK_CODE_GPA + (k % SOAK_CODE_PAGES) * 4096);

		sum += *d;
		*d = sum;
		sum += fn();
		*w = *w + 1;
		s->sweep_pos = (p + 1) % SOAK_SWEEP_PAGES;
		s->sum = sum;
		s->r3_iters = k + 1;
		if (rdtsc() - t0 > BATCH_TSC)
			break;
	}
	return 0;
}

static void setup(unsigned nr_vcpus)
{
	/* mov $i, %eax; ret */
	uint8_t fn[] = { 0xb8, 0, 0, 0, 0, 0xc3 };
	static const uint8_t int3_fn[] = { 0xcc, 0xc3 };

	guest_install_handler(VEC_BP, on_bp);
	guest_install_handler(VEC_DB, on_db);
	for (unsigned i = 0; i < SOAK_CODE_PAGES; i++) {
		fn[1] = (uint8_t)(i + 1);
		memcpy((void *)(SOAK_CODE_GPA + i * 4096ull), fn, sizeof(fn));
	}
	memcpy((void *)SOAK_INT3_GPA, int3_fn, sizeof(int3_fn));
	MBOX->nr_vcpus = nr_vcpus;
	__atomic_store_n(&MBOX->magic, SOAK_MAGIC, __ATOMIC_RELEASE);
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	volatile struct soak_vcpu *s = &MBOX->vcpu[vcpu];
	void (*int3)(void) = (void (*)(void))SOAK_INT3_GPA;

	GUEST_ASSERT(nr_vcpus <= SOAK_MAX_VCPUS);
	if (vcpu == 0)
		setup(nr_vcpus);
	while (__atomic_load_n(&MBOX->magic, __ATOMIC_ACQUIRE) != SOAK_MAGIC)
		cpu_relax();
	s->alive = 1;
	for (uint64_t n = 0;; n++) {
		uint32_t msr = (n & 1) ? SOAK_MSR_B : SOAK_MSR_A;

		run_in_ring3(ring3_batch, (void *)s);
		__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)n), "d"(0u) : "memory");
		s->msr_writes++;
		int3();
		s->r0_loops = n + 1;
	}
}
