/* SPDX-License-Identifier: MIT */
/*
 * Guest runtime entry: per-vCPU stack selection, the 32 exception stubs and
 * their common frame, and the two halves of a ring-3 excursion.
 *
 * Entry state (guest_abi.h): long mode, CPL 0, RSP = 0, RDI = number of
 * vCPUs, RSI = this vCPU's index, RDX = RAM size, R8 = platform marker (0
 * under kvmi-vm, SHIM_QEMU_MAGIC under QEMU's boot shim).
 */
#include "guest_layout.h"
#include "shim.h"

#define PORT_UCALL 0x510

	.section .text.entry, "ax"
	.globl _start
	.type _start, @function
_start:
	cmp $GUEST_MAX_VCPUS, %rsi
	jae .Ltoo_many_vcpus
	/* rsp = top of guest_kstacks[rsi] */
	lea 1(%rsi), %rax
	shl $GUEST_KSTACK_SHIFT, %rax
	add $guest_kstacks, %rax
	mov %rax, %rsp
	xor %ebp, %ebp
	mov %r8, %rcx                   /* platform marker */
	call guest_runtime_start        /* rdi, rsi, rdx passed through */
1:	cli
	hlt
	jmp 1b

	/* No stack for this vCPU: report a canned assertion and stop. */
.Ltoo_many_vcpus:
	movabs $SHIM_QEMU_MAGIC, %rax
	cmp %rax, %r8
	je .Ltoo_many_qemu
	mov $guest_too_many_vcpus, %eax
	mov $PORT_UCALL, %dx
	out %eax, %dx
2:	cli
	hlt
	jmp 2b
	/* QEMU: no VMM to send it to; the first such vCPU prints it on COM1
	 * from a spare stack and ends the VM, any other one just stops. */
.Ltoo_many_qemu:
	mov $1, %eax
	xchg %eax, guest_qemu_overflow_taken
	test %eax, %eax
	jnz 2b
	mov $guest_qemu_overflow_stack + 4096, %esp
	mov %rsi, %rdi
	call guest_qemu_too_many_vcpus
	jmp 2b
	.size _start, . - _start

/*
 * Exception stubs: make every frame look alike (error code, vector), then
 * save the general registers as struct guest_regs and call the C side.
 */
	.text
.macro EXC_STUB vec
	.align 16
exc_stub_\vec:
	.if (\vec == 8) || (\vec == 10) || (\vec == 11) || (\vec == 12) || (\vec == 13) || (\vec == 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
	/* the CPU pushed an error code */
	.else
	push $0
	.endif
	push $\vec
	jmp exception_common
.endm

	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	EXC_STUB \v
	.endr

exception_common:
	push %rax
	push %rbx
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %rbp
	push %r8
	push %r9
	push %r10
	push %r11
	push %r12
	push %r13
	push %r14
	push %r15
	cld
	mov %rsp, %rdi
	mov %rsp, %rbx                  /* callee-saved; restored from the frame */
	and $-16, %rsp                  /* an emulated delivery may not align */
	call guest_exception
	mov %rbx, %rsp
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rbp
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rbx
	pop %rax
	add $16, %rsp                   /* vector, error code */
	iretq

	.section .rodata
	.align 8
	.globl guest_exception_stubs
guest_exception_stubs:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad exc_stub_\v
	.endr
	.size guest_exception_stubs, . - guest_exception_stubs

/*
 * uint64_t guest_ring3_enter(struct ring3_ctx *ctx (rdi), fn (rsi), arg (rdx),
 *                            uint64_t ustack_top (rcx), uint64_t *tss_rsp0 (r8))
 *
 * Saves the callee-saved registers in ctx, points the TSS's RSP0 just below
 * this frame (exceptions from ring 3 then land below the caller's frames) and
 * irets to guest_ring3_trampoline in ring 3.  It "returns" through
 * guest_ring3_resume() when the trampoline's ud2 traps.
 */
	.text
	.globl guest_ring3_enter
	.type guest_ring3_enter, @function
guest_ring3_enter:
	mov %rsp, 0(%rdi)
	mov %rbx, 8(%rdi)
	mov %rbp, 16(%rdi)
	mov %r12, 24(%rdi)
	mov %r13, 32(%rdi)
	mov %r14, 40(%rdi)
	mov %r15, 48(%rdi)
	lea -64(%rsp), %rax
	and $-16, %rax
	mov %rax, (%r8)
	push $GUEST_SEL_UDATA           /* ss */
	push %rcx                       /* rsp */
	push $0x2                       /* rflags: IF=0, IOPL=0 */
	push $GUEST_SEL_UCODE           /* cs */
	push $guest_ring3_trampoline    /* rip */
	mov %rdx, %rdi
	xor %eax, %eax
	xor %ebx, %ebx
	xor %ebp, %ebp
	iretq
	.size guest_ring3_enter, . - guest_ring3_enter

/* Ring 3: call fn(arg), then trap back with the return value in rax. */
	.type guest_ring3_trampoline, @function
guest_ring3_trampoline:
	call *%rsi
	.globl guest_ring3_exit
guest_ring3_exit:
	ud2
	jmp guest_ring3_exit
	.size guest_ring3_trampoline, . - guest_ring3_trampoline

/*
 * void guest_ring3_resume(struct ring3_ctx *ctx (rdi), uint64_t value (rsi))
 * Called from the #UD handler (ring 0, on the RSP0 stack): drops the
 * exception frame and returns value from guest_ring3_enter().
 */
	.globl guest_ring3_resume
	.type guest_ring3_resume, @function
guest_ring3_resume:
	mov $GUEST_SEL_KDATA, %eax
	mov %ax, %ss                    /* null after the privilege change */
	mov %ax, %ds
	mov %ax, %es
	mov 8(%rdi), %rbx
	mov 16(%rdi), %rbp
	mov 24(%rdi), %r12
	mov 32(%rdi), %r13
	mov 40(%rdi), %r14
	mov 48(%rdi), %r15
	mov 0(%rdi), %rsp
	mov %rsi, %rax
	ret
	.size guest_ring3_resume, . - guest_ring3_resume

	.section .note.GNU-stack, "", @progbits
