/* SPDX-License-Identifier: MIT */
/*
 * The guest side of tests/integration/test_events.c: every vCPU serves
 * commands from its own slot of a mailbox at a fixed guest-physical address,
 * so the tool decides which access happens when, at which privilege level,
 * and reads back what the guest observed.
 *
 * A command is (op | RING3, arg) published with a new sequence number; the
 * vCPU runs it and stores the result, then the sequence number in `done`.
 *   READ   result = the 8 bytes at arg (0: DATA_GPA)
 *   WRITE  the 8 bytes at DATA_GPA = arg
 *   EXEC   result = what the function at CODE_GPA returns (0x1234)
 *   INT3   calls "int3; ret" at INT3_GPA; result = #BP handler count
 *   STEP   result = what the known sequence at STEP_GPA returns (2)
 *   EXIT   the vCPU is done
 *   RECREATE  asks the VMM to re-create RAM region arg (ring 0)
 *   WRMSR  writes arg to MSR 0x175 (SYSENTER_ESP) or, with bit 63 of arg
 *          set, to 0x176 (SYSENTER_EIP); result = the MSR read back (ring 0)
 * Pages are set up by vCPU 0 before it publishes the magic word.
 */
#include "guest.h"

#define MBOX_GPA   0x300000ul
#define DATA_GPA   0x310000ul
#define CODE_GPA   0x320000ul
#define INT3_GPA   0x330000ul
#define STEP_GPA   0x340000ul
#define MBOX_MAGIC 0x4556454e54534d42ull   /* "EVENTSMB" */
#define MAX_VCPUS  4

enum { OP_READ = 1, OP_WRITE, OP_EXEC, OP_INT3, OP_STEP, OP_EXIT, OP_RECREATE, OP_WRMSR };
#define OP_RING3 0x100

struct slot {
	uint64_t seq, op, arg, result, done, alive;
	uint64_t pad[2];
};

struct mbox {
	uint64_t magic;
	uint64_t bp_count, bp_rip;
	uint64_t pad[5];
	struct slot slot[MAX_VCPUS];
};

#define MBOX ((volatile struct mbox *)MBOX_GPA)

/* mov $0x1234, %eax; ret */
static const uint8_t code_fn[] = { 0xb8, 0x34, 0x12, 0x00, 0x00, 0xc3 };
/* int3; ret */
static const uint8_t int3_fn[] = { 0xcc, 0xc3 };
/* xor %eax,%eax (+0); inc %eax (+2); inc %eax (+4); nop (+6); ret (+7) */
static const uint8_t step_fn[] = { 0x31, 0xc0, 0xff, 0xc0, 0xff, 0xc0, 0x90, 0xc3 };

static void on_bp(struct guest_regs *regs)
{
	MBOX->bp_rip = regs->rip;
	__atomic_add_fetch(&MBOX->bp_count, 1, __ATOMIC_SEQ_CST);
}

static uint64_t run_op(void *arg)
{
	volatile struct slot *s = arg;
	uint64_t (*fn)(void);

	switch (s->op & 0xff) {
	case OP_READ:
		return *(volatile uint64_t *)(s->arg ? s->arg : DATA_GPA);
	case OP_WRITE:
		*(volatile uint64_t *)DATA_GPA = s->arg;
		return 0;
	case OP_EXEC:
		fn = (uint64_t (*)(void))CODE_GPA;
		return fn() & 0xffffffff;
	case OP_INT3:
		fn = (uint64_t (*)(void))INT3_GPA;
		fn();
		return MBOX->bp_count;
	case OP_STEP:
		fn = (uint64_t (*)(void))STEP_GPA;
		return fn() & 0xffffffff;
	case OP_WRMSR: {
		uint32_t msr = (s->arg >> 63) ? 0x176 : 0x175, lo, hi;
		uint64_t v = s->arg & ~(1ull << 63);

		__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
		__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
		return (uint64_t)hi << 32 | lo;
	}
	case OP_RECREATE:
		guest_mem_recreate((uint8_t)s->arg);
		return 0;
	default:
		return ~0ull;
	}
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	volatile struct slot *s = &MBOX->slot[vcpu];
	uint64_t seen = 0;

	GUEST_ASSERT(nr_vcpus <= MAX_VCPUS);
	if (vcpu == 0) {
		guest_install_handler(VEC_BP, on_bp);
		memcpy((void *)CODE_GPA, code_fn, sizeof(code_fn));
		memcpy((void *)INT3_GPA, int3_fn, sizeof(int3_fn));
		memcpy((void *)STEP_GPA, step_fn, sizeof(step_fn));
		MBOX->magic = MBOX_MAGIC;
	}
	s->alive = 1;
	/* Polled in ring 0 so that single-stepping it works on every host. */
	for (;;) {
		uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);

		if (seq == seen) {
			cpu_relax();
			continue;
		}
		seen = seq;
		if ((s->op & 0xff) == OP_EXIT)
			break;
		s->result = (s->op & OP_RING3) ? run_in_ring3(run_op, (void *)s) : run_op((void *)s);
		__atomic_store_n(&s->done, seq, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&s->done, seen, __ATOMIC_RELEASE);
	GUEST_DONE();
}
