/* SPDX-License-Identifier: MIT */
/*
 * The contract between kvmi-vm and the test payloads it runs (--guest FILE):
 * entry state, the platform ports, and the ucall record.  Included by the VMM
 * and by the freestanding guest runtime in tests/guest, so keep it free of
 * libc and of anything but fixed-width types.
 *
 * Entry state of every vCPU of a payload (ELF or flat binary):
 *   - 64-bit long mode, CPL 0, interrupts disabled (RFLAGS = 0x2);
 *   - GDT at KVMI_GUEST_GDT_GPA: 0x10 = flat 64-bit code, 0x18 = flat data
 *     (the same selectors the Linux 64-bit boot protocol uses);
 *   - paging on, CR3 = KVMI_GUEST_PML4_GPA, [0, 4 GiB) identity-mapped with
 *     2 MiB pages, present | writable | user (ring 3 may touch everything);
 *   - CR0 = PE|MP|ET|NE|WP|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT, EFER = SCE|LME|LMA|NXE;
 *   - RIP = ELF entry (flat binary: its load address), RSP = 0 (the runtime
 *     sets its own stacks), RDI = number of vCPUs, RSI = this vCPU's index,
 *     RDX = guest RAM size in bytes, R8 = 0 (the platform marker, below),
 *     every other general register 0;
 *   - all vCPUs start at once at the same entry point (no INIT/SIPI dance).
 *
 * The same payloads also boot under stock QEMU through the boot shim of
 * tests/guest/qemu (NAME.bios, given to -bios; tests/guest/README.md has the
 * command line).  It gives the same state with three differences:
 *   - R8 = KVMI_GUEST_QEMU_MAGIC: there is no VMM behind the ports below,
 *     and the runtime must not touch KVMI_PORT_UCALL (fw_cfg's selector
 *     there) nor KVMI_PORT_MEM_RECREATE (inside fw_cfg's DMA registers);
 *   - the APs start through INIT-SIPI-SIPI and reach the entry a little
 *     after the BSP; RSI = the initial APIC ID (0..N-1 with QEMU's default
 *     -smp topology), RDX = QEMU's RAM size, at most 2 GiB;
 *   - memory below KVMI_GUEST_PAYLOAD_MIN_GPA also holds the shim's data
 *     (0x7000) and AP trampoline (0x8000).
 * The exit of such a VM is isa-debug-exit at KVMI_QEMU_PORT_DEBUG_EXIT: the
 * runtime writes the kvmi-vm exit status S (KVMI_VM_EXIT_*, or a power-off
 * value) and QEMU exits with (S << 1) | 1.
 *
 * Memory below KVMI_GUEST_PAYLOAD_MIN_GPA belongs to the VMM (GDT, page
 * tables); payloads must be linked at or above it (the runtime links at 1 MiB).
 */
#ifndef KVMI_VM_GUEST_ABI_H
#define KVMI_VM_GUEST_ABI_H

#include <stdint.h>

#define KVMI_GUEST_GDT_GPA          0x0500ull
#define KVMI_GUEST_PML4_GPA         0x1000ull   /* + PDPT at 0x2000, 4 PDs at 0x3000..0x6fff */
#define KVMI_GUEST_PAYLOAD_MIN_GPA  0x100000ull /* 1 MiB */
#define KVMI_GUEST_FLAT_LOAD_GPA    0x100000ull /* where --guest loads a flat binary */

#define KVMI_GUEST_CS               0x10
#define KVMI_GUEST_DS               0x18

/* Platform ports (see src/vmm/devices/platform.c). */
#define KVMI_PORT_SERIAL_COM1       0x3f8   /* 16550, 8 ports */
#define KVMI_PORT_UCALL             0x0510  /* outl: guest-physical address of a struct kvmi_ucall */
#define KVMI_PORT_POWEROFF          0x0504  /* outb v: power off, VMM exit status v (0 = clean) */
#define KVMI_PORT_RESET_CF9         0x0cf9  /* outb with bit 2 set: reset */
#define KVMI_PORT_I8042_CMD         0x0064  /* outb 0xfe: reset (keyboard controller pulse) */
/* outb n: delete and re-create the memslots of RAM region n (0: below
 * 4 GiB), as a remap or hot-plug would; what tests of page tracking across
 * memory-region changes use. */
#define KVMI_PORT_MEM_RECREATE      0x0518

/* Entry R8 under stock QEMU ("KVMIQEMU"); 0 under kvmi-vm. */
#define KVMI_GUEST_QEMU_MAGIC       0x554d4551494d564bull
/* QEMU's -device isa-debug-exit,iobase=0xf4,iosize=0x04: outb S exits
 * QEMU with status (S << 1) | 1. */
#define KVMI_QEMU_PORT_DEBUG_EXIT   0x00f4

enum kvmi_ucall_cmd {
	KVMI_UCALL_NONE   = 0,
	KVMI_UCALL_SYNC   = 1, /* args[0] = stage; the VMM logs it and resumes */
	KVMI_UCALL_ASSERT = 2, /* args[0] = line, buf = "file:line: expr: message"; the VM stops, status 3 */
	KVMI_UCALL_DONE   = 3, /* this vCPU finished; the VM stops when every vCPU is done, status 0 */
	KVMI_UCALL_PRINT  = 4, /* buf = text, logged by the VMM */
	KVMI_UCALL_UNEXPECTED_EXCEPTION = 5, /* args[0]=vector args[1]=error code args[2]=rip args[3]=cs; VM stops, status 3 */
};

#define KVMI_UCALL_BUF_SIZE 256

/*
 * Written by the guest in its own memory (identity-mapped, so its address is
 * its guest-physical address), then announced with one 32-bit OUT to
 * KVMI_PORT_UCALL.  The VMM reads it, may write args[] back (reply), and the
 * guest continues after the OUT.  Must lie below 4 GiB.
 */
struct kvmi_ucall {
	uint64_t cmd;
	uint64_t vcpu;      /* filled by the guest runtime */
	uint64_t args[6];
	char     buf[KVMI_UCALL_BUF_SIZE];
};

_Static_assert(sizeof(struct kvmi_ucall) == 64 + KVMI_UCALL_BUF_SIZE, "kvmi_ucall layout");

/* VMM exit statuses (kvmi-vm's process exit code). */
#define KVMI_VM_EXIT_OK          0
#define KVMI_VM_EXIT_USAGE       1   /* bad command line / bad input file */
#define KVMI_VM_EXIT_HOST        2   /* /dev/kvm missing, capability missing, ioctl failure */
#define KVMI_VM_EXIT_GUEST_FAIL  3   /* guest assertion or unexpected exception */
#define KVMI_VM_EXIT_CRASH       4   /* triple fault, KVM_EXIT_SHUTDOWN, internal error, fail entry */
#define KVMI_VM_EXIT_TIMEOUT     5   /* --timeout expired */

#endif
