/* SPDX-License-Identifier: MIT */
/*
 * Per-vCPU start-up (GDT, TSS with its I/O bitmap, IDT), exception dispatch
 * and ring-3 excursions.  All of it runs in ring 0, which some hosts emulate
 * at a few MIPS: every vCPU touches only its own tables and nothing here
 * loops over more than a few hundred bytes.
 */
#include "runtime.h"

unsigned guest_nr_vcpus;
uint64_t guest_ram_size;

struct guest_cpu guest_cpus[GUEST_MAX_VCPUS];
uint8_t guest_kstacks[GUEST_MAX_VCPUS][1u << GUEST_KSTACK_SHIFT] __attribute__((aligned(4096)));
uint8_t guest_ustacks[GUEST_MAX_VCPUS][1u << GUEST_USTACK_SHIFT] __attribute__((aligned(4096)));

/* Sent by _start for a vCPU index the runtime has no stack for. */
struct kvmi_ucall guest_too_many_vcpus = {
	.cmd = KVMI_UCALL_ASSERT,
	.buf = "guest runtime: more vCPUs than its limit (GUEST_MAX_VCPUS)",
};

/*
 * Shared GDT: the flat descriptors are constant; each vCPU writes its own
 * 16-byte TSS descriptor before loading the table.  Kernel code and data sit
 * where the VMM's entry GDT has them, so CS needs no reload.
 */
#define GDT_TSS_FIRST 6
static uint64_t gdt[GDT_TSS_FIRST + 2 * GUEST_MAX_VCPUS] __attribute__((aligned(16))) = {
	[0] = 0,
	[1] = 0,
	[2] = 0x00af9b000000ffffull,    /* 0x10 code, DPL 0, L */
	[3] = 0x00cf93000000ffffull,    /* 0x18 data, DPL 0 */
	[4] = 0x00cff3000000ffffull,    /* 0x20 data, DPL 3 */
	[5] = 0x00affb000000ffffull,    /* 0x28 code, DPL 3, L */
};

_Static_assert(GUEST_SEL_TSS(0) == GDT_TSS_FIRST * 8, "TSS selector");

static guest_handler_t handlers[GUEST_NR_EXCEPTIONS];

struct __attribute__((packed)) desc_ptr {
	uint16_t limit;
	uint64_t base;
};

static inline uintptr_t read_rsp(void)
{
	uintptr_t sp;

	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	return sp;
}

unsigned guest_vcpu_id(void)
{
	uintptr_t sp = read_rsp();
	uintptr_t k = (uintptr_t)guest_kstacks, u = (uintptr_t)guest_ustacks;

	if (sp - k < sizeof(guest_kstacks))
		return (unsigned)((sp - k) >> GUEST_KSTACK_SHIFT);
	if (sp - u < sizeof(guest_ustacks))
		return (unsigned)((sp - u) >> GUEST_USTACK_SHIFT);
	return 0;
}

static uint64_t stack_top(const void *stacks, unsigned cpu, unsigned shift)
{
	return (uint64_t)(uintptr_t)stacks + ((uint64_t)(cpu + 1) << shift);
}

static struct guest_cpu *this_cpu(void)
{
	return &guest_cpus[guest_vcpu_id()];
}

void guest_halt(void)
{
	for (;;) {
		if (guest_cpl() == 0)
			__asm__ volatile("cli; hlt" : : : "memory");
		else
			cpu_relax();
	}
}

void guest_ring3_allow_port(uint16_t port, bool allow)
{
	struct tss64 *tss = &this_cpu()->tss;

	if (port >= IOMAP_PORTS)
		GUEST_FAIL("port %#x is beyond the runtime's I/O bitmap", port);
	if (allow)
		tss->iomap[port / 8] &= (uint8_t)~(1u << (port % 8));
	else
		tss->iomap[port / 8] |= (uint8_t)(1u << (port % 8));
}

static void setup_tss(unsigned cpu)
{
	struct tss64 *tss = &guest_cpus[cpu].tss;
	uint64_t base = (uint64_t)(uintptr_t)tss, limit = sizeof(*tss) - 1;
	static const uint16_t kvmi_vm_ports[] = {
		KVMI_PORT_POWEROFF,
		KVMI_PORT_UCALL, KVMI_PORT_UCALL + 1, KVMI_PORT_UCALL + 2, KVMI_PORT_UCALL + 3,
	};
	/* Under QEMU the ucall and power-off ports stay closed (0x510 is
	 * fw_cfg there): a stray OUT to them from ring 3 is a #GP. */
	static const uint16_t qemu_ports[] = { KVMI_QEMU_PORT_DEBUG_EXIT };
	const uint16_t *ring3_ports = guest_qemu ? qemu_ports : kvmi_vm_ports;
	unsigned nr_ports = guest_qemu ? sizeof(qemu_ports) / sizeof(qemu_ports[0])
				       : sizeof(kvmi_vm_ports) / sizeof(kvmi_vm_ports[0]);

	tss->rsp[0] = stack_top(guest_kstacks, cpu, GUEST_KSTACK_SHIFT);
	tss->iomap_base = __builtin_offsetof(struct tss64, iomap);
	memset(tss->iomap, 0xff, sizeof(tss->iomap));
	tss->iomap[KVMI_PORT_SERIAL_COM1 / 8] = 0;      /* 0x3f8..0x3ff */
	for (unsigned i = 0; i < nr_ports; i++)
		tss->iomap[ring3_ports[i] / 8] &= (uint8_t)~(1u << (ring3_ports[i] % 8));

	/* 64-bit available TSS (type 9), present, DPL 0. */
	gdt[GDT_TSS_FIRST + 2 * cpu] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
				       (0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
				       (((base >> 24) & 0xff) << 56);
	gdt[GDT_TSS_FIRST + 2 * cpu + 1] = base >> 32;
}

static void setup_idt(struct guest_cpu *c)
{
	for (unsigned v = 0; v < GUEST_NR_EXCEPTIONS; v++) {
		uint64_t a = guest_exception_stubs[v];

		c->idt[v] = (struct idt_gate){
			.offset0 = (uint16_t)a,
			.selector = GUEST_SEL_KCODE,
			.ist = 0,
			/* present, interrupt gate; DPL 3 for #BP so that ring 3 may int3 */
			.type_attr = v == VEC_BP ? 0xee : 0x8e,
			.offset1 = (uint16_t)(a >> 16),
			.offset2 = (uint32_t)(a >> 32),
		};
	}
}

void guest_runtime_start(uint64_t nr_vcpus, uint64_t vcpu, uint64_t ram_size, uint64_t platform)
{
	struct guest_cpu *c = &guest_cpus[vcpu];
	struct desc_ptr gdtr = { sizeof(gdt) - 1, (uint64_t)(uintptr_t)gdt };
	struct desc_ptr idtr = { sizeof(c->idt) - 1, (uint64_t)(uintptr_t)c->idt };

	/* Every vCPU stores the same values, the platform first: the ucalls
	 * depend on it. */
	__atomic_store_n(&guest_qemu, platform == KVMI_GUEST_QEMU_MAGIC, __ATOMIC_RELAXED);
	__atomic_store_n(&guest_nr_vcpus, (unsigned)nr_vcpus, __ATOMIC_RELAXED);
	__atomic_store_n(&guest_ram_size, ram_size, __ATOMIC_RELAXED);

	setup_tss((unsigned)vcpu);
	setup_idt(c);
	__asm__ volatile("lgdt %0" : : "m"(gdtr) : "memory");
	__asm__ volatile("mov %0, %%ss\n\tmov %0, %%ds\n\tmov %0, %%es"
			 : : "r"((uint32_t)GUEST_SEL_KDATA) : "memory");
	__asm__ volatile("ltr %w0" : : "r"((uint16_t)GUEST_SEL_TSS(vcpu)) : "memory");
	__asm__ volatile("lidt %0" : : "m"(idtr) : "memory");

	guest_main((unsigned)nr_vcpus, (unsigned)vcpu);
	guest_done();
}

void guest_install_handler(unsigned vector, guest_handler_t handler)
{
	if (vector >= GUEST_NR_EXCEPTIONS)
		GUEST_FAIL("no exception vector %u", vector);
	__atomic_store_n(&handlers[vector], handler, __ATOMIC_RELEASE);
}

void guest_exception(struct guest_regs *regs)
{
	struct guest_cpu *c = this_cpu();
	guest_handler_t h;

	if (regs->vector == VEC_UD && (regs->cs & 3) == 3 && c->ring3 &&
	    regs->rip == (uint64_t)(uintptr_t)guest_ring3_exit)
		guest_ring3_resume(c->ring3, regs->rax);

	h = regs->vector < GUEST_NR_EXCEPTIONS ?
		    __atomic_load_n(&handlers[regs->vector], __ATOMIC_ACQUIRE) : NULL;
	if (h) {
		h(regs);
		return;
	}
	guest_ucall(KVMI_UCALL_UNEXPECTED_EXCEPTION, 4, regs->vector, regs->error_code,
		    regs->rip, regs->cs);
	guest_halt();
}

uint64_t run_in_ring3(guest_ring3_fn fn, void *arg)
{
	unsigned cpu = guest_vcpu_id();
	struct guest_cpu *c = &guest_cpus[cpu];
	struct ring3_ctx ctx;
	uint64_t saved_rsp0 = c->tss.rsp[0], ret;

	GUEST_ASSERT_MSG(guest_cpl() == 0, "run_in_ring3() called from ring 3");
	GUEST_ASSERT_MSG(!c->ring3, "run_in_ring3() is not reentrant");
	c->ring3 = &ctx;
	ret = guest_ring3_enter(&ctx, fn, arg, stack_top(guest_ustacks, cpu, GUEST_USTACK_SHIFT),
				(uint8_t *)&c->tss + __builtin_offsetof(struct tss64, rsp));
	c->ring3 = NULL;
	c->tss.rsp[0] = saved_rsp0;
	return ret;
}

void guest_barrier_wait(struct guest_barrier *b, unsigned n)
{
	uint32_t gen = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);

	if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == n) {
		__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&b->generation, gen + 1, __ATOMIC_RELEASE);
		return;
	}
	while (__atomic_load_n(&b->generation, __ATOMIC_ACQUIRE) == gen)
		cpu_relax();
}
