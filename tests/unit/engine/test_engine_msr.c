/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for MSR interception: the filter KVM gets when the engine and
 * the frontend both filter MSRs, and which of them an MSR exit goes to.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "tap.h"

#define MSR_SYSENTER_CS 0x174
#define MSR_QEMU_READ   0x35
#define MSR_HOST_WRITE  0x10

/* Is the access allowed in the kernel under filter f (KVM's rule: the
 * first range of the access's type that covers the MSR decides)? */
static bool allowed(const struct kvm_msr_filter *f, uint32_t msr, uint32_t type)
{
	for (unsigned i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++) {
		const struct kvm_msr_filter_range *r = &f->ranges[i];

		if (r->nmsrs && (r->flags & type) && msr >= r->base && msr - r->base < r->nmsrs)
			return (r->bitmap[(msr - r->base) / 8] >> ((msr - r->base) % 8)) & 1;
	}
	return !(f->flags & KVM_MSR_FILTER_DEFAULT_DENY);
}

static unsigned nranges(const struct kvm_msr_filter *f)
{
	unsigned n = 0;

	for (unsigned i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++)
		n += f->ranges[i].nmsrs != 0;
	return n;
}

/* A filter like QEMU's: reads of 0x35 exit, writes of 0x10 exit. */
static void host_filter(struct kvm_msr_filter *f, uint8_t *rd, uint8_t *wr)
{
	memset(f, 0, sizeof(*f));
	f->flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	*rd = 0;
	*wr = 0;
	f->ranges[0] = (struct kvm_msr_filter_range){ KVM_MSR_FILTER_READ, 1, MSR_QEMU_READ, rd };
	f->ranges[1] = (struct kvm_msr_filter_range){ KVM_MSR_FILTER_WRITE, 1, MSR_HOST_WRITE, wr };
}

static enum kvmi_exit_owner exit_for(struct kvmi_engine_vcpu *v, uint32_t reason, uint32_t msr)
{
	memset(v->run, 0, sizeof(*v->run));
	v->run->exit_reason = reason;
	v->run->msr.index = msr;
	v->run->msr.reason = KVM_MSR_EXIT_REASON_FILTER;
	return kvmi_engine_post_run(v, 0, 0);
}

static void test_merge(struct kvmi_engine *e)
{
	struct kvmi_engine_vcpu *v = e->vcpus[0];
	struct kvm_msr_filter f, hf;
	uint8_t rd, wr;

	ok(eng_control_msr(v, MSR_SYSENTER_CS, true) == 0, "CONTROL_MSR 0x174");
	kvmi_mutex_lock(&e->msr_lock);
	ok(eng_msr_merge(e, &f) == 0 && nranges(&f) == 1 && !allowed(&f, MSR_SYSENTER_CS, KVM_MSR_FILTER_WRITE) &&
	   allowed(&f, MSR_SYSENTER_CS, KVM_MSR_FILTER_READ) && allowed(&f, 0x175, KVM_MSR_FILTER_WRITE),
	   "engine alone: writes of 0x174 exit, its reads and its neighbours do not");
	kvmi_mutex_unlock(&e->msr_lock);
	host_filter(&hf, &rd, &wr);
	ok(kvmi_engine_set_host_msr_filter(e, &hf) == 0, "the frontend's filter is taken");
	kvmi_mutex_lock(&e->msr_lock);
	ok(eng_msr_merge(e, &f) == 0 && nranges(&f) == 3, "merged: the engine's range and both of the frontend's");
	ok(!allowed(&f, MSR_QEMU_READ, KVM_MSR_FILTER_READ) && allowed(&f, MSR_QEMU_READ, KVM_MSR_FILTER_WRITE),
	   "merged: the frontend's read of 0x35 still exits, its write does not");
	ok(!allowed(&f, MSR_HOST_WRITE, KVM_MSR_FILTER_WRITE),
	   "merged: the frontend's write of 0x10 still exits although the engine's range covers it first");
	ok(!allowed(&f, MSR_SYSENTER_CS, KVM_MSR_FILTER_WRITE) && allowed(&f, 0x11, KVM_MSR_FILTER_WRITE),
	   "merged: the engine's write of 0x174 exits, unrelated writes do not");
	kvmi_mutex_unlock(&e->msr_lock);
	hf.flags = KVM_MSR_FILTER_DEFAULT_DENY;
	kvmi_engine_set_host_msr_filter(e, &hf);
	kvmi_mutex_lock(&e->msr_lock);
	ok(eng_msr_merge(e, &f) == 0 && (f.flags & KVM_MSR_FILTER_DEFAULT_DENY) &&
	   !allowed(&f, 0x11, KVM_MSR_FILTER_WRITE) && !allowed(&f, 0x80000000u, KVM_MSR_FILTER_READ),
	   "merged: the frontend's default-deny holds, inside the engine's range too");
	kvmi_mutex_unlock(&e->msr_lock);
}

static void test_too_many(struct kvmi_engine *e)
{
	static uint8_t bits[KVM_MSR_FILTER_MAX_RANGES];
	struct kvm_msr_filter hf;

	memset(&hf, 0, sizeof(hf));
	for (unsigned i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++)
		hf.ranges[i] = (struct kvm_msr_filter_range){ KVM_MSR_FILTER_READ, 1, 0x100 + i, &bits[i] };
	ok(kvmi_engine_set_host_msr_filter(e, &hf) == -ENOSPC,
	   "16 ranges of the frontend plus the engine's: -ENOSPC");
	ok(kvmi_engine_set_host_msr_filter(e, NULL) == 0 && e->host_filter == NULL,
	   "the frontend drops its filter");
}

static void test_exits(struct kvmi_engine *e)
{
	struct kvmi_engine_vcpu *v = e->vcpus[0];
	struct kvm_msr_filter hf;
	uint8_t rd, wr;

	host_filter(&hf, &rd, &wr);
	kvmi_engine_set_host_msr_filter(e, &hf);
	ok(exit_for(v, KVM_EXIT_X86_RDMSR, MSR_QEMU_READ) == KVMI_EXIT_FRONTEND,
	   "exit: the frontend's read goes to the frontend");
	ok(exit_for(v, KVM_EXIT_X86_WRMSR, MSR_HOST_WRITE) == KVMI_EXIT_FRONTEND,
	   "exit: the frontend's write goes to the frontend");
	ok(exit_for(v, KVM_EXIT_X86_WRMSR, MSR_SYSENTER_CS) == KVMI_EXIT_ENGINE,
	   "exit: the engine's write is the engine's");
	ok(exit_for(v, KVM_EXIT_X86_WRMSR, 0x176) == KVMI_EXIT_ENGINE && v->run->msr.error == 1,
	   "exit: a write nobody filters (control gone meanwhile) is completed by the engine");
	v->run->msr.reason = 0;
	memset(v->run, 0, sizeof(*v->run));
	v->run->exit_reason = KVM_EXIT_X86_WRMSR;
	v->run->msr.reason = KVM_MSR_EXIT_REASON_UNKNOWN;
	ok(kvmi_engine_post_run(v, 0, 0) == KVMI_EXIT_FRONTEND, "exit: other exit reasons are the frontend's");
	eng_msr_session_end(e);
	ok(exit_for(v, KVM_EXIT_X86_WRMSR, MSR_HOST_WRITE) == KVMI_EXIT_FRONTEND,
	   "the tool gone: the frontend's filter stays");
}

int main(void)
{
	static struct fake_host h;
	struct kvmi_engine *e;
	void *mem;

	e = new_engine(&h, 16 << 20, &mem);
	ok(e != NULL, "an engine without KVM");
	if (!e)
		return tap_done();
	e->have_msr_filter = true;
	test_merge(e);
	test_too_many(e);
	test_exits(e);
	free_engine(e, mem);
	return tap_done();
}
