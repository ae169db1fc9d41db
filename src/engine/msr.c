/* SPDX-License-Identifier: MIT */
/*
 * msr.c - MSR write events through KVM's MSR filter.  A tool's CONTROL_MSR
 * makes writes of that MSR exit to userspace (KVM_EXIT_X86_WRMSR); the
 * event shows old and new value and CONTINUE writes the reply's new_val
 * (a tool vetoes by echoing the old one).
 *
 * The VM has one filter.  The frontend may want one of its own (QEMU
 * filters MSRs it emulates): the engine installs the union - its write
 * ranges first, with the frontend's decisions folded into their bitmaps,
 * then the frontend's ranges as given - and hands the frontend every exit
 * the frontend's filter asked for.
 */
#include "kvm_ioctl.h"
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "regs.h"
#include "util.h"

#define RANGE_BYTES (MSR_RANGE_LEN / 8)

/* The bit of msr in a vCPU's masks, or NULL outside the allowed ranges. */
static uint8_t *msr_byte(struct kvmi_engine_vcpu *v, uint32_t msr, uint8_t *bit)
{
	if (msr < MSR_RANGE_LEN) {
		*bit = (uint8_t)(1u << (msr & 7));
		return &v->msr_lo[msr / 8];
	}
	if (msr >= MSR_HIGH_BASE && msr - MSR_HIGH_BASE < MSR_RANGE_LEN) {
		*bit = (uint8_t)(1u << ((msr - MSR_HIGH_BASE) & 7));
		return &v->msr_hi[(msr - MSR_HIGH_BASE) / 8];
	}
	return NULL;
}

/* Does the frontend's filter let this access run in the kernel? */
static bool host_allows(const struct kvm_msr_filter *f, uint32_t msr, uint32_t type)
{
	if (!f)
		return true;
	for (unsigned i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++) {
		const struct kvm_msr_filter_range *r = &f->ranges[i];

		if (!r->nmsrs || !(r->flags & type) || msr < r->base || msr - r->base >= r->nmsrs)
			continue;
		return (r->bitmap[(msr - r->base) / 8] >> ((msr - r->base) % 8)) & 1;
	}
	return !(f->flags & KVM_MSR_FILTER_DEFAULT_DENY);
}

/* One of the engine's write ranges: allowed unless a vCPU controls the
 * MSR or the frontend's filter refuses it.  True if any bit is clear. */
static bool build_range(struct kvmi_engine *e, uint8_t *bits, uint32_t base, bool hi)
{
	bool any = false;

	memset(bits, 0xff, RANGE_BYTES);
	for (unsigned i = 0; i < atomic_load(&e->nr_vcpus); i++) {
		const struct kvmi_engine_vcpu *v = e->vcpus[i];
		const uint8_t *m = v ? (hi ? v->msr_hi : v->msr_lo) : NULL;

		for (unsigned k = 0; m && k < RANGE_BYTES; k++) {
			bits[k] &= (uint8_t)~m[k];
			any |= m[k] != 0;
		}
	}
	if (!any)
		return false;
	for (uint32_t k = 0; k < MSR_RANGE_LEN && e->host_filter; k++)
		if (!host_allows(e->host_filter, base + k, KVM_MSR_FILTER_WRITE))
			bits[k / 8] &= (uint8_t)~(1u << (k % 8));
	return true;
}

int eng_msr_merge(struct kvmi_engine *e, struct kvm_msr_filter *f)
{
	unsigned n = 0;

	memset(f, 0, sizeof(*f));
	f->flags = e->host_filter ? e->host_filter->flags : KVM_MSR_FILTER_DEFAULT_ALLOW;
	if (build_range(e, e->filter_bits, 0, false))
		f->ranges[n++] = (struct kvm_msr_filter_range){ KVM_MSR_FILTER_WRITE, MSR_RANGE_LEN, 0,
								e->filter_bits };
	if (build_range(e, e->filter_bits + RANGE_BYTES, MSR_HIGH_BASE, true))
		f->ranges[n++] = (struct kvm_msr_filter_range){ KVM_MSR_FILTER_WRITE, MSR_RANGE_LEN,
								MSR_HIGH_BASE, e->filter_bits + RANGE_BYTES };
	for (unsigned i = 0; e->host_filter && i < KVM_MSR_FILTER_MAX_RANGES; i++) {
		if (!e->host_filter->ranges[i].nmsrs)
			continue;
		if (n == KVM_MSR_FILTER_MAX_RANGES)
			return -ENOSPC;
		f->ranges[n++] = e->host_filter->ranges[i];
	}
	return 0;
}

/* Installs the merged filter.  msr_lock held. */
static int update_filter(struct kvmi_engine *e)
{
	struct kvm_msr_filter f;
	int err = eng_msr_merge(e, &f);

	if (err || e->cfg.vm_fd < 0)    /* an engine without KVM (unit tests) */
		return err;
	return kvm_ioctl(e->cfg.vm_fd, KVM_X86_SET_MSR_FILTER, &f) < 0 ? -errno : 0;
}

int eng_msr_init(struct kvmi_engine *e)
{
	kvmi_mutex_init(&e->msr_lock, KVMI_RANK_MSR, "MSR interception");
	e->filter_bits = calloc(2, RANGE_BYTES);
	return e->filter_bits ? 0 : -ENOMEM;
}

void eng_msr_destroy(struct kvmi_engine *e)
{
	kvmi_mutex_destroy(&e->msr_lock);
	free(e->filter_bits);
	free(e->host_filter);
}

int kvmi_engine_set_host_msr_filter(struct kvmi_engine *e, const struct kvm_msr_filter *f)
{
	struct kvm_msr_filter *old, *copy = NULL;
	int err;

	if (f) {
		/* KVM reads the bitmaps only during its call, so the frontend
		 * may free them: keep a copy to merge again later. */
		size_t total = 0;
		uint8_t *p;

		for (unsigned i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++)
			total += (f->ranges[i].nmsrs + 7) / 8;
		copy = calloc(1, sizeof(*copy) + total);
		if (!copy)
			return -ENOMEM;
		*copy = *f;
		p = (uint8_t *)(copy + 1);
		for (unsigned i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++) {
			size_t len = (f->ranges[i].nmsrs + 7) / 8;

			if (len)
				memcpy(p, f->ranges[i].bitmap, len);
			copy->ranges[i].bitmap = p;
			p += len;
		}
	}
	kvmi_mutex_lock(&e->msr_lock);
	old = e->host_filter;
	e->host_filter = copy;
	err = update_filter(e);
	if (err) {
		e->host_filter = old;
		old = copy;
	}
	kvmi_mutex_unlock(&e->msr_lock);
	free(old);
	return err;
}

int eng_control_msr(struct kvmi_engine_vcpu *v, uint32_t msr, bool enable)
{
	struct kvmi_engine *e = v->e;
	uint8_t bit, *p, old;
	int err;

	if (!e->have_msr_filter)
		return -KVM_EOPNOTSUPP;
	kvmi_mutex_lock(&e->msr_lock);
	p = msr_byte(v, msr, &bit);
	if (!p) {
		kvmi_mutex_unlock(&e->msr_lock);
		return -KVM_EINVAL;
	}
	old = *p;
	*p = enable ? (uint8_t)(*p | bit) : (uint8_t)(*p & ~bit);
	err = old == *p ? 0 : update_filter(e);
	if (err)
		*p = old;
	kvmi_mutex_unlock(&e->msr_lock);
	return err ? -KVM_EINVAL : 0;
}

/* Every MSR interception goes with the tool. */
void eng_msr_session_end(struct kvmi_engine *e)
{
	if (!e->have_msr_filter)
		return;
	kvmi_mutex_lock(&e->msr_lock);
	for (unsigned i = 0; i < atomic_load(&e->nr_vcpus); i++) {
		if (!e->vcpus[i])
			continue;
		memset(e->vcpus[i]->msr_lo, 0, sizeof(e->vcpus[i]->msr_lo));
		memset(e->vcpus[i]->msr_hi, 0, sizeof(e->vcpus[i]->msr_hi));
	}
	if (update_filter(e))
		pr_err("introspection: cannot clear the MSR filter");
	kvmi_mutex_unlock(&e->msr_lock);
}

/* The MSR event for a write of `value`; returns the value to write.  The
 * event header carries the usual MSRs: one KVM_GET_MSRS gives both it and
 * the old value (each ioctl counts on the event path). */
static uint64_t raise_msr(struct kvmi_engine_vcpu *v, uint32_t msr, uint64_t value, bool *crashed)
{
	struct kvmi_event_msr ev = { .msr = msr, .new_value = value };
	struct kvmi_event_msr_reply rpl = { .new_val = value };
	struct kvmi_event_arch arch;
	const struct kvmi_event_arch *have_arch = NULL;
	bool have_old = false;
	struct kvmi_raised r;

	if (eng_event_wanted(v, KVMI_EVENT_MSR) && kvmi_vcpu_fill_event_arch(v, &arch) == 0) {
		have_arch = &arch;
		have_old = kvmi_event_arch_msr(&arch, msr, &ev.old_value);
	}
	if (!have_old)
		have_old = kvmi_vcpu_get_msr(v, msr, &ev.old_value) == 0;
	/* Events come only for writes that change the value. */
	if (!have_old || ev.old_value == value)
		return value;
	r = eng_raise(v, KVMI_EVENT_MSR, have_arch, &ev, sizeof(ev), &rpl, sizeof(rpl));
	*crashed = r.outcome == KVMI_CRASH;
	return r.outcome == KVMI_NO_TOOL ? value : rpl.new_val;
}

/*
 * A filtered MSR access.  The engine's writes: KVM has not written the
 * MSR; after the event the engine writes it (msr.error = 1 makes the guest
 * take #GP, as the CPU would for a value the MSR refuses) - unless the
 * frontend's filter wants the access too, which then gets it with the
 * tool's value.
 */
enum kvmi_exit_owner eng_msr_exit(struct kvmi_engine_vcpu *v)
{
	struct kvmi_engine *e = v->e;
	struct kvm_run *run = v->run;
	bool write = v->run->exit_reason == KVM_EXIT_X86_WRMSR, ours, hosts, crashed = false;
	uint8_t bit, *p;

	if (run->msr.reason != KVM_MSR_EXIT_REASON_FILTER)
		return KVMI_EXIT_FRONTEND;
	kvmi_mutex_lock(&e->msr_lock);
	p = write ? msr_byte(v, run->msr.index, &bit) : NULL;
	ours = p && (*p & bit);
	hosts = e->host_filter &&
		!host_allows(e->host_filter, run->msr.index, write ? KVM_MSR_FILTER_WRITE : KVM_MSR_FILTER_READ);
	kvmi_mutex_unlock(&e->msr_lock);
	if (ours)
		run->msr.data = raise_msr(v, run->msr.index, run->msr.data, &crashed);
	if (crashed) {
		run->msr.error = 0;
		return KVMI_EXIT_ENGINE;
	}
	if (hosts)
		return KVMI_EXIT_FRONTEND;
	if (!write) {
		run->msr.error = 1; /* the engine never filters reads: as the CPU would */
		return KVMI_EXIT_ENGINE;
	}
	/* Ours, or the control went away after KVM exited: write it. */
	run->msr.error = kvmi_vcpu_set_msr(v, run->msr.index, run->msr.data) ? 1 : 0;
	return KVMI_EXIT_ENGINE;
}
