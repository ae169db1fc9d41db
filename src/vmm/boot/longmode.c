/* SPDX-License-Identifier: MIT */
/* The 64-bit entry state shared by test payloads and Linux: GDT, identity
 * paging of the first 4 GiB, and each vCPU's registers. */
#include "boot.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../guest_abi.h"
#include "util.h"
#include "../vcpu.h"
#include "../vm.h"

#define PTE_P   (1ull << 0)
#define PTE_RW  (1ull << 1)
#define PTE_US  (1ull << 2)
#define PTE_PS  (1ull << 7)

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE        (1ull << 5)
#define CR4_OSFXSR     (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define EFER_NXE (1ull << 11)

/* Flat descriptors: base 0, limit 4 GiB. */
static const uint64_t gdt[] = {
	0,                     /* 0x00 null */
	0,                     /* 0x08 unused */
	0x00af9b000000ffffull, /* 0x10 code: present, DPL0, L=1 */
	0x00cf93000000ffffull, /* 0x18 data: present, DPL0, writable */
};

int boot_setup_longmode(struct vm *vm)
{
	uint64_t pml4 = KVMI_GUEST_PML4_GPA, pdpt = pml4 + 0x1000, pd = pml4 + 0x2000;
	uint64_t *p;

	if (guest_write(&vm->mem, KVMI_GUEST_GDT_GPA, gdt, sizeof(gdt)))
		return -EFAULT;
	p = gpa_to_hva(&vm->mem, pml4, 6 * 0x1000);
	if (!p)
		return -EFAULT;
	memset(p, 0, 6 * 0x1000);
	p[0] = pdpt | PTE_P | PTE_RW | PTE_US;
	p = gpa_to_hva(&vm->mem, pdpt, 0x1000);
	for (unsigned i = 0; i < 4; i++)
		p[i] = (pd + i * 0x1000ull) | PTE_P | PTE_RW | PTE_US;
	p = gpa_to_hva(&vm->mem, pd, 4 * 0x1000);
	for (unsigned i = 0; i < 4 * 512; i++)
		p[i] = ((uint64_t)i << 21) | PTE_P | PTE_RW | PTE_US | PTE_PS;
	return 0;
}

static void flat_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = 0;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

int boot_vcpu_reset(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	struct kvm_sregs s;
	struct kvm_regs r;

	if (!vm->entry.all_vcpus && vcpu->id != 0)
		return 0; /* an AP of a Linux guest waits for INIT/SIPI from the BSP */

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0)
		return -errno;
	flat_seg(&s.cs, KVMI_GUEST_CS, 0xb, true);
	flat_seg(&s.ds, KVMI_GUEST_DS, 0x3, false);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.gdt.base = KVMI_GUEST_GDT_GPA;
	s.gdt.limit = sizeof(gdt) - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr3 = KVMI_GUEST_PML4_GPA;
	s.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	s.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	s.efer = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &s) < 0)
		return -errno;

	memset(&r, 0, sizeof(r));
	r.rflags = 0x2;
	r.rip = vm->entry.rip;
	if (vm->boot == VM_BOOT_PAYLOAD) {
		r.rdi = vm->nr_vcpus;
		r.rsi = vcpu->id;
		r.rdx = vm->mem.size;
	} else {
		r.rsi = vm->entry.rsi;
	}
	if (ioctl(vcpu->fd, KVM_SET_REGS, &r) < 0)
		return -errno;

	if (vcpu->id != 0) {
		struct kvm_mp_state mp = { .mp_state = KVM_MP_STATE_RUNNABLE };

		if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0)
			return -errno;
	}
	return 0;
}
