/* SPDX-License-Identifier: MIT */
/*
 * Start-up probe: how does a guest int3 reach userspace on this host?
 *
 * Hardware KVM with KVM_GUESTDBG_USE_SW_BP turns int3 into KVM_EXIT_DEBUG
 * (exception 3).  Some hosts never do (docs/test-hosts.md): a software
 * hypervisor whose emulator rejects int3 at ring 0 reports an emulation
 * failure instead, and an emulated SVM that ignores the #BP intercept hands
 * the exception straight to the guest.  A throw-away VM with one vCPU in
 * 64-bit ring 0 executes one int3 and the exit tells which path exists, so
 * CHECK_EVENT(BREAKPOINT) answers truthfully.
 *
 * Also whether the host uses nested paging (kvm_amd npt, kvm_intel ept):
 * then a guest page table cannot be walked from a read-only memslot
 * (ptwalk.c).
 */
#include "kvm_ioctl.h"
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PROBE_MEM    0x4000u     /* GDT + code, PML4, PDPT, PD */
#define PROBE_GDT    0x0500u
#define PROBE_CODE   0x0800u
#define PROBE_PML4   0x1000u

void kvmi_probe_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

static int setup(int vcpu_fd, uint8_t *mem)
{
	static const uint64_t gdt[] = { 0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull };
	uint64_t *pml4 = (uint64_t *)(mem + PROBE_PML4);
	struct kvm_sregs s;
	struct kvm_regs r;

	memcpy(mem + PROBE_GDT, gdt, sizeof(gdt));
	pml4[0] = (PROBE_PML4 + 0x1000) | 3;            /* -> PDPT */
	pml4[512] = (PROBE_PML4 + 0x2000) | 3;          /* PDPT[0] -> PD */
	pml4[1024] = 0x83;                              /* PD[0]: 2 MiB at 0 */
	mem[PROBE_CODE] = 0xcc;                         /* int3 */
	mem[PROBE_CODE + 1] = 0xf4;                     /* hlt */

	if (kvm_ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	kvmi_probe_segment(&s.cs, 0x10, 0xb, 1);
	kvmi_probe_segment(&s.ds, 0x18, 0x3, 0);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.gdt.base = PROBE_GDT;
	s.gdt.limit = sizeof(gdt) - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr3 = PROBE_PML4;
	s.cr4 = 1u << 5;                                /* PAE */
	s.cr0 = 0x80000031u;                            /* PG NE ET PE */
	s.efer = (1u << 8) | (1u << 10);                /* LME LMA */
	if (kvm_ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return -errno;
	memset(&r, 0, sizeof(r));
	r.rflags = 2;
	r.rip = PROBE_CODE;
	r.rsp = PROBE_GDT;
	return kvm_ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}

enum kvmi_int3_path kvmi_probe_int3(int kvm_fd)
{
	struct kvm_guest_debug dbg = {
		.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP,
	};
	struct kvm_userspace_memory_region slot;
	enum kvmi_int3_path path = KVMI_INT3_NONE;
	struct kvm_run *run = MAP_FAILED;
	int vm_fd, vcpu_fd = -1, run_size;
	uint8_t *mem;

	mem = mmap(NULL, PROBE_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return KVMI_INT3_NONE;
	vm_fd = kvm_ioctl(kvm_fd, KVM_CREATE_VM, 0);
	if (vm_fd < 0)
		goto out;
	memset(&slot, 0, sizeof(slot));
	slot.memory_size = PROBE_MEM;
	slot.userspace_addr = (uintptr_t)mem;
	if (kvm_ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		goto out;
	vcpu_fd = kvm_ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	run_size = kvm_ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vcpu_fd < 0 || run_size <= 0)
		goto out;
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	if (run == MAP_FAILED || setup(vcpu_fd, mem) || kvm_ioctl(vcpu_fd, KVM_SET_GUEST_DEBUG, &dbg) < 0)
		goto out;
	/* No interrupt controller: every way out of this guest exits (debug,
	 * emulation failure, hlt, or a triple fault through the empty IDT). */
	for (int tries = 0; tries < 4; tries++) {
		if (kvm_ioctl(vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			break;
		}
		if (run->exit_reason == KVM_EXIT_DEBUG && run->debug.arch.exception == 3)
			path = KVMI_INT3_DEBUG_EXIT;
		else if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
			 run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION)
			path = KVMI_INT3_EMULATION;
		break;
	}
out:
	if (run != MAP_FAILED)
		munmap(run, (size_t)run_size);
	if (vcpu_fd >= 0)
		close(vcpu_fd);
	if (vm_fd >= 0)
		close(vm_fd);
	munmap(mem, PROBE_MEM);
	return path;
}

const char *kvmi_int3_path_name(enum kvmi_int3_path path)
{
	switch (path) {
	case KVMI_INT3_DEBUG_EXIT:
		return "debug exits";
	case KVMI_INT3_EMULATION:
		return "emulation failures (ring 0 only)";
	default:
		return "unavailable (int3 goes to the guest)";
	}
}

/* A kvm module parameter: 1 (Y, 1...), 0 (N, 0), -1 (absent). */
static int module_param(const char *path)
{
	char buf[8] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	return buf[0] == 'Y' || buf[0] == 'y' || (buf[0] >= '1' && buf[0] <= '9');
}

enum kvmi_nested_paging kvmi_probe_nested_paging(void)
{
	int np = module_param("/sys/module/kvm_amd/parameters/npt");

	if (np < 0)
		np = module_param("/sys/module/kvm_intel/parameters/ept");
	return np < 0 ? KVMI_NPT_UNKNOWN : np ? KVMI_NPT_ON : KVMI_NPT_OFF;
}

const char *kvmi_nested_paging_name(enum kvmi_nested_paging np)
{
	switch (np) {
	case KVMI_NPT_OFF:
		return "off";
	case KVMI_NPT_ON:
		return "on";
	default:
		return "unknown (neither kvm_amd nor kvm_intel)";
	}
}
