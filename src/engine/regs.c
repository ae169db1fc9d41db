/* SPDX-License-Identifier: MIT */
/* vCPU registers, CPUID, XSAVE, XCR, MTRR, translation and exception
 * injection for KVMI commands and events, on the vCPU thread. */
#include "kvm_ioctl.h"
#include "regs.h"

#include <errno.h>
#include <stdio.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "internal.h"
#include "util.h"

_Static_assert(sizeof(struct kvm_regs) == sizeof(struct kvmi_x86_regs), "kvm_regs layout");
_Static_assert(sizeof(struct kvm_sregs) == sizeof(struct kvmi_x86_sregs), "kvm_sregs layout");
_Static_assert(sizeof(struct kvm_msr_entry) == sizeof(struct kvmi_x86_msr_entry), "kvm_msr_entry layout");
_Static_assert(sizeof(struct kvm_xsave) == KVMI_XSAVE_SIZE, "kvm_xsave layout");

#define SYNC_BITS (KVM_SYNC_X86_REGS | KVM_SYNC_X86_SREGS)

void eng_sync_regs(struct kvmi_engine_vcpu *vcpu, bool on)
{
	if (!vcpu->e->have_sync_regs)
		return;
	vcpu->run->kvm_valid_regs = on ? SYNC_BITS : 0;
	vcpu->run->kvm_dirty_regs = 0;
}

void eng_regs_ran(struct kvmi_engine_vcpu *vcpu, int ret, int err)
{
	/* KVM stores the copies on every way out of KVM_RUN that got past
	 * its argument checks, -EINTR included. */
	vcpu->sync_valid = ret >= 0 || err == EINTR ? vcpu->run->kvm_valid_regs & SYNC_BITS : 0;
}

void kvmi_engine_vcpu_regs_changed(struct kvmi_engine_vcpu *vcpu)
{
	vcpu->sync_valid = 0;
}

int eng_get_regs(struct kvmi_engine_vcpu *vcpu, struct kvm_regs *r)
{
	if (vcpu->sync_valid & KVM_SYNC_X86_REGS) {
		*r = vcpu->run->s.regs.regs;
		return 0;
	}
	return kvm_ioctl(vcpu->fd, KVM_GET_REGS, r) < 0 ? -errno : 0;
}

int eng_get_sregs(struct kvmi_engine_vcpu *vcpu, struct kvm_sregs *s)
{
	if (vcpu->sync_valid & KVM_SYNC_X86_SREGS) {
		*s = vcpu->run->s.regs.sregs;
		return 0;
	}
	return kvm_ioctl(vcpu->fd, KVM_GET_SREGS, s) < 0 ? -errno : 0;
}

int eng_set_regs(struct kvmi_engine_vcpu *vcpu, const struct kvm_regs *r)
{
	vcpu->sync_valid &= ~(uint32_t)KVM_SYNC_X86_REGS;
	return kvm_ioctl(vcpu->fd, KVM_SET_REGS, r) < 0 ? -errno : 0;
}

int eng_set_sregs(struct kvmi_engine_vcpu *vcpu, const struct kvm_sregs *s)
{
	vcpu->sync_valid &= ~(uint32_t)KVM_SYNC_X86_SREGS;
	return kvm_ioctl(vcpu->fd, KVM_SET_SREGS, s) < 0 ? -errno : 0;
}

#define MSR_IA32_SYSENTER_CS  0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_CR_PAT       0x277
#define MSR_MTRRcap           0xfe
#define MSR_MTRRdefType       0x2ff
#define MSR_MTRRphysBase0     0x200
#define MSR_MTRRfix64K_00000  0x250
#define MSR_MTRRfix16K_80000  0x258
#define MSR_MTRRfix16K_A0000  0x259
#define MSR_MTRRfix4K_C0000   0x268
#define MSR_EFER              0xc0000080
#define MSR_STAR              0xc0000081
#define MSR_LSTAR             0xc0000082
#define MSR_CSTAR             0xc0000083
#define MSR_KERNEL_GS_BASE    0xc0000102

#define MTRR_TYPE_UC 0
#define MTRR_TYPE_WT 4
#define MTRR_TYPE_WB 6

/* KVM_GET_MSRS / KVM_SET_MSRS on n entries (index set, data read or
 * written in place); KVM's answer: how many entries it processed, or -1. */
static int msrs_ioctl(struct kvmi_engine_vcpu *vcpu, unsigned long req, struct kvm_msr_entry *e, unsigned n)
{
	struct kvm_msrs *m = calloc(1, sizeof(*m) + n * sizeof(m->entries[0]));
	int ret;

	if (!m)
		return -1;
	m->nmsrs = n;
	memcpy(m->entries, e, n * sizeof(*e));
	if (req == KVM_SET_MSRS)
		kvmi_engine_vcpu_regs_changed(vcpu);        /* EFER is in sregs */
	ret = kvm_ioctl(vcpu->fd, req, m);
	if (ret > 0)
		memcpy(e, m->entries, (size_t)ret * sizeof(*e));
	free(m);
	return ret;
}

/* Reads n MSRs; 0, or -KVM_EINVAL if any of them cannot be read. */
static int read_msrs(struct kvmi_engine_vcpu *vcpu, const uint32_t *idx, unsigned n, uint64_t *val)
{
	struct kvm_msr_entry e[8];

	if (n > ARRAY_SIZE(e))
		return -KVM_EINVAL;
	memset(e, 0, sizeof(e));
	for (unsigned i = 0; i < n; i++)
		e[i].index = idx[i];
	if (msrs_ioctl(vcpu, KVM_GET_MSRS, e, n) != (int)n)
		return -KVM_EINVAL;
	for (unsigned i = 0; i < n; i++)
		val[i] = e[i].data;
	return 0;
}

int kvmi_vcpu_get_msr(struct kvmi_engine_vcpu *vcpu, uint32_t index, uint64_t *value)
{
	return read_msrs(vcpu, &index, 1, value);
}

int kvmi_vcpu_set_msr(struct kvmi_engine_vcpu *vcpu, uint32_t index, uint64_t value)
{
	struct kvm_msr_entry e = { .index = index, .data = value };

	return msrs_ioctl(vcpu, KVM_SET_MSRS, &e, 1) == 1 ? 0 : -KVM_EINVAL;
}

unsigned kvmi_cpu_mode(const struct kvmi_x86_sregs *s)
{
	if (!(s->cr0 & 1))
		return 2;               /* real mode */
	if ((s->efer & (1u << 10)) && s->cs.l)
		return 8;               /* 64-bit */
	return s->cs.db ? 4 : 2;        /* protected / compatibility, by CS size */
}

int kvmi_vcpu_fill_event_arch(struct kvmi_engine_vcpu *vcpu, struct kvmi_event_arch *arch)
{
	static const uint32_t idx[] = {
		MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_EFER,
		MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_IA32_CR_PAT, MSR_KERNEL_GS_BASE,
	};
	struct kvm_msr_entry e[ARRAY_SIZE(idx)];
	unsigned i = 0;

	memset(arch, 0, sizeof(*arch));
	if (eng_get_regs(vcpu, (struct kvm_regs *)&arch->regs) < 0 ||
	    eng_get_sregs(vcpu, (struct kvm_sregs *)&arch->sregs) < 0)
		return -KVM_EINVAL;
	/* One KVM_GET_MSRS per event (this is the event path).  KVM stops at
	 * the first MSR it cannot read (CSTAR on Intel's view of some hosts):
	 * that one stays zero and the rest are read from the next. */
	memset(e, 0, sizeof(e));
	for (unsigned k = 0; k < ARRAY_SIZE(idx); k++)
		e[k].index = idx[k];
	while (i < ARRAY_SIZE(idx)) {
		int n = msrs_ioctl(vcpu, KVM_GET_MSRS, e + i, ARRAY_SIZE(idx) - i);

		if (n < 0)
			break;
		i += (unsigned)n;
		if (i < ARRAY_SIZE(idx))
			e[i++].data = 0;
	}
	arch->msrs.sysenter_cs = e[0].data;
	arch->msrs.sysenter_esp = e[1].data;
	arch->msrs.sysenter_eip = e[2].data;
	arch->msrs.efer = e[3].data;
	arch->msrs.star = e[4].data;
	arch->msrs.lstar = e[5].data;
	arch->msrs.cstar = e[6].data;
	arch->msrs.pat = e[7].data;
	arch->msrs.shadow_gs = e[8].data;
	arch->mode = (uint8_t)kvmi_cpu_mode(&arch->sregs);
	arch->view = 0;
	return 0;
}

/* The value of MSR @index if the event header carries it. */
bool kvmi_event_arch_msr(const struct kvmi_event_arch *a, uint32_t index, uint64_t *value)
{
	switch (index) {
	case MSR_IA32_SYSENTER_CS:  *value = a->msrs.sysenter_cs; return true;
	case MSR_IA32_SYSENTER_ESP: *value = a->msrs.sysenter_esp; return true;
	case MSR_IA32_SYSENTER_EIP: *value = a->msrs.sysenter_eip; return true;
	case MSR_EFER:              *value = a->msrs.efer; return true;
	case MSR_STAR:              *value = a->msrs.star; return true;
	case MSR_LSTAR:             *value = a->msrs.lstar; return true;
	case MSR_CSTAR:             *value = a->msrs.cstar; return true;
	case MSR_IA32_CR_PAT:       *value = a->msrs.pat; return true;
	case MSR_KERNEL_GS_BASE:    *value = a->msrs.shadow_gs; return true;
	default:                    return false;
	}
}

int kvmi_vcpu_get_registers(struct kvmi_engine_vcpu *vcpu, uint32_t *mode, struct kvmi_x86_regs *regs,
			    struct kvmi_x86_sregs *sregs, struct kvmi_x86_msr_entry *msrs, unsigned nmsrs)
{
	if (eng_get_regs(vcpu, (struct kvm_regs *)regs) < 0 || eng_get_sregs(vcpu, (struct kvm_sregs *)sregs) < 0)
		return -KVM_EINVAL;
	*mode = kvmi_cpu_mode(sregs);
	/* The wire entries are struct kvm_msr_entry (asserted above). */
	if (nmsrs && msrs_ioctl(vcpu, KVM_GET_MSRS, (struct kvm_msr_entry *)msrs, nmsrs) != (int)nmsrs)
		return -KVM_EINVAL;
	return 0;
}

int kvmi_vcpu_set_regs(struct kvmi_engine_vcpu *vcpu, const struct kvmi_x86_regs *regs)
{
	if (vmm_log_level >= LOG_DEBUG) {
		struct kvm_regs now;

		if (kvm_ioctl(vcpu->fd, KVM_GET_REGS, &now) == 0)
			pr_debug("vcpu %u: SET_REGISTERS from the tool: rip %#llx rsp %#llx rflags %#llx rbx %#llx "
				 "(the vCPU has rip %#llx rsp %#llx rflags %#llx; sync_valid %#x)", vcpu->idx,
				 (unsigned long long)regs->rip, (unsigned long long)regs->rsp,
				 (unsigned long long)regs->rflags, (unsigned long long)regs->rbx,
				 (unsigned long long)now.rip, (unsigned long long)now.rsp,
				 (unsigned long long)now.rflags, vcpu->sync_valid);
	}
	return eng_set_regs(vcpu, (const struct kvm_regs *)regs) < 0 ? -KVM_EINVAL : 0;
}

int kvmi_vcpu_get_cpuid(struct kvmi_engine_vcpu *vcpu, uint32_t function, uint32_t index,
			struct kvmi_get_cpuid_reply *reply)
{
	unsigned nent = 256; /* more than any CPUID table KVM builds */
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));
	int ret = -KVM_ENOENT;

	if (!c)
		return -KVM_ENOMEM;
	c->nent = nent;
	if (kvm_ioctl(vcpu->fd, KVM_GET_CPUID2, c) < 0) {
		free(c);
		return -KVM_EINVAL;
	}
	for (unsigned i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		*reply = (struct kvmi_get_cpuid_reply){ e->eax, e->ebx, e->ecx, e->edx };
		ret = 0;
		break;
	}
	free(c);
	return ret;
}

int kvmi_vcpu_get_xsave(struct kvmi_engine_vcpu *vcpu, void *region)
{
	return kvm_ioctl(vcpu->fd, KVM_GET_XSAVE, region) < 0 ? -KVM_EINVAL : 0;
}

int kvmi_vcpu_set_xsave(struct kvmi_engine_vcpu *vcpu, const void *region, size_t size)
{
	struct kvm_xsave x;

	if (size > sizeof(x))
		return -KVM_EINVAL;
	/* A short region updates its prefix; the rest keeps the current state. */
	if (kvm_ioctl(vcpu->fd, KVM_GET_XSAVE, &x) < 0)
		return -KVM_EINVAL;
	memcpy(&x, region, size);
	return kvm_ioctl(vcpu->fd, KVM_SET_XSAVE, &x) < 0 ? -KVM_EINVAL : 0;
}

int kvmi_vcpu_get_xcr(struct kvmi_engine_vcpu *vcpu, uint8_t xcr, uint64_t *value)
{
	struct kvm_xcrs x;

	if (xcr != 0)
		return -KVM_EINVAL;
	if (kvm_ioctl(vcpu->fd, KVM_GET_XCRS, &x) < 0)
		return -KVM_EOPNOTSUPP;
	for (unsigned i = 0; i < x.nr_xcrs; i++) {
		if (x.xcrs[i].xcr == 0) {
			*value = x.xcrs[i].value;
			return 0;
		}
	}
	return -KVM_EOPNOTSUPP;
}

int kvmi_vcpu_get_tsc_speed(struct kvmi_engine_vcpu *vcpu, uint64_t *hz)
{
	int khz = kvm_ioctl(vcpu->fd, KVM_GET_TSC_KHZ, 0);

	*hz = khz > 0 ? (uint64_t)khz * 1000 : 0;
	return 0;
}

/*
 * KVM walks the guest's page tables through the memslots.  While another
 * thread replaces slots (a tool's SET_PAGE_ACCESS, another vCPU's execute
 * step) the page tables may be missing for a moment and the walk fails:
 * the page tracker's lock keeps the walk out of that window.  (Without it
 * a vCPU handling a fetch fault took "untranslatable RIP" for KVM's own
 * failure and got a #UD.)
 */
int kvmi_vcpu_translate_gva(struct kvmi_engine_vcpu *vcpu, uint64_t gva, uint64_t *gpa)
{
	struct kvm_translation t = { .linear_address = gva };
	int ret;

	kvmi_rwlock_rdlock(&vcpu->e->pt_lock);
	ret = kvm_ioctl(vcpu->fd, KVM_TRANSLATE, &t);
	kvmi_rwlock_unlock(&vcpu->e->pt_lock);
	*gpa = ret < 0 || !t.valid ? KVMI_UNMAPPED_GVA : t.physical_address;
	return 0;
}

static uint8_t fixed_mtrr_type(struct kvmi_engine_vcpu *vcpu, uint64_t gpa, bool *ok)
{
	uint32_t msr;
	unsigned shift;
	uint64_t v = 0;

	if (gpa < 0x80000) {
		msr = MSR_MTRRfix64K_00000;
		shift = (unsigned)(gpa >> 16);
	} else if (gpa < 0xc0000) {
		msr = MSR_MTRRfix16K_80000 + (uint32_t)((gpa - 0x80000) >> 17);
		shift = (unsigned)(((gpa - 0x80000) >> 14) & 7);
	} else {
		msr = MSR_MTRRfix4K_C0000 + (uint32_t)((gpa - 0xc0000) >> 15);
		shift = (unsigned)(((gpa - 0xc0000) >> 12) & 7);
	}
	*ok = read_msrs(vcpu, &msr, 1, &v) == 0;
	return (uint8_t)(v >> (shift * 8));
}

/* The guest's own MTRRs (the SDM's rules for combining overlapping ranges). */
int kvmi_vcpu_get_mtrr_type(struct kvmi_engine_vcpu *vcpu, uint64_t gpa, uint8_t *type)
{
	uint32_t idx[2] = { MSR_MTRRcap, MSR_MTRRdefType };
	uint64_t v[2], cap, def;
	int found = -1;
	bool ok;

	if (read_msrs(vcpu, idx, 2, v))
		return -KVM_EINVAL;
	cap = v[0];
	def = v[1];
	if (!(def & (1u << 11))) {           /* MTRRs disabled: everything UC */
		*type = MTRR_TYPE_UC;
		return 0;
	}
	if (gpa < 0x100000 && (def & (1u << 10)) && (cap & (1u << 8))) {
		*type = fixed_mtrr_type(vcpu, gpa, &ok);
		if (ok)
			return 0;
	}
	for (unsigned i = 0; i < (cap & 0xff); i++) {
		uint32_t r[2] = { MSR_MTRRphysBase0 + 2 * i, MSR_MTRRphysBase0 + 2 * i + 1 };
		uint64_t bm[2], mask;
		uint8_t t;

		if (read_msrs(vcpu, r, 2, bm))
			return -KVM_EINVAL;
		if (!(bm[1] & (1u << 11)))
			continue;
		mask = bm[1] & ~0xfffull;
		if ((gpa & mask) != (bm[0] & mask))
			continue;
		t = (uint8_t)(bm[0] & 0xff);
		if (found < 0 || t == MTRR_TYPE_UC)
			found = t;
		else if ((found == MTRR_TYPE_WB && t == MTRR_TYPE_WT) ||
			 (found == MTRR_TYPE_WT && t == MTRR_TYPE_WB))
			found = MTRR_TYPE_WT;
		if (found == MTRR_TYPE_UC)
			break;
	}
	*type = found >= 0 ? (uint8_t)found : (uint8_t)(def & 0xff);
	return 0;
}

static bool vector_has_error_code(uint8_t v)
{
	return v == 8 || (v >= 10 && v <= 14) || v == 17 || v == 21;
}

int kvmi_vcpu_inject_exception(struct kvmi_engine_vcpu *vcpu, uint8_t vector, uint32_t error_code,
			       uint64_t address)
{
	struct kvm_vcpu_events ev;

	if (vector >= 32)
		return -KVM_EINVAL;
	if (kvm_ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -KVM_EINVAL;
	if (ev.exception.injected || ev.exception.pending)
		return -KVM_EBUSY;
	ev.exception.injected = 0;
	ev.exception.pending = 1;
	ev.exception.nr = vector;
	ev.exception.has_error_code = vector_has_error_code(vector);
	ev.exception.error_code = error_code;
	ev.exception_has_payload = vector == 14;
	ev.exception_payload = vector == 14 ? address : 0;
	ev.flags = KVM_VCPUEVENT_VALID_PAYLOAD;
	if (kvm_ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
		/* Hosts without KVM_CAP_EXCEPTION_PAYLOAD: inject as "injected"
		 * and set CR2 by hand for #PF. */
		ev.flags = 0;
		ev.exception.pending = 0;
		ev.exception.injected = 1;
		if (vector == 14) {
			struct kvm_sregs s;

			if (eng_get_sregs(vcpu, &s) < 0)
				return -KVM_EINVAL;
			s.cr2 = address;
			if (eng_set_sregs(vcpu, &s) < 0)
				return -KVM_EINVAL;
		}
		if (kvm_ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			return -KVM_EINVAL;
	}
	return 0;
}

/*
 * Delivers the #BP of the int3 at RIP.  KVM treats an injected #BP as the
 * soft exception it is and steps over the int3 itself; with skip_first the
 * caller moves RIP past the one-byte int3 first (hosts whose emulator gave
 * up on the int3 inject a plain exception).
 */
int kvmi_vcpu_reinject_bp(struct kvmi_engine_vcpu *vcpu, bool skip_first)
{
	struct kvm_regs regs;
	int err;

	if (skip_first) {
		if (eng_get_regs(vcpu, &regs) < 0)
			return -errno;
		regs.rip++;
		if (eng_set_regs(vcpu, &regs) < 0)
			return -errno;
	}
	/* Without KVM_CAP_EXIT_ON_EMULATION_FAILURE, KVM has queued a #UD
	 * for the int3 it could not emulate: the #BP replaces it. */
	err = kvmi_vcpu_drop_exception(vcpu, 6);
	return err ? err : kvmi_vcpu_inject_exception(vcpu, 3, 0, 0);
}

/*
 * After a single step the VMM made for itself: some hosts leave RFLAGS.TF
 * set (or a #DB queued) in the guest at CPL 3, which the guest would then
 * take as its own debug trap.  Clear what the guest did not have.
 */
int kvmi_vcpu_drop_step_trap(struct kvmi_engine_vcpu *vcpu, bool guest_tf)
{
	struct kvm_regs regs;

	if (!guest_tf && eng_get_regs(vcpu, &regs) == 0 && (regs.rflags & (1ull << 8))) {
		regs.rflags &= ~(1ull << 8);
		if (eng_set_regs(vcpu, &regs) < 0)
			return -errno;
	}
	return guest_tf ? 0 : kvmi_vcpu_drop_exception(vcpu, 1);
}

/* Drops a pending or injected exception `vector` (one KVM queued itself). */
int kvmi_vcpu_drop_exception(struct kvmi_engine_vcpu *vcpu, uint8_t vector)
{
	struct kvm_vcpu_events ev;

	if (kvm_ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	if (!(ev.exception.pending || ev.exception.injected) || ev.exception.nr != vector)
		return 0;
	ev.exception.pending = 0;
	ev.exception.injected = 0;
	ev.exception_has_payload = 0;
	ev.flags = 0;
	return kvm_ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ? -errno : 0;
}
