/* SPDX-License-Identifier: MIT */
/*
 * commands.c - the protocol server's backend (struct kvmi_backend_ops):
 * what each command does to the VM.  VM-scoped ops run on the
 * introspection thread; vCPU-scoped ones arrive as jobs on the vCPU's own
 * thread (the server packs them, be_queue_vcpu_job hands them over).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpf_events.h"
#include "regs.h"
#include "util.h"

#define PAUSE_WAIT_TIMEOUT_MS 2000

static struct kvmi_engine *E(struct kvmi_backend *b)
{
	return b->e;
}

static struct kvmi_engine_vcpu *V(struct kvmi_backend *b, unsigned idx)
{
	return eng_vcpu(b->e, idx);
}

/* ---- jobs, waits, capabilities ----------------------------------------- */

struct job_wrap {
	struct vcpu_job job;
	struct kvmi_vcpu_job *kj;
};

static void run_wrapped(struct kvmi_engine_vcpu *v, void *ctx)
{
	struct job_wrap *w = ctx;

	(void)v;
	kvmi_vcpu_job_run(w->kj);
	free(w);
}

static int be_queue_vcpu_job(struct kvmi_backend *b, unsigned idx, struct kvmi_vcpu_job *kj)
{
	struct kvmi_engine_vcpu *v = V(b, idx);
	struct job_wrap *w;

	if (!v)
		return -KVM_EAGAIN;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -KVM_ENOMEM;
	w->kj = kj;
	w->job.fn = run_wrapped;
	w->job.ctx = w;
	if (eng_queue_job(v, &w->job)) {
		free(w);
		return -KVM_EAGAIN;
	}
	return 0;
}

static int be_wait_reply(struct kvmi_backend *b, unsigned idx, bool (*done)(void *), void *ctx)
{
	struct kvmi_engine_vcpu *v = V(b, idx);

	if (!v)
		return -ESHUTDOWN;
	if (eng_wait(v, done, ctx))
		return 0;
	return v->yielded ? -EINTR : -ESHUTDOWN;
}

static void be_wake_vcpu(struct kvmi_backend *b, unsigned idx)
{
	struct kvmi_engine_vcpu *v = V(b, idx);

	if (v)
		eng_wake(v);
}

static int be_get_event_arch(struct kvmi_backend *b, unsigned idx, struct kvmi_event_arch *arch)
{
	return kvmi_vcpu_fill_event_arch(V(b, idx), arch);
}

static unsigned be_vcpu_count(struct kvmi_backend *b)
{
	return atomic_load(&E(b)->nr_vcpus);
}

static int be_check_command(struct kvmi_backend *b, unsigned id)
{
	struct kvmi_engine *e = E(b);

	if (id == KVMI_CONTROL_MSR && !e->have_msr_filter)
		return -KVM_EOPNOTSUPP;
	if (id == KVMI_VCPU_CONTROL_SINGLESTEP && !e->have_singlestep)
		return -KVM_EOPNOTSUPP;
	if (id == KVMI_CONTROL_CR)
		return bpf_events_check_control_cr(e->bpf);
	return 0;
}

static int be_check_event(struct kvmi_backend *b, unsigned id)
{
	struct kvmi_engine *e = E(b);

	switch (id) {
	case KVMI_EVENT_MSR:
		return e->have_msr_filter ? 0 : -KVM_EOPNOTSUPP;
	case KVMI_EVENT_SINGLESTEP:
		return e->have_singlestep ? 0 : -KVM_EOPNOTSUPP;
	case KVMI_EVENT_CR:
	case KVMI_EVENT_XSETBV:
	case KVMI_EVENT_HYPERCALL:
		return bpf_events_check_event(e->bpf, id);
	case KVMI_EVENT_PAUSE_VCPU:
	case KVMI_EVENT_TRAP:
	case KVMI_EVENT_UNHOOK:
	case KVMI_EVENT_PF:
	case KVMI_EVENT_CREATE_VCPU:
		return 0;
	case KVMI_EVENT_BREAKPOINT:
		return e->bp_path != KVMI_INT3_NONE ? 0 : -KVM_EOPNOTSUPP;
	case KVMI_X_EVENT_PF_PAGE_WALK:
		return e->ptwalk_ok ? 0 : -KVM_EOPNOTSUPP;
	default:
		/* Not deliverable on a stock KVM: see docs/limitations.md. */
		return -KVM_EOPNOTSUPP;
	}
}

static void be_get_features(struct kvmi_backend *b, struct kvmi_features *f)
{
	memset(f, 0, sizeof(*f));
	f->singlestep = E(b)->have_singlestep;
}

/* ---- VM-scoped commands (introspection thread) ----------------------- */

/* CREATE_VCPU releases vCPUs held by --introspector-wait (the server has
 * already set the enable bit when this runs). */
static int be_control_vm_events(struct kvmi_backend *b, unsigned id, bool enable)
{
	if (id == KVMI_EVENT_CREATE_VCPU && enable)
		eng_wake_all(E(b));
	return 0;
}

/* PAUSE_VCPU with wait: a job that only says the vCPU thread got out of
 * guest mode (jobs run only outside KVM_RUN).  Armed by be_pause_vcpu on
 * every vCPU of a pipelined pause-all first, waited for by be_pause_wait
 * (e->pause_acks: introspection thread only). */
struct pause_ack {
	struct vcpu_job job;
	struct pause_ack *next;
	unsigned idx;
	struct kvmi_mutex lock;       /* a leaf: nothing is taken under it */
	pthread_cond_t cond;
	bool ran, abandoned;
};

static void pause_ack_free(struct pause_ack *a)
{
	kvmi_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cond);
	free(a);
}

static void pause_ack_run(struct kvmi_engine_vcpu *v, void *ctx)
{
	struct pause_ack *a = ctx;
	bool abandoned;

	(void)v;
	kvmi_mutex_lock(&a->lock);
	a->ran = true;
	abandoned = a->abandoned;
	pthread_cond_broadcast(&a->cond);
	kvmi_mutex_unlock(&a->lock);
	if (abandoned)
		pause_ack_free(a);
}

/* True when the job ran by ts; else the vCPU frees it when it gets there. */
static bool pause_ack_wait(struct pause_ack *a, const struct timespec *ts)
{
	bool ran;

	kvmi_mutex_lock(&a->lock);
	while (!a->ran && kvmi_cond_timedwait(&a->cond, &a->lock, ts) != ETIMEDOUT)
		;
	ran = a->ran;
	if (!ran)
		a->abandoned = true;
	kvmi_mutex_unlock(&a->lock);
	if (ran)
		pause_ack_free(a);
	return ran;
}

static int be_pause_vcpu(struct kvmi_backend *b, unsigned idx, bool wait)
{
	struct kvmi_engine_vcpu *v = V(b, idx);
	struct pause_ack *a;

	if (!v)
		return -KVM_EINVAL;
	if (!wait) {
		eng_kick(v);
		return 0;
	}
	/* The pause request was counted before: the job runs first. */
	a = calloc(1, sizeof(*a));
	if (!a)
		return -KVM_ENOMEM;
	kvmi_mutex_init(&a->lock, KVMI_RANK_LEAF, "pause acknowledgement");
	pthread_cond_init(&a->cond, NULL);
	a->job.fn = pause_ack_run;
	a->job.ctx = a;
	a->idx = idx;
	if (eng_queue_job(v, &a->job)) {
		pause_ack_free(a);
		return -KVM_EAGAIN;
	}
	a->next = E(b)->pause_acks;
	E(b)->pause_acks = a;
	return 0;
}

/* Every armed acknowledgement, within one time-out for all of them. */
static void be_pause_wait(struct kvmi_backend *b)
{
	struct pause_ack *a = E(b)->pause_acks;
	struct timespec ts;

	E(b)->pause_acks = NULL;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += PAUSE_WAIT_TIMEOUT_MS / 1000;
	while (a) {
		struct pause_ack *next = a->next;
		unsigned idx = a->idx;

		if (!pause_ack_wait(a, &ts))
			pr_warn("introspection: vCPU %u did not leave guest mode within %d ms", idx,
				PAUSE_WAIT_TIMEOUT_MS);
		a = next;
	}
}

static int be_read_physical(struct kvmi_backend *b, uint64_t gpa, void *buf, size_t size)
{
	return eng_read_phys(E(b), gpa, buf, size);
}

static int be_write_physical(struct kvmi_backend *b, uint64_t gpa, const void *buf, size_t size)
{
	return eng_write_phys(E(b), gpa, buf, size);
}

static int be_set_page_access(struct kvmi_backend *b, uint16_t view, const struct kvmi_page_access_entry *e,
			      unsigned count)
{
	struct pt_entry *pe;
	int err;

	if (view != 0)
		return -KVM_EOPNOTSUPP; /* no EPT views on stock KVM */
	pe = calloc(count ? count : 1, sizeof(*pe));
	if (!pe)
		return -KVM_ENOMEM;
	for (unsigned i = 0; i < count; i++)
		pe[i] = (struct pt_entry){ e[i].gpa >> 12, e[i].access };
	err = eng_set_page_access(E(b), pe, count);
	free(pe);
	if (err) {
		if (err == -EOPNOTSUPP)
			return -KVM_EOPNOTSUPP; /* page tables under nested paging (ptwalk.c) */
		pr_err("introspection: SET_PAGE_ACCESS: %s", strerror(-err));
		return err == -ENOMEM ? -KVM_ENOMEM : -KVM_EINVAL;
	}
	return 0;
}

static int be_query_physical(struct kvmi_backend *b, uint64_t gfn, struct kvmi_query_physical_reply *r)
{
	return eng_query_physical(E(b), gfn, r);
}

static int be_get_map_token(struct kvmi_backend *b, struct kvmi_map_mem_token *token)
{
	return kvmi_map_tokens_issue(&E(b)->tokens, token);
}

static int be_map_memory(struct kvmi_backend *b, const struct kvmi_map_mem_token *token, uint64_t gpa,
			 uint64_t len, bool readonly, int *fd, uint64_t *offset)
{
	return eng_map_memory(E(b), token, gpa, len, readonly, fd, offset);
}

static int be_get_max_gfn(struct kvmi_backend *b, uint64_t *gfn)
{
	*gfn = eng_max_gfn(E(b));
	return 0;
}

/* ---- vCPU-scoped commands (vCPU thread) --------------------------------- */

static int be_control_events(struct kvmi_backend *b, unsigned idx, unsigned id, bool enable)
{
	if (id == KVMI_EVENT_BREAKPOINT)
		return eng_control_breakpoints(V(b, idx), enable);
	return bpf_events_control_event(E(b)->bpf, V(b, idx), id, enable);
}

static int be_control_cr(struct kvmi_backend *b, unsigned idx, unsigned cr, bool enable)
{
	return bpf_events_control_cr(E(b)->bpf, V(b, idx), cr, enable);
}

static int be_control_msr(struct kvmi_backend *b, unsigned idx, uint32_t msr, bool enable)
{
	return eng_control_msr(V(b, idx), msr, enable);
}

static int be_control_singlestep(struct kvmi_backend *b, unsigned idx, bool enable)
{
	return eng_control_singlestep(V(b, idx), enable);
}

static int be_get_tsc_speed(struct kvmi_backend *b, unsigned idx, uint64_t *hz)
{
	return kvmi_vcpu_get_tsc_speed(V(b, idx), hz);
}

static int be_get_registers(struct kvmi_backend *b, unsigned idx, uint32_t *mode, struct kvmi_x86_regs *regs,
			    struct kvmi_x86_sregs *sregs, struct kvmi_x86_msr_entry *msrs, unsigned nmsrs)
{
	return kvmi_vcpu_get_registers(V(b, idx), mode, regs, sregs, msrs, nmsrs);
}

static int be_set_registers(struct kvmi_backend *b, unsigned idx, const struct kvmi_x86_regs *regs)
{
	return kvmi_vcpu_set_regs(V(b, idx), regs);
}

static int be_get_cpuid(struct kvmi_backend *b, unsigned idx, uint32_t function, uint32_t index,
			struct kvmi_get_cpuid_reply *r)
{
	return kvmi_vcpu_get_cpuid(V(b, idx), function, index, r);
}

static int be_get_xsave(struct kvmi_backend *b, unsigned idx, void *buf, size_t size)
{
	if (size < KVMI_XSAVE_SIZE)
		return -KVM_EINVAL;
	return kvmi_vcpu_get_xsave(V(b, idx), buf);
}

static int be_set_xsave(struct kvmi_backend *b, unsigned idx, const void *buf, size_t size)
{
	return kvmi_vcpu_set_xsave(V(b, idx), buf, size);
}

static int be_get_xcr(struct kvmi_backend *b, unsigned idx, unsigned xcr, uint64_t *value)
{
	return kvmi_vcpu_get_xcr(V(b, idx), (uint8_t)xcr, value);
}

static int be_inject_exception(struct kvmi_backend *b, unsigned idx, uint8_t vector, uint32_t error_code,
			       uint64_t address)
{
	return eng_inject_exception(V(b, idx), vector, error_code, address);
}

static int be_get_mtrr_type(struct kvmi_backend *b, unsigned idx, uint64_t gpa, uint8_t *type)
{
	return kvmi_vcpu_get_mtrr_type(V(b, idx), gpa, type);
}

static int be_translate_gva(struct kvmi_backend *b, unsigned idx, uint64_t gva, uint64_t *gpa)
{
	return kvmi_vcpu_translate_gva(V(b, idx), gva, gpa);
}

const struct kvmi_backend_ops eng_backend_ops = {
	.vcpu_count = be_vcpu_count,
	.check_command = be_check_command,
	.check_event = be_check_event,
	.queue_vcpu_job = be_queue_vcpu_job,
	.wait_reply = be_wait_reply,
	.wake_vcpu = be_wake_vcpu,
	.get_event_arch = be_get_event_arch,
	.session_start = eng_session_start,
	.control_vm_events = be_control_vm_events,
	.session_end = eng_session_end,
	.pause_vcpu = be_pause_vcpu,
	.pause_wait = be_pause_wait,
	.read_physical = be_read_physical,
	.write_physical = be_write_physical,
	.get_max_gfn = be_get_max_gfn,
	.set_page_access = be_set_page_access,
	.control_msr = be_control_msr,
	.control_cr = be_control_cr,
	.query_physical = be_query_physical,
	.get_map_token = be_get_map_token,
	.map_memory = be_map_memory,
	.control_singlestep = be_control_singlestep,
	.control_events = be_control_events,
	.get_features = be_get_features,
	.get_tsc_speed = be_get_tsc_speed,
	.get_registers = be_get_registers,
	.set_registers = be_set_registers,
	.get_cpuid = be_get_cpuid,
	.get_xsave = be_get_xsave,
	.set_xsave = be_set_xsave,
	.get_xcr = be_get_xcr,
	.inject_exception = be_inject_exception,
	.get_mtrr_type = be_get_mtrr_type,
	.translate_gva = be_translate_gva,
};
