/* SPDX-License-Identifier: MIT */
/*
 * The guest side of tests/integration/test_introspect.c.  vCPU 0 publishes
 * a mailbox at a fixed guest-physical address; then every vCPU spins in
 * ring 3, counting in its own slot and storing its RBX there on every
 * iteration, until the introspection tool writes the "go" word with
 * WRITE_PHYSICAL.  So the tool can see that a paused vCPU stops, and that a
 * SET_REGISTERS sent during an event reached the vCPU (its RBX shows up).
 * After "go", vCPU 0 writes MSR 0x175 with 0x1234 and prints what it reads
 * back (the tool may have rewritten the value through an MSR event).
 * Exceptions the tool injects (a #UD) are counted, not skipped: an injected
 * exception interrupts an instruction that did not fault.
 */
#include "guest.h"

#define MBOX_GPA   0x300000ul
#define MBOX_MAGIC 0x4b564d494d424f58ull  /* "KVMIMBOX" */
#define MBOX_GO    0x600dull
#define MAX_VCPUS  4

struct mbox {
	uint64_t magic;
	uint64_t go;
	uint64_t injected_ud;
	uint64_t last_ud_rip;
	uint64_t counter[MAX_VCPUS];
	uint64_t rbx_seen[MAX_VCPUS];
};

#define MBOX ((volatile struct mbox *)MBOX_GPA)

static struct guest_barrier start;

static void on_ud(struct guest_regs *regs)
{
	const uint8_t *insn = (const uint8_t *)regs->rip;

	if (insn[0] == 0x0f && insn[1] == 0x0b) {
		regs->rip += 2;                 /* a real ud2 */
		return;
	}
	__atomic_add_fetch(&MBOX->injected_ud, 1, __ATOMIC_SEQ_CST);
	MBOX->last_ud_rip = regs->rip;
}

static uint64_t spin_until_go(void *arg)
{
	unsigned vcpu = *(const unsigned *)arg;
	uint64_t rbx = 0;

	/* RBX is only ever changed from outside (SET_REGISTERS). */
	__asm__ volatile("1:\n\t"
			 "movq %%rbx, (%[seen])\n\t"
			 "incq (%[cnt])\n\t"
			 "cmpq %[go], (%[gop])\n\t"
			 "jne 1b"
			 : "+b"(rbx)
			 : [seen] "r"(&MBOX->rbx_seen[vcpu]), [cnt] "r"(&MBOX->counter[vcpu]),
			   [go] "r"(MBOX_GO), [gop] "r"(&MBOX->go)
			 : "memory", "cc");
	return rbx;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	GUEST_ASSERT(nr_vcpus <= MAX_VCPUS);
	guest_install_handler(VEC_UD, on_ud);
	if (vcpu == 0) {
		MBOX->go = 0;
		MBOX->injected_ud = 0;
		for (unsigned i = 0; i < MAX_VCPUS; i++)
			MBOX->counter[i] = MBOX->rbx_seen[i] = 0;
		MBOX->magic = MBOX_MAGIC;
	}
	guest_barrier_wait(&start, nr_vcpus);
	GUEST_SYNC(1);
	run_in_ring3(spin_until_go, &vcpu);
	if (vcpu == 0) {
		uint32_t lo, hi;

		/* An MSR write the tool may watch (and rewrite): SYSENTER_ESP. */
		__asm__ volatile("wrmsr" : : "c"(0x175), "a"(0x1234), "d"(0) : "memory");
		__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x175));
		GUEST_PRINTF("msr 0x175 = 0x%llx", ((unsigned long long)hi << 32) | lo);
		GUEST_PRINTF("go; %llu injected #UD", (unsigned long long)MBOX->injected_ud);
		GUEST_ASSERT(MBOX->injected_ud >= 1);
	}
	GUEST_DONE();
}
