/* SPDX-License-Identifier: MIT */
/*
 * The guest side of tests/integration/test_introspect.c.  It publishes a
 * mailbox at a fixed guest-physical address, then counts in ring 3 until
 * the introspection tool writes the "go" word there with WRITE_PHYSICAL.
 * Exceptions the tool injects (a #UD) are counted, not skipped: an injected
 * exception interrupts an instruction that did not fault.
 */
#include "guest.h"

#define MBOX_GPA   0x300000ul
#define MBOX_MAGIC 0x4b564d494d424f58ull  /* "KVMIMBOX" */
#define MBOX_GO    0x600dull

struct mbox {
	uint64_t magic;
	uint64_t go;
	uint64_t injected_ud;
	uint64_t counter;
	uint64_t last_ud_rip;
};

#define MBOX ((volatile struct mbox *)MBOX_GPA)

static void on_ud(struct guest_regs *regs)
{
	const uint8_t *insn = (const uint8_t *)regs->rip;

	if (insn[0] == 0x0f && insn[1] == 0x0b) {
		regs->rip += 2;                 /* a real ud2 */
		return;
	}
	MBOX->injected_ud++;
	MBOX->last_ud_rip = regs->rip;
}

static uint64_t count_until_go(void *arg)
{
	(void)arg;
	while (MBOX->go != MBOX_GO)
		MBOX->counter++;
	return MBOX->counter;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	guest_install_handler(VEC_UD, on_ud);
	MBOX->go = 0;
	MBOX->injected_ud = 0;
	MBOX->counter = 0;
	MBOX->magic = MBOX_MAGIC;
	GUEST_SYNC(1);
	run_in_ring3(count_until_go, NULL);
	GUEST_PRINTF("go after %llu iterations, %llu injected #UD",
		     (unsigned long long)MBOX->counter, (unsigned long long)MBOX->injected_ud);
	GUEST_ASSERT(MBOX->injected_ud >= 1);
	GUEST_DONE();
}
