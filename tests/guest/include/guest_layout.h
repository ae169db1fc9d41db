/* SPDX-License-Identifier: MIT */
/* Layout constants of the guest runtime, shared by C and entry.S. */
#ifndef KVMI_GUEST_LAYOUT_H
#define KVMI_GUEST_LAYOUT_H

#define GUEST_MAX_VCPUS     16
#define GUEST_KSTACK_SHIFT  14           /* 16 KiB ring-0 stack per vCPU */
#define GUEST_USTACK_SHIFT  14           /* 16 KiB ring-3 stack per vCPU */

/* Selectors of the runtime's GDT (code/data at 0x10/0x18 as on entry). */
#define GUEST_SEL_KCODE     0x10
#define GUEST_SEL_KDATA     0x18
#define GUEST_SEL_UDATA     (0x20 | 3)
#define GUEST_SEL_UCODE     (0x28 | 3)
#define GUEST_SEL_TSS(cpu)  (0x30 + 16 * (cpu))

#define GUEST_NR_EXCEPTIONS 32

#endif
