/* SPDX-License-Identifier: MIT */
/*
 * The guest side of tests/integration/test_cr_events.c (CR, XSETBV and
 * HYPERCALL events through BPF; run in the real-KVM box only: the agent
 * hypercall at ring 0 never returns on some software hypervisors).
 *
 * vCPU 0 publishes a mailbox, waits for the tool's "go", then at ring 0:
 * clears and twice sets CR0.WP, sets CR4.PCE and clears CR4.DE, switches
 * CR3 to a copy of its PML4 and back, writes XCR0 natively and through
 * KVM's forced-emulation prefix, and makes the KVMI agent hypercall.  It
 * records what it reads back after each write, so the tool can check that
 * its veto or rewrite reached the guest.  Then a second hypercall after
 * "go" = 2 (the tool disabled the event meanwhile).  `steps` (set by the
 * tool) skips parts.
 */
#include "guest.h"

#define MBOX_GPA   0x300000ul
#define PML4_COPY  0x301000ul
#define MBOX_MAGIC 0x4b564d4943524556ull  /* "KVMICREV" */

#define STEP_CR0     0x01
#define STEP_CR4     0x02
#define STEP_CR3     0x04
#define STEP_XSETBV  0x08
#define STEP_FEP     0x10
#define STEP_HC      0x20

#define CR0_WP  (1ull << 16)
#define CR4_DE  (1ull << 3)
#define CR4_PCE (1ull << 8)
#define CR4_OSXSAVE (1ull << 18)

struct mbox {
	uint64_t magic, go, steps, phase;
	uint64_t cr0[3], cr4[2], cr3[3], xcr0[2];
	uint64_t fep_ud, hc[2], done;
};

#define MBOX ((volatile struct mbox *)MBOX_GPA)

static inline uint64_t rd_cr0(void) { uint64_t v; __asm__ volatile("mov %%cr0, %0" : "=r"(v)); return v; }
static inline uint64_t rd_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
static inline uint64_t rd_cr4(void) { uint64_t v; __asm__ volatile("mov %%cr4, %0" : "=r"(v)); return v; }
static inline void wr_cr0(uint64_t v) { __asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory"); }
static inline void wr_cr3(uint64_t v) { __asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory"); }
static inline void wr_cr4(uint64_t v) { __asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory"); }

static uint64_t xgetbv0(void)
{
	uint32_t lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

static void on_ud(struct guest_regs *regs)
{
	const uint8_t *p = (const uint8_t *)regs->rip;

	/* The forced-emulation prefix without force_emulation_prefix=1: skip
	 * it and the xsetbv behind it. */
	if (p[0] == 0x0f && p[1] == 0x0b && p[2] == 'k' && p[3] == 'v' && p[4] == 'm') {
		MBOX->fep_ud++;
		regs->rip += 8;
		return;
	}
	GUEST_ASSERT(0);
}

static bool cpu_is_amd(void)
{
	uint32_t a = 0, b, c, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
	return b == 0x68747541;
}

static uint64_t agent_hypercall(bool amd, uint64_t marker)
{
	uint64_t rax = 34, rdi = 24, rsi = 0;

	/* rdx, r8-r10 are the hypercall's clobbers (v4 hypercalls.txt). */
	if (amd)
		__asm__ volatile("vmmcall" : "+a"(rax), "+D"(rdi), "+S"(rsi) : "b"(marker)
				 : "rdx", "r8", "r9", "r10", "memory");
	else
		__asm__ volatile("vmcall" : "+a"(rax), "+D"(rdi), "+S"(rsi) : "b"(marker)
				 : "rdx", "r8", "r9", "r10", "memory");
	return rax;
}

static uint64_t spin_go(void *arg)
{
	uint64_t n = *(const uint64_t *)arg;

	while (MBOX->go < n)
		cpu_relax();
	return 0;
}

/* In ring 3: a ring-0 spin (interrupts off) starves the box's own
 * threads, the tool included, under QEMU's emulated SVM. */
static void wait_go(uint64_t n)
{
	run_in_ring3(spin_go, &n);
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	bool amd = cpu_is_amd();
	uint64_t steps;

	(void)nr_vcpus;
	if (vcpu != 0)
		return;
	guest_install_handler(VEC_UD, on_ud);
	memset((void *)MBOX, 0, sizeof(struct mbox));
	MBOX->magic = MBOX_MAGIC;
	wait_go(1);
	steps = MBOX->steps;

	if (steps & STEP_CR0) {
		wr_cr0(rd_cr0() & ~CR0_WP);     /* allowed */
		MBOX->cr0[0] = rd_cr0();
		wr_cr0(rd_cr0() | CR0_WP);      /* vetoed */
		MBOX->cr0[1] = rd_cr0();
		wr_cr0(rd_cr0() | CR0_WP);      /* allowed */
		MBOX->cr0[2] = rd_cr0();
	}
	if (steps & STEP_CR4) {
		wr_cr4(rd_cr4() | CR4_PCE);     /* rewritten to DE instead */
		MBOX->cr4[0] = rd_cr4();
		wr_cr4(rd_cr4() & ~CR4_DE);     /* allowed */
		MBOX->cr4[1] = rd_cr4();
	}
	if (steps & STEP_CR3) {
		uint64_t cr3 = rd_cr3();

		memcpy((void *)PML4_COPY, (const void *)(cr3 & ~0xfffull), 4096);
		wr_cr3(PML4_COPY | (cr3 & 0xfff));
		MBOX->cr3[0] = cr3;
		MBOX->cr3[1] = rd_cr3();
		wr_cr3(cr3);
		MBOX->cr3[2] = rd_cr3();
	}
	if (steps & STEP_XSETBV) {
		wr_cr4(rd_cr4() | CR4_OSXSAVE);
		/* x87|SSE natively, then x87 alone through the emulator. */
		__asm__ volatile("xsetbv" : : "a"(3), "d"(0), "c"(0) : "memory");
		MBOX->xcr0[0] = xgetbv0();
		if (steps & STEP_FEP)
			__asm__ volatile("ud2; .ascii \"kvm\"; xsetbv" : : "a"(1), "d"(0), "c"(0) : "memory");
		MBOX->xcr0[1] = xgetbv0();
	}
	if (steps & STEP_HC)
		MBOX->hc[0] = agent_hypercall(amd, 0x1234abcd);
	MBOX->phase = 1;
	wait_go(2);
	if (steps & STEP_HC)
		MBOX->hc[1] = agent_hypercall(amd, 0x5678);
	MBOX->done = 1;
	wait_go(3);     /* the tool has read the results (the VM ends with us) */
}
