/* SPDX-License-Identifier: MIT */
/*
 * Layout of the QEMU boot shim (shim.S) and of the BIOS images pack.py
 * makes with it.  Plain numbers: included by shim.S, and by the guest
 * runtime (lib/qemu.c), which checks them against src/vmm/guest_abi.h.
 * pack.py repeats SHIM_SIZE and the header layout (it checks SHIM_MAGIC).
 *
 * Image (a multiple of 64 KiB, mapped by QEMU's -bios at the top of 4 GiB):
 *   [0, size - SHIM_SIZE)     the payload's PT_LOAD segments, packed
 *   [size - SHIM_SIZE, size)  the shim: header (filled in by pack.py),
 *                             code, reset vector at size - 16
 */
#ifndef KVMI_GUEST_QEMU_SHIM_H
#define KVMI_GUEST_QEMU_SHIM_H

#define SHIM_SIZE         0x1000          /* the last 4 KiB of the image */
#define SHIM_BASE         0xfffff000      /* where they are mapped */
#define SHIM_MAX_SEGS     8

/* Header at SHIM_BASE: magic (8 bytes), entry (u64), nseg (u32), pad (u32),
 * then SHIM_MAX_SEGS x { u32 dst, u32 src (linear, in the image), u32 filesz,
 * u32 memsz }. */
#define SHIM_MAGIC        "KVMIQBT1"
#define SHIM_HDR_ENTRY    8
#define SHIM_HDR_NSEG     16
#define SHIM_HDR_SEGS     24

/* The entry state of guest_abi.h (checked against it by lib/qemu.c). */
#define SHIM_GDT_GPA      0x500
#define SHIM_PML4_GPA     0x1000          /* PDPT 0x2000, PDs 0x3000..0x6fff */
#define SHIM_CS           0x10
#define SHIM_DS           0x18
#define SHIM_QEMU_MAGIC   0x554d4551494d564b /* "KVMIQEMU", R8 at entry */
#define SHIM_PORT_DEBUG_EXIT 0xf4         /* -device isa-debug-exit,iobase=0xf4 */

/* The shim's own memory below 1 MiB (after the page tables). */
#define SHIM_INFO_GPA     0x7000
#define SHIM_INFO_ARRIVED (SHIM_INFO_GPA + 0)   /* u32: APs counted in */
#define SHIM_INFO_LOCK    (SHIM_INFO_GPA + 4)   /* u32: the shim's print lock */
#define SHIM_INFO_NCPUS   (SHIM_INFO_GPA + 8)   /* u64: from fw_cfg */
#define SHIM_INFO_RAM     (SHIM_INFO_GPA + 16)  /* u64: from fw_cfg, capped */
#define SHIM_INFO_GO      (SHIM_INFO_GPA + 24)  /* u32: 1 = APs may enter */
#define SHIM_INFO_BADID   (SHIM_INFO_GPA + 28)  /* u32: APIC ID + 1 of an AP >= N */
#define SHIM_STACK_TOP    0x7ff0          /* for the shim's error report only (under the lock) */
#define SHIM_TRAMPOLINE   0x8000          /* AP real-mode entry: SIPI vector 0x08 */

/* fw_cfg (QEMU): selector (16-bit) and data ports, and the keys read. */
#define FW_CFG_PORT_SEL   0x510
#define FW_CFG_PORT_DATA  0x511
#define FW_CFG_RAM_SIZE   0x03
#define FW_CFG_NB_CPUS    0x05

#endif
