/* SPDX-License-Identifier: MIT */
/*
 * Exceptions a test expects: a #UD in ring 0 and one in ring 3, and a #GP in
 * ring 3 from a port its TSS I/O bitmap denies; each handler records the
 * vector and skips the faulting instruction, and execution goes on.
 */
#include "guest.h"

static volatile uint64_t ud_count, gp_count;
static volatile uint64_t last_cs, last_error;

static void on_ud(struct guest_regs *regs)
{
	ud_count++;
	last_cs = regs->cs;
	regs->rip += 2;                 /* ud2 */
}

static void on_gp(struct guest_regs *regs)
{
	gp_count++;
	last_cs = regs->cs;
	last_error = regs->error_code;
	regs->rip += 2;                 /* inb $imm8, %al */
}

static uint64_t ring3_faults(void *arg)
{
	(void)arg;
	__asm__ volatile("ud2" : : : "memory");
	GUEST_ASSERT_EQ(ud_count, 2);
	GUEST_ASSERT_EQ(last_cs, GUEST_SEL_UCODE);
	/* Port 0x80 is not in the ring-3 I/O bitmap. */
	__asm__ volatile("inb $0x80, %%al" : : : "eax", "memory");
	GUEST_ASSERT_EQ(gp_count, 1);
	GUEST_ASSERT_EQ(last_cs, GUEST_SEL_UCODE);
	GUEST_ASSERT_EQ(last_error, 0);
	return 0x600d;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	guest_install_handler(VEC_UD, on_ud);
	guest_install_handler(VEC_GP, on_gp);

	__asm__ volatile("ud2" : : : "memory");
	GUEST_ASSERT_EQ(ud_count, 1);
	GUEST_ASSERT_EQ(last_cs, GUEST_SEL_KCODE);
	GUEST_SYNC(1);

	GUEST_ASSERT_EQ(run_in_ring3(ring3_faults, NULL), 0x600d);
	GUEST_SYNC(2);

	/* Without the handler, the same instruction would be unexpected. */
	guest_install_handler(VEC_UD, NULL);
	guest_install_handler(VEC_GP, NULL);
	GUEST_DONE();
}
