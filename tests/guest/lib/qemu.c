/* SPDX-License-Identifier: MIT */
/*
 * The runtime's QEMU platform: a payload booted by the boot shim of
 * tests/guest/qemu under stock QEMU (R8 = KVMI_GUEST_QEMU_MAGIC at entry)
 * has no VMM behind its ucalls.  They become COM1 lines in the text kvmi-vm
 * logs for them (without its "kvmi-vm: " prefix), one at a time across
 * vCPUs, and the VM ends through isa-debug-exit (port 0xf4) with the
 * kvmi-vm exit status S written to it: QEMU exits with (S << 1) | 1.  The
 * last line before that is always "qemu-boot: exit status S".
 *
 * Never touched here: the ucall port 0x510 (fw_cfg's selector under QEMU)
 * and KVMI_PORT_MEM_RECREATE 0x518 (inside fw_cfg's DMA registers).
 */
#include "runtime.h"

#include "shim.h"

_Static_assert(SHIM_QEMU_MAGIC == KVMI_GUEST_QEMU_MAGIC, "shim.h and guest_abi.h disagree");
_Static_assert(SHIM_PORT_DEBUG_EXIT == KVMI_QEMU_PORT_DEBUG_EXIT, "shim.h and guest_abi.h disagree");
_Static_assert(SHIM_GDT_GPA == KVMI_GUEST_GDT_GPA, "shim.h and guest_abi.h disagree");
_Static_assert(SHIM_PML4_GPA == KVMI_GUEST_PML4_GPA, "shim.h and guest_abi.h disagree");
_Static_assert(SHIM_CS == KVMI_GUEST_CS && SHIM_DS == KVMI_GUEST_DS, "shim.h and guest_abi.h disagree");

bool guest_qemu;

static uint32_t print_lock;
static unsigned vcpus_done;             /* under print_lock */

/* For a vCPU beyond GUEST_MAX_VCPUS (entry.S): the first one gets it. */
uint32_t guest_qemu_overflow_taken;
uint8_t guest_qemu_overflow_stack[4096] __attribute__((aligned(16)));

/* Serialises COM1 between vCPUs: ucall lines and each serial_puts().
 * Spins natively in ring 3; in ring 0 (emulated on some hosts) the holder
 * is only ever writing one line. */
void guest_qemu_lock(void)
{
	while (__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
		while (__atomic_load_n(&print_lock, __ATOMIC_RELAXED))
			cpu_relax();
}

void guest_qemu_unlock(void)
{
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

/* With the lock held: the exit line, then QEMU exits; it stays held so
 * that no other vCPU writes after it. */
static __noreturn void exit_locked(uint8_t status)
{
	char line[32];

	guest_snprintf(line, sizeof(line), "qemu-boot: exit status %u\n", status);
	guest_serial_write(line);
	outb(KVMI_QEMU_PORT_DEBUG_EXIT, status);
	/* No isa-debug-exit device (see tests/guest/README.md): stop here. */
	guest_halt();
}

#define LAST_DONE (-2)

/* One line; with status >= 0 the VM ends after it; with LAST_DONE, if this
 * is the last vCPU's GUEST_DONE.  Counted under the lock: the line of every
 * vCPU done before is out when the last one ends the VM. */
static void report(int status, const char *fmt, ...) __printf(2, 3);
static void report(int status, const char *fmt, ...)
{
	char line[KVMI_UCALL_BUF_SIZE + 128];
	va_list ap;

	va_start(ap, fmt);
	guest_vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	guest_qemu_lock();
	guest_serial_write(line);
	guest_serial_write("\n");
	if (status == LAST_DONE && ++vcpus_done == __atomic_load_n(&guest_nr_vcpus, __ATOMIC_RELAXED))
		status = KVMI_VM_EXIT_OK;
	if (status >= 0)
		exit_locked((uint8_t)status);
	guest_qemu_unlock();
}

uint64_t guest_qemu_ucall(struct kvmi_ucall *uc)
{
	unsigned vcpu = (unsigned)uc->vcpu;

	uc->buf[KVMI_UCALL_BUF_SIZE - 1] = '\0';
	switch (uc->cmd) {
	case KVMI_UCALL_SYNC:
		report(-1, "vcpu %u: sync %llu", vcpu, (unsigned long long)uc->args[0]);
		break;
	case KVMI_UCALL_PRINT:
		report(-1, "vcpu %u: print: %s", vcpu, uc->buf);
		break;
	case KVMI_UCALL_ASSERT:
		report(KVMI_VM_EXIT_GUEST_FAIL, "vcpu %u: assertion failed: %s", vcpu, uc->buf);
		break;
	case KVMI_UCALL_UNEXPECTED_EXCEPTION:
		report(KVMI_VM_EXIT_GUEST_FAIL,
		       "vcpu %u: unexpected exception %llu (error 0x%llx) at rip 0x%llx cs 0x%llx", vcpu,
		       (unsigned long long)uc->args[0], (unsigned long long)uc->args[1],
		       (unsigned long long)uc->args[2], (unsigned long long)uc->args[3]);
		break;
	case KVMI_UCALL_DONE:
		report(LAST_DONE, "vcpu %u: done", vcpu);
		break;
	default:
		/* Any other command is one a VMM hook would answer (args[]). */
		report(KVMI_VM_EXIT_GUEST_FAIL,
		       "vcpu %u: assertion failed: ucall %llu needs a reply from kvmi-vm; "
		       "there is no VMM under QEMU", vcpu, (unsigned long long)uc->cmd);
		break;
	}
	/* What kvmi-vm's default handler leaves there: the guest's own value. */
	return __atomic_load_n(&uc->args[0], __ATOMIC_RELAXED);
}

void guest_qemu_power_off(uint8_t status)
{
	report(status, "guest powered off (status %u)", status);
	guest_halt();
}

void guest_qemu_unsupported(const char *what)
{
	report(KVMI_VM_EXIT_GUEST_FAIL,
	       "vcpu %u: assertion failed: %s: kvmi-vm only, there is no such device under QEMU",
	       guest_vcpu_id(), what);
	guest_halt();
}

void guest_qemu_too_many_vcpus(uint64_t vcpu)
{
	report(KVMI_VM_EXIT_GUEST_FAIL, "vcpu %llu: assertion failed: %s", (unsigned long long)vcpu,
	       guest_too_many_vcpus.buf);
	guest_halt();
}
