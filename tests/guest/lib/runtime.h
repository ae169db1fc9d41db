/* SPDX-License-Identifier: MIT */
/* Runtime-internal state shared by the C files and entry.S. */
#ifndef KVMI_GUEST_RUNTIME_H
#define KVMI_GUEST_RUNTIME_H

#include "guest.h"

/* Ports 0..IOMAP_PORTS-1 have a bit in each TSS; higher ones are denied. */
#define IOMAP_PORTS 0x1000
#define IOMAP_BYTES (IOMAP_PORTS / 8)

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	/* One bit per port, 1 = denied; the CPU reads two bytes, so a final
	 * all-ones byte closes the map inside the limit. */
	uint8_t iomap[IOMAP_BYTES + 1];
} __attribute__((packed));

_Static_assert(__builtin_offsetof(struct tss64, iomap) == 0x68, "TSS layout");

struct idt_gate {
	uint16_t offset0;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset1;
	uint32_t offset2;
	uint32_t reserved;
};

_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");

/* Callee-saved state of run_in_ring3()'s caller; layout known to entry.S. */
struct ring3_ctx {
	uint64_t rsp, rbx, rbp, r12, r13, r14, r15;
};

struct guest_cpu {
	struct tss64 tss;
	struct idt_gate idt[GUEST_NR_EXCEPTIONS] __attribute__((aligned(16)));
	struct ring3_ctx *ring3;         /* non-NULL while in run_in_ring3() */
} __attribute__((aligned(64)));

extern struct guest_cpu guest_cpus[GUEST_MAX_VCPUS];
extern uint8_t guest_kstacks[GUEST_MAX_VCPUS][1u << GUEST_KSTACK_SHIFT];
extern uint8_t guest_ustacks[GUEST_MAX_VCPUS][1u << GUEST_USTACK_SHIFT];

/* entry.S */
extern const uint64_t guest_exception_stubs[GUEST_NR_EXCEPTIONS];
extern const char guest_ring3_exit[];    /* the ud2 that ends a ring-3 call */
uint64_t guest_ring3_enter(struct ring3_ctx *ctx, guest_ring3_fn fn, void *arg,
			   uint64_t ustack_top, void *tss_rsp0);
void guest_ring3_resume(struct ring3_ctx *ctx, uint64_t value) __noreturn;

/* runtime.c */
void guest_runtime_start(uint64_t nr_vcpus, uint64_t vcpu, uint64_t ram_size,
			 uint64_t platform) __noreturn;
void guest_exception(struct guest_regs *regs);
extern struct kvmi_ucall guest_too_many_vcpus;

/* serial.c: COM1 output without the QEMU platform's lock */
void guest_serial_write(const char *s);

/* qemu.c: the QEMU platform (guest_is_qemu()) */
void guest_qemu_lock(void);
void guest_qemu_unlock(void);
uint64_t guest_qemu_ucall(struct kvmi_ucall *uc);
void guest_qemu_power_off(uint8_t status) __noreturn;
void guest_qemu_unsupported(const char *what) __noreturn;
void guest_qemu_too_many_vcpus(uint64_t vcpu) __noreturn;

#endif
