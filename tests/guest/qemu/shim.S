/* SPDX-License-Identifier: MIT */
/*
 * Boot shim: the last 4 KiB of a BIOS image (pack.py) that starts a test
 * payload of tests/guest under stock QEMU (-bios IMAGE), with the entry
 * state kvmi-vm gives it (src/vmm/guest_abi.h).
 *
 *   reset vector (real mode, CS base 0xffff0000)
 *   -> 32-bit protected mode (GDT in the image)
 *   -> read the CPU count and RAM size from fw_cfg
 *   -> build the GDT at KVMI_GUEST_GDT_GPA and the identity page tables at
 *      KVMI_GUEST_PML4_GPA
 *   -> long mode with guest_abi.h's CR0/CR4/EFER, the final GDT, IDT 0/0
 *   -> copy the payload's PT_LOAD segments from the image to their
 *      addresses and zero their bss
 *   -> with more than one CPU: a real-mode trampoline at 0x8000 and
 *      INIT-SIPI-SIPI to all others; each AP goes trampoline -> the same
 *      32-bit and 64-bit code, checks its APIC ID, counts itself in and
 *      waits for the BSP's word; the BSP waits (TSC-bounded) until all
 *      arrived, then lets them go
 *   -> every CPU jumps to the ELF entry with RDI = number of CPUs,
 *      RSI = its index (initial APIC ID), RDX = RAM size (at most 2 GiB, the
 *      part below 4 GiB), R8 = KVMI_GUEST_QEMU_MAGIC, RSP = 0, RFLAGS = 0x2,
 *      all other GPRs 0.
 * A CPU that does not arrive, or an APIC ID >= N, is reported on COM1 as an
 * assertion failure before any CPU enters the payload, and QEMU exits with
 * KVMI_VM_EXIT_GUEST_FAIL (status 7).
 *
 * Ring 0 and real mode are emulated instruction by instruction on some
 * hosts (docs/test-hosts.md): only plain integer instructions, plain
 * moves to control registers and segment registers, no far calls, no
 * task switches, no unusual encodings.  Loops are bounded by the amount of
 * data (page tables, segments) except the waits for the APs (TSC-bounded
 * on the BSP; the APs wait for it).
 *
 * Everything refers to its own addresses by difference from shim_start,
 * so one `as` run with no linker gives the final bytes (objcopy -O binary).
 */
#include "shim.h"

#define ABS(x)    ((x) - shim_start + SHIM_BASE)          /* linear address */
#define SEG16(x)  ((x) - shim_start + (SHIM_BASE & 0xffff)) /* offset in CS 0xf000 */
#define TRAMP(x)  ((x) - ap_tramp)                        /* offset in CS 0x0800 */

#define SEL_CODE32  0x08
#define SEL_CODE64  SHIM_CS
#define SEL_DATA    SHIM_DS

#define CR0_FINAL   0x80010033      /* PE|MP|ET|NE|WP|PG */
#define CR4_FINAL   0x00000620      /* PAE|OSFXSR|OSXMMEXCPT */
#define EFER_FINAL  0x00000901      /* SCE|LME|NXE (LMA set by the CPU) */
#define MSR_EFER    0xc0000080
#define PTE_PUW     0x7             /* present|writable|user */
#define PDE_2M      0x87            /* present|writable|user|2 MiB */

#define LAPIC_BASE  0xfee00000
#define LAPIC_SVR   0xf0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define ICR_INIT    0x000c4500      /* all excluding self, assert, INIT */
#define ICR_SIPI    (0x000c4600 | (SHIM_TRAMPOLINE >> 12))
#define ICR_BUSY    0x1000
#define AP_WAIT_TSC 0x200000000     /* ~3 s at 3 GHz: generous for emulated APs */

#define COM1        0x3f8
#define GUEST_FAIL  3               /* KVMI_VM_EXIT_GUEST_FAIL */

	.text
	.globl shim_start
shim_start:
/* ------------------------------------------------------------ header (pack.py) */
hdr:
	.ascii SHIM_MAGIC
	.quad 0                         /* SHIM_HDR_ENTRY: ELF entry */
	.long 0                         /* SHIM_HDR_NSEG */
	.long 0
	.fill SHIM_MAX_SEGS * 16, 1, 0  /* SHIM_HDR_SEGS */
	.if (. - hdr) != SHIM_HDR_SEGS + SHIM_MAX_SEGS * 16
	.error "header layout"
	.endif

/* ------------------------------------------------------------ constant data */
	.balign 8
/* Accessed bits preset: the CPU never writes to this (read-only) GDT. */
rom_gdt:
	.quad 0
	.quad 0x00cf9b000000ffff        /* 0x08: flat 32-bit code */
	.quad 0x00af9b000000ffff        /* 0x10: flat 64-bit code */
	.quad 0x00cf93000000ffff        /* 0x18: flat data */
rom_gdt_end:

/* What guest_abi.h (and src/vmm/boot/longmode.c) puts at KVMI_GUEST_GDT_GPA. */
abi_gdt:
	.quad 0
	.quad 0
	.quad 0x00af9b000000ffff        /* 0x10 code: present, DPL0, L=1 */
	.quad 0x00cf93000000ffff        /* 0x18 data: present, DPL0, writable */
abi_gdt_end:

rflags_init:
	.quad 0x2

	.balign 8
	.word 0, 0, 0
final_gdtr:
	.word abi_gdt_end - abi_gdt - 1
	.quad SHIM_GDT_GPA

	.balign 8
	.word 0, 0, 0
null_idtr:
	.word 0
	.quad 0

	.balign 8
	.word 0
rom_gdtr:
	.word rom_gdt_end - rom_gdt - 1
	.long ABS(rom_gdt)

msg_vcpu:      .asciz "vcpu "
msg_assert:    .asciz ": assertion failed: qemu-boot: "
msg_started:   .asciz " of "
msg_started2:  .asciz " vCPUs started (INIT-SIPI-SIPI)\n"
msg_apic:      .asciz "APIC ID "
msg_apic2:     .asciz " is not below the number of vCPUs "
msg_apic3:     .asciz " (use -smp N with the default topology)\n"
msg_exit:      .asciz "qemu-boot: exit status 3\n"

/* ------------------------------------------------------------ BSP, real mode */
	.code16
start16:
	cli
	cld
	lgdtl %cs:SEG16(rom_gdtr)
	movl %cr0, %eax
	orb $1, %al
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $ABS(bsp32)

/* ------------------------------------------------------------ AP trampoline */
/* Copied to SHIM_TRAMPOLINE by the BSP; an AP starts here after SIPI with
 * CS = SHIM_TRAMPOLINE >> 4, IP = 0. */
ap_tramp:
	cli
	cld
	lgdtl %cs:TRAMP(ap_tramp_gdtr)
	movl %cr0, %eax
	orb $1, %al
	movl %eax, %cr0
	ljmpl $SEL_CODE32, $ABS(ap32)
	.balign 4
	.word 0
ap_tramp_gdtr:
	.word rom_gdt_end - rom_gdt - 1
	.long ABS(rom_gdt)
ap_tramp_end:

/* ------------------------------------------------------------ 32-bit */
	.code32
bsp32:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs

	/* fw_cfg: number of CPUs (16-bit LE); 1 if absent or absurd. */
	movl $FW_CFG_NB_CPUS, %eax
	movl $FW_CFG_PORT_SEL, %edx
	outw %ax, %dx
	movl $FW_CFG_PORT_DATA, %edx
	inb %dx, %al
	movzbl %al, %ecx
	inb %dx, %al
	movzbl %al, %eax
	shll $8, %eax
	orl %eax, %ecx
	jz 1f
	cmpl $256, %ecx
	jb 2f
1:	movl $1, %ecx
2:	movl %ecx, SHIM_INFO_NCPUS
	movl $0, SHIM_INFO_NCPUS + 4
	movl $0, SHIM_INFO_ARRIVED
	movl $0, SHIM_INFO_LOCK
	movl $0, SHIM_INFO_GO
	movl $0, SHIM_INFO_BADID

	/* fw_cfg: RAM size (64-bit LE), capped at 2 GiB (all below 4 GiB on
	 * q35 and pc). */
	movl $FW_CFG_RAM_SIZE, %eax
	movl $FW_CFG_PORT_SEL, %edx
	outw %ax, %dx
	movl $FW_CFG_PORT_DATA, %edx
	movl $SHIM_INFO_RAM, %edi
	movl $8, %ecx
3:	inb %dx, %al
	movb %al, (%edi)
	incl %edi
	decl %ecx
	jnz 3b
	cmpl $0, SHIM_INFO_RAM + 4
	jne 4f
	cmpl $0x80000000, SHIM_INFO_RAM
	jbe 5f
4:	movl $0x80000000, SHIM_INFO_RAM
	movl $0, SHIM_INFO_RAM + 4
5:
	/* The GDT of guest_abi.h. */
	movl $ABS(abi_gdt), %esi
	movl $SHIM_GDT_GPA, %edi
	movl $(abi_gdt_end - abi_gdt) / 4, %ecx
	rep movsl

	/* PML4 and PDPT cleared, then one PML4 entry, four PDPT entries and
	 * 4 x 512 2 MiB PD entries: [0, 4 GiB) identity-mapped. */
	xorl %eax, %eax
	movl $SHIM_PML4_GPA, %edi
	movl $0x2000 / 4, %ecx
	rep stosl
	movl $(SHIM_PML4_GPA + 0x1000 + PTE_PUW), SHIM_PML4_GPA
	movl $(SHIM_PML4_GPA + 0x2000 + PTE_PUW), SHIM_PML4_GPA + 0x1000
	movl $(SHIM_PML4_GPA + 0x3000 + PTE_PUW), SHIM_PML4_GPA + 0x1008
	movl $(SHIM_PML4_GPA + 0x4000 + PTE_PUW), SHIM_PML4_GPA + 0x1010
	movl $(SHIM_PML4_GPA + 0x5000 + PTE_PUW), SHIM_PML4_GPA + 0x1018
	movl $(SHIM_PML4_GPA + 0x2000), %edi
	movl $PDE_2M, %eax
	movl $4 * 512, %ecx
6:	movl %eax, (%edi)
	movl $0, 4(%edi)
	addl $0x200000, %eax
	addl $8, %edi
	decl %ecx
	jnz 6b

	movl $1, %ebp                   /* BSP */
	jmp lm32

ap32:
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	xorl %ebp, %ebp                 /* AP */

/* Long mode with guest_abi.h's control registers (BSP and APs). */
lm32:
	movl $CR4_FINAL, %eax
	movl %eax, %cr4
	movl $SHIM_PML4_GPA, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	movl $EFER_FINAL, %eax
	xorl %edx, %edx
	wrmsr
	movl $CR0_FINAL, %eax
	movl %eax, %cr0
	ljmpl $SEL_CODE64, $ABS(lm64)

/* ------------------------------------------------------------ 64-bit */
	.code64
lm64:
	/* The GDT at KVMI_GUEST_GDT_GPA.  Its 0x10 and 0x18 descriptors are
	 * those CS and the data segments hold already (bit for bit), so the
	 * reloads give exactly kvmi-vm's segment state; CS needs none. */
	lgdt final_gdtr(%rip)
	movl $SEL_DATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	lidt null_idtr(%rip)
	testl %ebp, %ebp
	jz ap64

	/* BSP: the payload.  Copy filesz bytes from the image, zero the
	 * rest, 8 bytes per iteration: in an emulated ring 0 this is most of
	 * the boot (on kvm_pvm ~45 ms per MiB of bss; 60 with 4-byte stores). */
	leaq (hdr + SHIM_HDR_SEGS)(%rip), %rbx
	movl (hdr + SHIM_HDR_NSEG)(%rip), %r15d
	testl %r15d, %r15d
	jz 8f
7:	movl 0(%rbx), %edi
	movl 4(%rbx), %esi
	movl 8(%rbx), %ecx
	movl 12(%rbx), %edx
	subl %ecx, %edx                 /* bss bytes */
	movl %ecx, %eax
	shrl $3, %ecx
	rep movsq
	movl %eax, %ecx
	andl $7, %ecx
	rep movsb
	movl %edx, %ecx
	shrl $3, %ecx
	xorl %eax, %eax
	rep stosq
	movl %edx, %ecx
	andl $7, %ecx
	rep stosb
	addq $16, %rbx
	decl %r15d
	jnz 7b
8:
	/* Start the APs, if any: INIT, then SIPI twice, with no delays
	 * (virtual CPUs need none; the ICR's delivery status is polled). */
	movl SHIM_INFO_NCPUS, %r14d
	cmpl $1, %r14d
	jbe enter
	leaq ap_tramp(%rip), %rsi
	movl $SHIM_TRAMPOLINE, %edi
	movl $(ap_tramp_end - ap_tramp), %ecx
	rep movsb
	movl $LAPIC_BASE, %ebx
	movl LAPIC_SVR(%rbx), %r12d     /* restored once the APs are up */
	movl %r12d, %eax
	orl $0x1ff, %eax                /* software-enabled, spurious vector 0xff */
	movl %eax, LAPIC_SVR(%rbx)
	movl $0, LAPIC_ICR_HI(%rbx)
	movl $ICR_INIT, LAPIC_ICR_LO(%rbx)
	movl $ICR_SIPI, %r13d
	movl $2, %r15d                  /* SIPI twice, as the MP spec says */
10:	movl $100000, %ecx              /* delivery status: bounded poll */
11:	testl $ICR_BUSY, LAPIC_ICR_LO(%rbx)
	jz 12f
	pause
	decl %ecx
	jnz 11b
12:	movl %r13d, LAPIC_ICR_LO(%rbx)
	decl %r15d
	jnz 10b

	/* Wait until every AP counted itself in SHIM_INFO_ARRIVED. */
	decl %r14d                      /* APs expected */
	rdtsc
	shlq $32, %rdx
	orq %rdx, %rax
	movabsq $AP_WAIT_TSC, %rcx
	leaq (%rax, %rcx), %r13         /* deadline */
13:	cmpl %r14d, SHIM_INFO_ARRIVED
	je 14f
	pause
	rdtsc
	shlq $32, %rdx
	orq %rdx, %rax
	cmpq %r13, %rax
	jb 13b
	/* "vcpu 0: assertion failed: qemu-boot: K of N vCPUs started ..." */
	jmp aps_missing
14:	movl %r12d, LAPIC_SVR(%rbx)     /* back to its reset value */
	movl SHIM_INFO_BADID, %eax      /* an AP whose index would be >= N? */
	testl %eax, %eax
	jnz bad_ap_id
	movl $1, SHIM_INFO_GO           /* everyone to the payload */
	jmp enter

/* AP: count in, with its APIC ID checked, and wait for the BSP's word:
 * no AP enters the payload before all arrived (nor if one cannot). */
ap64:
	movl $1, %eax
	cpuid
	shrl $24, %ebx
	cmpl SHIM_INFO_NCPUS, %ebx
	jb 1f
	incl %ebx
	movl %ebx, SHIM_INFO_BADID      /* APIC ID + 1 */
1:	lock incl SHIM_INFO_ARRIVED
2:	movl SHIM_INFO_GO, %eax
	testl %eax, %eax
	jnz enter
	pause
	jmp 2b

/* Every CPU: the entry registers of guest_abi.h, then the payload. */
enter:
	movl $1, %eax
	cpuid
	shrl $24, %ebx                  /* initial APIC ID = vCPU index */
	movl %ebx, %esi
	movq SHIM_INFO_NCPUS, %rdi
	cmpq %rdi, %rsi
	jae bad_apic_id
	movq SHIM_INFO_RAM, %rdx
	movabsq $SHIM_QEMU_MAGIC, %r8
	xorl %eax, %eax
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %ebp, %ebp
	xorl %r9d, %r9d
	xorl %r10d, %r10d
	xorl %r11d, %r11d
	xorl %r12d, %r12d
	xorl %r13d, %r13d
	xorl %r14d, %r14d
	xorl %r15d, %r15d
	leaq rflags_init(%rip), %rsp
	popfq                           /* RFLAGS = 0x2 (from the image) */
	movl $0, %esp                   /* RSP = 0; mov leaves the flags alone */
	jmp *(hdr + SHIM_HDR_ENTRY)(%rip)

/* ------------------------------------------------------------ failures */
/* Report on COM1 like a failed GUEST_ASSERT under QEMU, then leave QEMU
 * through isa-debug-exit with KVMI_VM_EXIT_GUEST_FAIL (QEMU status 7). */
aps_missing:
	movl %r14d, %r15d               /* APs expected */
	incl %r15d                      /* vCPUs */
	movl SHIM_INFO_ARRIVED, %r14d
	incl %r14d                      /* vCPUs started, the BSP included */
	xorl %r12d, %r12d               /* "vcpu 0" */
	leaq report_started(%rip), %r13
	jmp report

bad_ap_id:
	leal -1(%rax), %esi             /* its APIC ID */
	movl SHIM_INFO_NCPUS, %edi
bad_apic_id:
	movl %esi, %r12d                /* "vcpu ID" */
	movl %esi, %r14d
	movl %edi, %r15d
	leaq report_apic(%rip), %r13
	jmp report

/* r12 = vCPU to name, r13 = what to print after the common prefix,
 * r14/r15 = its numbers.  Takes the print lock for good. */
report:
1:	movl $1, %eax
	xchgl %eax, SHIM_INFO_LOCK
	testl %eax, %eax
	jz 2f
	pause
	jmp 1b
2:	movl $SHIM_STACK_TOP, %esp
	leaq msg_vcpu(%rip), %rsi
	call puts
	movl %r12d, %eax
	call putdec
	leaq msg_assert(%rip), %rsi
	call puts
	jmp *%r13
report_started:
	movl %r14d, %eax
	call putdec
	leaq msg_started(%rip), %rsi
	call puts
	movl %r15d, %eax
	call putdec
	leaq msg_started2(%rip), %rsi
	call puts
	jmp report_exit
report_apic:
	leaq msg_apic(%rip), %rsi
	call puts
	movl %r14d, %eax
	call putdec
	leaq msg_apic2(%rip), %rsi
	call puts
	movl %r15d, %eax
	call putdec
	leaq msg_apic3(%rip), %rsi
	call puts
report_exit:
	leaq msg_exit(%rip), %rsi
	call puts
	movl $GUEST_FAIL, %eax
	outb %al, $SHIM_PORT_DEBUG_EXIT
3:	cli
	hlt
	jmp 3b

/* putc(al): bounded wait for the transmitter, then write; clobbers ecx, edx, r9. */
putc:
	movl %eax, %r9d
	movl $1000, %ecx
	movl $COM1 + 5, %edx
1:	inb %dx, %al
	testb $0x20, %al
	jnz 2f
	pause
	decl %ecx
	jnz 1b
2:	movl $COM1, %edx
	movl %r9d, %eax
	outb %al, %dx
	ret

/* puts(rsi = NUL-terminated string) */
puts:
1:	movzbl (%rsi), %eax
	testl %eax, %eax
	jz 2f
	call putc
	incq %rsi
	jmp 1b
2:	ret

/* putdec(eax) in decimal */
putdec:
	movl $10, %r10d
	xorl %r11d, %r11d
1:	xorl %edx, %edx
	divl %r10d
	addl $'0', %edx
	pushq %rdx
	incl %r11d
	testl %eax, %eax
	jnz 1b
2:	popq %rax
	call putc
	decl %r11d
	jnz 2b
	ret

/* ------------------------------------------------------------ reset vector */
	.org 0xff0                      /* fails if the code grew past it */
	.code16
reset_vector:
	jmp start16
	.org SHIM_SIZE, 0
