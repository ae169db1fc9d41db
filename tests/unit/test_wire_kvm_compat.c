/* SPDX-License-Identifier: MIT */
/*
 * test_wire_kvm_compat.c - our register blocks are byte-identical to
 * <linux/kvm.h>, so the VMM may copy KVM_GET_REGS/SREGS results into the
 * wire structs with memcpy. Checked at compile time (the test "runs" only
 * to report), field by field. Also: including <linux/kvm_para.h> next to
 * the wire header is a benign redefinition of the KVM_E* codes.
 */
#include <linux/kvm_para.h>
#include <kvmi/kvmi-wire.h>
#include <linux/kvm.h>

#include <stdio.h>

#define SAME(a, b, f) \
	_Static_assert(offsetof(struct a, f) == offsetof(struct b, f) && \
		       sizeof(((struct a *)0)->f) == sizeof(((struct b *)0)->f), #a "." #f)

_Static_assert(sizeof(struct kvm_regs) == sizeof(struct kvmi_x86_regs), "regs");
SAME(kvm_regs, kvmi_x86_regs, rax);
SAME(kvm_regs, kvmi_x86_regs, r15);
SAME(kvm_regs, kvmi_x86_regs, rip);
SAME(kvm_regs, kvmi_x86_regs, rflags);

_Static_assert(sizeof(struct kvm_segment) == sizeof(struct kvmi_x86_segment), "segment");
SAME(kvm_segment, kvmi_x86_segment, base);
SAME(kvm_segment, kvmi_x86_segment, limit);
SAME(kvm_segment, kvmi_x86_segment, selector);
SAME(kvm_segment, kvmi_x86_segment, type);
SAME(kvm_segment, kvmi_x86_segment, present);
SAME(kvm_segment, kvmi_x86_segment, dpl);
SAME(kvm_segment, kvmi_x86_segment, db);
SAME(kvm_segment, kvmi_x86_segment, s);
SAME(kvm_segment, kvmi_x86_segment, l);
SAME(kvm_segment, kvmi_x86_segment, g);
SAME(kvm_segment, kvmi_x86_segment, avl);
SAME(kvm_segment, kvmi_x86_segment, unusable);

_Static_assert(sizeof(struct kvm_dtable) == sizeof(struct kvmi_x86_dtable), "dtable");
SAME(kvm_dtable, kvmi_x86_dtable, base);
SAME(kvm_dtable, kvmi_x86_dtable, limit);

_Static_assert(sizeof(struct kvm_sregs) == sizeof(struct kvmi_x86_sregs), "sregs");
SAME(kvm_sregs, kvmi_x86_sregs, cs);
SAME(kvm_sregs, kvmi_x86_sregs, ss);
SAME(kvm_sregs, kvmi_x86_sregs, tr);
SAME(kvm_sregs, kvmi_x86_sregs, ldt);
SAME(kvm_sregs, kvmi_x86_sregs, gdt);
SAME(kvm_sregs, kvmi_x86_sregs, idt);
SAME(kvm_sregs, kvmi_x86_sregs, cr0);
SAME(kvm_sregs, kvmi_x86_sregs, cr8);
SAME(kvm_sregs, kvmi_x86_sregs, efer);
SAME(kvm_sregs, kvmi_x86_sregs, apic_base);
SAME(kvm_sregs, kvmi_x86_sregs, interrupt_bitmap);

_Static_assert(sizeof(struct kvm_msr_entry) == sizeof(struct kvmi_x86_msr_entry), "msr entry");
SAME(kvm_msr_entry, kvmi_x86_msr_entry, index);
SAME(kvm_msr_entry, kvmi_x86_msr_entry, data);
_Static_assert(sizeof(struct kvm_msrs) == sizeof(struct kvmi_x86_msrs), "msrs");
_Static_assert(sizeof(struct kvm_xsave) >= KVMI_XSAVE_SIZE, "xsave");

int main(void)
{
	printf("ok 1 - register blocks match <linux/kvm.h> (checked at compile time)\n1..1\n");
	return 0;
}
