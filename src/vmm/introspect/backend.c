/* SPDX-License-Identifier: MIT */
/*
 * The KVMI server's backend on top of struct vm: command ops, the vCPU job
 * queue, event waits, pauses, exception injection + TRAP, and the
 * connection thread.  VM-scoped ops run on the introspection thread;
 * vCPU-scoped ones are queued to the vCPU's own thread.
 */
#include "introspect.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include "../../introspection/introspection.h"
#include "../pagetrack.h"
#include "../util.h"
#include "../vcpu.h"
#include "../vm.h"
#include "bpf_events.h"
#include "mapping.h"
#include "probe.h"
#include "vcpu_state.h"

#define DEFAULT_UNHOOK_TIMEOUT_MS 5000
#define RFLAGS_TF                 (1ull << 8)
#define PAUSE_WAIT_TIMEOUT_MS     2000

/* Per-vCPU introspection state, touched by the vCPU thread only unless
 * noted. */
#define MSR_RANGE_LEN 0x2000u   /* CONTROL_MSR: 0..0x1fff and 0xc0000000..0xc0001fff */
#define MSR_HIGH_BASE 0xc0000000u

struct intro_vcpu {
	/* MSRs whose writes this vCPU reports (CONTROL_MSR), by range. */
	uint8_t msr_lo[MSR_RANGE_LEN / 8], msr_hi[MSR_RANGE_LEN / 8];
	bool trap_pending;          /* an injected exception awaits its TRAP event */
	bool singlestep;            /* CONTROL_SINGLESTEP on (vCPU thread only) */
	atomic_bool singlestep_off; /* the tool left: turn it off before the next entry */
	bool rep_complete;          /* the tool asked for no more PF events ... */
	uint64_t rep_rip;           /* ... for the instruction at this RIP */
	bool created;               /* CREATE_VCPU handled before the first entry */
	bool breakpoints;           /* BREAKPOINT enabled: int3 exits to us */
	/* An instruction fetched from an execute-protected page runs as one
	 * single step with the page opened, the other vCPUs held out. */
	bool exec_step;
	uint64_t exec_gfn;
	uint8_t exec_orig, exec_opened;
	bool exec_tf;               /* the guest's own RFLAGS.TF before the step */
	uint64_t failed_rip;        /* an emulation failure not ours, retried once */
	struct kvm_segment exec_cs, exec_ss; /* ... and its CS/SS (see undo_db_delivery) */
	/* The event header, read ahead by a hook that needed part of it (the
	 * MSR hook: the old value); the next event takes it. */
	bool arch_cached;
	struct kvmi_event_arch arch_cache;
};

struct kvmi_backend {
	struct vm *vm;
	struct introspect_config cfg;
	struct kvmi_policy policy;
	struct kvmi_server *srv;
	struct kvmi_addr addr;
	uint8_t *key;
	size_t key_len;
	pthread_t thread;
	bool thread_started;
	struct intro_vcpu *vcpus;

	/* Page restrictions set by the tool (view 0) and the memslot layout
	 * that enforces them; written by the introspection thread, read by
	 * vCPU threads on MMIO exits. */
	pthread_rwlock_t pt_lock;
	struct pagetrack pt;

	bool have_msr_filter;       /* KVM_CAP_X86_USER_SPACE_MSR + MSR filter */
	bool have_singlestep;       /* KVM_CAP_SET_GUEST_DEBUG */
	pthread_mutex_t msr_lock;   /* the per-vCPU masks and the VM's filter */
	struct bpf_events *bpf;     /* CR/XSETBV/HYPERCALL through BPF; NULL: none */

	bool have_blockirq;         /* KVM_GUESTDBG_BLOCKIRQ: no interrupt during a step */
	bool exit_on_emulation_failure; /* KVM_CAP_EXIT_ON_EMULATION_FAILURE on */
	enum kvmi_int3_path bp_path; /* how a guest int3 reaches us (probe.c) */
	atomic_int stepper;         /* vCPU in an execute step, or -1 */
	/* The page that step opened and its real rights (under pt_lock): the
	 * other vCPUs must keep seeing the restriction. */
	int step_vcpu;
	uint64_t step_gfn;
	uint8_t step_orig;

	atomic_bool in_session;     /* between session_start and session_end */
	atomic_uint sessions;       /* sessions started so far */

	struct kvmi_map_tokens tokens;  /* GET_MAP_TOKEN (introspection thread) */
};

/* The rights of gfn as vCPU `self` must see them (pt_lock held): a page
 * another vCPU's execute step opened keeps its restriction for everyone
 * else. */
static uint8_t rights_for(const struct kvmi_backend *b, uint64_t gfn, unsigned self)
{
	if (b->step_vcpu >= 0 && (unsigned)b->step_vcpu != self && gfn == b->step_gfn)
		return b->step_orig;
	return pagetrack_get(&b->pt, gfn);
}

/* The bit of msr in a vCPU's masks, or NULL outside the allowed ranges. */
static uint8_t *msr_byte(struct intro_vcpu *iv, uint32_t msr, uint8_t *bit)
{
	if (msr < MSR_RANGE_LEN) {
		*bit = (uint8_t)(1u << (msr & 7));
		return &iv->msr_lo[msr / 8];
	}
	if (msr >= MSR_HIGH_BASE && msr - MSR_HIGH_BASE < MSR_RANGE_LEN) {
		*bit = (uint8_t)(1u << ((msr - MSR_HIGH_BASE) & 7));
		return &iv->msr_hi[(msr - MSR_HIGH_BASE) / 8];
	}
	return NULL;
}

static bool msr_controlled(struct intro_vcpu *iv, uint32_t msr)
{
	uint8_t bit, *p = msr_byte(iv, msr, &bit);

	return p && (*p & bit);
}

/*
 * The VM's MSR filter: writes of an MSR any vCPU controls exit to us, all
 * other accesses run without exits.  Caller holds msr_lock.
 */
static int update_msr_filter(struct kvmi_backend *b)
{
	static uint8_t lo[MSR_RANGE_LEN / 8], hi[MSR_RANGE_LEN / 8];
	struct kvm_msr_filter f;
	bool any = false;

	memset(lo, 0xff, sizeof(lo));
	memset(hi, 0xff, sizeof(hi));
	for (unsigned v = 0; v < b->vm->nr_vcpus; v++) {
		for (unsigned i = 0; i < sizeof(lo); i++) {
			lo[i] &= (uint8_t)~b->vcpus[v].msr_lo[i];
			hi[i] &= (uint8_t)~b->vcpus[v].msr_hi[i];
			any |= b->vcpus[v].msr_lo[i] || b->vcpus[v].msr_hi[i];
		}
	}
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	if (any) {
		f.ranges[0] = (struct kvm_msr_filter_range){ KVM_MSR_FILTER_WRITE, MSR_RANGE_LEN, 0, lo };
		f.ranges[1] = (struct kvm_msr_filter_range){ KVM_MSR_FILTER_WRITE, MSR_RANGE_LEN, MSR_HIGH_BASE, hi };
	}
	return ioctl(b->vm->vm_fd, KVM_X86_SET_MSR_FILTER, &f) < 0 ? -errno : 0;
}

static struct vcpu *vcpu_of(struct kvmi_backend *b, unsigned idx)
{
	return idx < b->vm->nr_vcpus ? &b->vm->vcpus[idx] : NULL;
}

/* ---- jobs, waits, events ------------------------------------------ */

struct job_wrap {
	struct vcpu_job job;
	struct kvmi_vcpu_job *kj;
};

static void run_wrapped(struct vcpu *vcpu, void *ctx)
{
	struct job_wrap *w = ctx;

	(void)vcpu;
	kvmi_vcpu_job_run(w->kj);
	free(w);
}

static int be_queue_vcpu_job(struct kvmi_backend *b, unsigned idx, struct kvmi_vcpu_job *kj)
{
	struct vcpu *vcpu = vcpu_of(b, idx);
	struct job_wrap *w;

	if (!vcpu || !vcpu_accepts_jobs(vcpu))
		return -KVM_EAGAIN;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -KVM_ENOMEM;
	w->kj = kj;
	w->job.fn = run_wrapped;
	w->job.ctx = w;
	if (vcpu_queue_job(vcpu, &w->job)) {
		free(w);
		return -KVM_EAGAIN;
	}
	return 0;
}

static int be_wait_reply(struct kvmi_backend *b, unsigned idx, bool (*done)(void *), void *ctx)
{
	struct vcpu *vcpu = vcpu_of(b, idx);

	return vcpu && vcpu_wait_event(vcpu, done, ctx) ? 0 : -ESHUTDOWN;
}

static void be_wake_vcpu(struct kvmi_backend *b, unsigned idx)
{
	struct vcpu *vcpu = vcpu_of(b, idx);

	if (vcpu)
		vcpu_wake(vcpu);
}

static int be_get_event_arch(struct kvmi_backend *b, unsigned idx, struct kvmi_event_arch *arch)
{
	struct intro_vcpu *iv = &b->vcpus[idx];

	if (iv->arch_cached) {
		iv->arch_cached = false;
		*arch = iv->arch_cache;
		return 0;
	}
	return kvmi_vcpu_fill_event_arch(vcpu_of(b, idx), arch);
}

static unsigned be_vcpu_count(struct kvmi_backend *b)
{
	return b->vm->nr_vcpus;
}

static int be_check_command(struct kvmi_backend *b, unsigned id)
{
	if (id == KVMI_CONTROL_MSR && !b->have_msr_filter)
		return -KVM_EOPNOTSUPP;
	if (id == KVMI_VCPU_CONTROL_SINGLESTEP && !b->have_singlestep)
		return -KVM_EOPNOTSUPP;
	if (id == KVMI_CONTROL_CR)
		return bpf_events_check_control_cr(b->bpf);
	return 0;
}

static void be_get_features(struct kvmi_backend *b, struct kvmi_features *f)
{
	memset(f, 0, sizeof(*f));
	f->singlestep = b->have_singlestep;
}

/* The vCPU's KVM_SET_GUEST_DEBUG state from what the tool and the
 * execute path want.  vCPU thread. */
static int update_guest_debug(struct kvmi_backend *b, struct vcpu *vcpu)
{
	struct intro_vcpu *iv = &b->vcpus[vcpu->id];
	struct kvm_guest_debug dbg;

	memset(&dbg, 0, sizeof(dbg));
	if (iv->singlestep || iv->exec_step)
		dbg.control |= KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
	if (iv->exec_step && b->have_blockirq)
		dbg.control |= KVM_GUESTDBG_BLOCKIRQ;
	if (iv->breakpoints && b->bp_path == KVMI_INT3_DEBUG_EXIT)
		dbg.control |= KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP;
	return ioctl(vcpu->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0 ? -errno : 0;
}

static int be_control_singlestep(struct kvmi_backend *b, unsigned idx, bool enable)
{
	struct intro_vcpu *iv = &b->vcpus[idx];
	bool was = iv->singlestep;

	if (!b->have_singlestep)
		return -KVM_EOPNOTSUPP;
	iv->singlestep = enable;
	if (update_guest_debug(b, vcpu_of(b, idx))) {
		iv->singlestep = was;
		return -KVM_EINVAL;
	}
	return 0;
}

/* CONTROL_EVENTS: BREAKPOINT needs the guest-debug state of the vCPU,
 * CR/XSETBV/HYPERCALL the BPF hooks. */
static int be_control_events(struct kvmi_backend *b, unsigned idx, unsigned id, bool enable)
{
	struct intro_vcpu *iv = &b->vcpus[idx];

	if (id != KVMI_EVENT_BREAKPOINT)
		return bpf_events_control_event(b->bpf, vcpu_of(b, idx), id, enable);
	iv->breakpoints = enable;
	if (update_guest_debug(b, vcpu_of(b, idx))) {
		iv->breakpoints = !enable;
		return -KVM_EOPNOTSUPP;
	}
	return 0;
}

static int be_check_event(struct kvmi_backend *b, unsigned id)
{
	switch (id) {
	case KVMI_EVENT_MSR:
		return b->have_msr_filter ? 0 : -KVM_EOPNOTSUPP;
	case KVMI_EVENT_SINGLESTEP:
		return b->have_singlestep ? 0 : -KVM_EOPNOTSUPP;
	case KVMI_EVENT_CR:
	case KVMI_EVENT_XSETBV:
	case KVMI_EVENT_HYPERCALL:
		return bpf_events_check_event(b->bpf, id);
	case KVMI_EVENT_PAUSE_VCPU:
	case KVMI_EVENT_TRAP:
	case KVMI_EVENT_UNHOOK:
	case KVMI_EVENT_PF:
	case KVMI_EVENT_CREATE_VCPU:
		return 0;
	case KVMI_EVENT_BREAKPOINT:
		return b->bp_path != KVMI_INT3_NONE ? 0 : -KVM_EOPNOTSUPP;
	default:
		/* Not deliverable by this VMM on this host (yet): see
		 * docs/limitations.md. */
		return -KVM_EOPNOTSUPP;
	}
}

/* CREATE_VCPU releases vCPUs held by --introspector-wait (the server has
 * already set the enable bit when this runs). */
static int be_control_vm_events(struct kvmi_backend *b, unsigned id, bool enable)
{
	if (id == KVMI_EVENT_CREATE_VCPU && enable)
		for (unsigned i = 0; i < b->vm->nr_vcpus; i++)
			vcpu_wake(&b->vm->vcpus[i]);
	return 0;
}

static void be_session_start(struct kvmi_backend *b)
{
	pr_debug("introspection: session with the tool at %s", b->cfg.address);
	atomic_fetch_add(&b->sessions, 1);
	atomic_store(&b->in_session, true);
}

static void be_session_end(struct kvmi_backend *b)
{
	/* Waiting events were released as CONTINUE by the server and pauses
	 * are events, so vCPUs are already on their way back into the guest.
	 * Nothing else is tool-made yet (page restrictions, MSR filters and
	 * breakpoints come with the events issue and are undone here). */
	pr_debug("introspection: session over; the guest keeps running");
	atomic_store(&b->in_session, false);
	/* Unredeemed map tokens die with the session (mappings the tool made
	 * stay: they are its own, see docs/limitations.md). */
	kvmi_map_tokens_clear(&b->tokens);
	/* Every page restriction goes with the tool. */
	vm_hold_vcpus(b->vm);
	pthread_rwlock_wrlock(&b->pt_lock);
	if (b->pt.n) {
		pagetrack_clear(&b->pt);
		if (guest_memory_apply_tracking(&b->vm->mem, &b->pt, NULL, NULL))
			pr_err("introspection: cannot restore the guest's memory slots");
	}
	pthread_rwlock_unlock(&b->pt_lock);
	vm_release_vcpus(b->vm);
	/* ...and so does every MSR interception. */
	if (b->have_msr_filter) {
		pthread_mutex_lock(&b->msr_lock);
		for (unsigned i = 0; i < b->vm->nr_vcpus; i++) {
			memset(b->vcpus[i].msr_lo, 0, sizeof(b->vcpus[i].msr_lo));
			memset(b->vcpus[i].msr_hi, 0, sizeof(b->vcpus[i].msr_hi));
		}
		if (update_msr_filter(b))
			pr_err("introspection: cannot clear the MSR filter");
		pthread_mutex_unlock(&b->msr_lock);
	}
	/* ...and every CR/XSETBV/HYPERCALL hook. */
	bpf_events_session_end(b->bpf);
	for (unsigned i = 0; i < b->vm->nr_vcpus; i++) {
		atomic_store(&b->vcpus[i].singlestep_off, true);
		vcpu_kick(&b->vm->vcpus[i]);
		vcpu_wake(&b->vm->vcpus[i]);
	}
}

/* ---- VM-scoped commands (introspection thread) ------------------------ */

struct pause_ack {
	struct vcpu_job job;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ran, abandoned;
};

static void pause_ack_run(struct vcpu *vcpu, void *ctx)
{
	struct pause_ack *a = ctx;
	bool abandoned;

	(void)vcpu;
	pthread_mutex_lock(&a->lock);
	a->ran = true;
	abandoned = a->abandoned;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (abandoned) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->cond);
		free(a);
	}
}

static int be_pause_vcpu(struct kvmi_backend *b, unsigned idx, bool wait)
{
	struct vcpu *vcpu = vcpu_of(b, idx);
	struct pause_ack *a;
	struct timespec ts;
	bool ran, free_it;

	if (!vcpu)
		return -KVM_EINVAL;
	if (!wait) {
		vcpu_kick(vcpu);
		return 0;
	}
	/* "Out of guest mode" = the vCPU thread ran a job: jobs run only
	 * outside KVM_RUN, and the pause request was counted before. */
	a = calloc(1, sizeof(*a));
	if (!a)
		return -KVM_ENOMEM;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	a->job.fn = pause_ack_run;
	a->job.ctx = a;
	if (!vcpu_accepts_jobs(vcpu) || vcpu_queue_job(vcpu, &a->job)) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->cond);
		free(a);
		return -KVM_EAGAIN;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += PAUSE_WAIT_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&a->lock);
	while (!a->ran) {
		if (pthread_cond_timedwait(&a->cond, &a->lock, &ts) == ETIMEDOUT)
			break;
	}
	ran = a->ran;
	free_it = ran;
	if (!ran)
		a->abandoned = true; /* the vCPU frees it when it gets there */
	pthread_mutex_unlock(&a->lock);
	if (free_it) {
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->cond);
		free(a);
	}
	if (!ran)
		pr_warn("introspection: vCPU %u did not leave guest mode within %d ms", idx,
			PAUSE_WAIT_TIMEOUT_MS);
	return 0;
}

static int be_read_physical(struct kvmi_backend *b, uint64_t gpa, void *buf, size_t size)
{
	return guest_read(&b->vm->mem, gpa, buf, size) ? -KVM_ENOENT : 0;
}

static int be_write_physical(struct kvmi_backend *b, uint64_t gpa, const void *buf, size_t size)
{
	return guest_write(&b->vm->mem, gpa, buf, size) ? -KVM_ENOENT : 0;
}

static int be_set_page_access(struct kvmi_backend *b, uint16_t view,
			      const struct kvmi_page_access_entry *e, unsigned count)
{
	struct pt_entry *pe;
	unsigned removed = 0, added = 0;
	int err;

	if (view != 0)
		return -KVM_EOPNOTSUPP; /* no EPT views on stock KVM */
	pe = calloc(count, sizeof(*pe));
	if (!pe)
		return -KVM_ENOMEM;
	for (unsigned i = 0; i < count; i++)
		pe[i] = (struct pt_entry){ e[i].gpa >> 12, e[i].access };
	/* Replacing a slot removes its pages for a moment: no vCPU may run
	 * then (a page walk through a missing page table is fatal). */
	vm_hold_vcpus(b->vm);
	pthread_rwlock_wrlock(&b->pt_lock);
	err = pagetrack_update(&b->pt, pe, count);
	if (!err)
		err = guest_memory_apply_tracking(&b->vm->mem, &b->pt, &removed, &added);
	pthread_rwlock_unlock(&b->pt_lock);
	vm_release_vcpus(b->vm);
	free(pe);
	if (err) {
		pr_err("introspection: SET_PAGE_ACCESS: %s", strerror(-err));
		return err == -ENOMEM ? -KVM_ENOMEM : -KVM_EINVAL;
	}
	pr_debug("introspection: SET_PAGE_ACCESS %u entries: %u slots removed, %u added, %u tracked pages, "
		 "memslots in use %u", count, removed, added, (unsigned)b->pt.n, b->vm->mem.nr_slots_used);
	return 0;
}

/* QUERY_PHYSICAL: the RAM region holding gfn, as {first gfn, pages}. */
static int be_query_physical(struct kvmi_backend *b, uint64_t gfn, struct kvmi_query_physical_reply *r)
{
	const struct guest_memory *mem = &b->vm->mem;

	for (unsigned i = 0; i < mem->nr_regions; i++) {
		uint64_t first = mem->regions[i].gpa >> 12, pages = mem->regions[i].size >> 12;

		if (gfn >= first && gfn - first < pages) {
			r->gfn = first;
			r->size = pages;
			return 0;
		}
	}
	return -KVM_ENOENT;
}

static int be_control_msr(struct kvmi_backend *b, unsigned idx, uint32_t msr, bool enable)
{
	struct intro_vcpu *iv = &b->vcpus[idx];
	uint8_t bit, *p, old;
	int err;

	if (!b->have_msr_filter)
		return -KVM_EOPNOTSUPP;
	pthread_mutex_lock(&b->msr_lock);
	p = msr_byte(iv, msr, &bit);
	if (!p) {
		pthread_mutex_unlock(&b->msr_lock);
		return -KVM_EINVAL;
	}
	old = *p;
	*p = enable ? (uint8_t)(*p | bit) : (uint8_t)(*p & ~bit);
	err = old == *p ? 0 : update_msr_filter(b);
	if (err)
		*p = old;
	pthread_mutex_unlock(&b->msr_lock);
	return err ? -KVM_EINVAL : 0;
}

static int be_control_cr(struct kvmi_backend *b, unsigned idx, unsigned cr, bool enable)
{
	return bpf_events_control_cr(b->bpf, vcpu_of(b, idx), cr, enable);
}

static int be_get_map_token(struct kvmi_backend *b, struct kvmi_map_mem_token *token)
{
	return kvmi_map_tokens_issue(&b->tokens, token);
}

static int be_map_memory(struct kvmi_backend *b, const struct kvmi_map_mem_token *token, uint64_t gpa,
			 uint64_t len, bool readonly, int *fd, uint64_t *offset)
{
	return mapping_map(&b->vm->mem, &b->tokens, token, gpa, len, readonly, fd, offset);
}

static int be_get_max_gfn(struct kvmi_backend *b, uint64_t *gfn)
{
	*gfn = kvmi_vm_max_gfn(b->vm);
	return 0;
}

/* ---- vCPU-scoped commands (vCPU thread) ------------------------------- */

static int be_get_tsc_speed(struct kvmi_backend *b, unsigned idx, uint64_t *hz)
{
	return kvmi_vcpu_get_tsc_speed(vcpu_of(b, idx), hz);
}

static int be_get_registers(struct kvmi_backend *b, unsigned idx, uint32_t *mode,
			    struct kvmi_x86_regs *regs, struct kvmi_x86_sregs *sregs,
			    struct kvmi_x86_msr_entry *msrs, unsigned nmsrs)
{
	return kvmi_vcpu_get_registers(vcpu_of(b, idx), mode, regs, sregs, msrs, nmsrs);
}

static int be_set_registers(struct kvmi_backend *b, unsigned idx, const struct kvmi_x86_regs *regs)
{
	return kvmi_vcpu_set_regs(vcpu_of(b, idx), regs);
}

static int be_get_cpuid(struct kvmi_backend *b, unsigned idx, uint32_t function, uint32_t index,
			struct kvmi_get_cpuid_reply *r)
{
	return kvmi_vcpu_get_cpuid(vcpu_of(b, idx), function, index, r);
}

static int be_get_xsave(struct kvmi_backend *b, unsigned idx, void *buf, size_t size)
{
	if (size < KVMI_XSAVE_SIZE)
		return -KVM_EINVAL;
	return kvmi_vcpu_get_xsave(vcpu_of(b, idx), buf);
}

static int be_set_xsave(struct kvmi_backend *b, unsigned idx, const void *buf, size_t size)
{
	return kvmi_vcpu_set_xsave(vcpu_of(b, idx), buf, size);
}

static int be_get_xcr(struct kvmi_backend *b, unsigned idx, unsigned xcr, uint64_t *value)
{
	return kvmi_vcpu_get_xcr(vcpu_of(b, idx), (uint8_t)xcr, value);
}

static int be_inject_exception(struct kvmi_backend *b, unsigned idx, uint8_t vector,
			       uint32_t error_code, uint64_t address)
{
	struct intro_vcpu *iv = &b->vcpus[idx];
	int err;

	if (iv->trap_pending)
		return -KVM_EBUSY; /* its TRAP event has not been sent yet */
	err = kvmi_vcpu_inject_exception(vcpu_of(b, idx), vector, error_code, address);
	if (!err)
		iv->trap_pending = true;
	return err;
}

static int be_get_mtrr_type(struct kvmi_backend *b, unsigned idx, uint64_t gpa, uint8_t *type)
{
	return kvmi_vcpu_get_mtrr_type(vcpu_of(b, idx), gpa, type);
}

static int be_translate_gva(struct kvmi_backend *b, unsigned idx, uint64_t gva, uint64_t *gpa)
{
	return kvmi_vcpu_translate_gva(vcpu_of(b, idx), gva, gpa);
}

static const struct kvmi_backend_ops backend_ops = {
	.vcpu_count = be_vcpu_count,
	.check_command = be_check_command,
	.check_event = be_check_event,
	.queue_vcpu_job = be_queue_vcpu_job,
	.wait_reply = be_wait_reply,
	.wake_vcpu = be_wake_vcpu,
	.get_event_arch = be_get_event_arch,
	.session_start = be_session_start,
	.control_vm_events = be_control_vm_events,
	.session_end = be_session_end,
	.pause_vcpu = be_pause_vcpu,
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

/* ---- hooks on the vCPU loop ------------------------------------------- */

static void handle_action(struct kvmi_backend *b, struct vcpu *vcpu, const char *event,
			  const struct kvmi_event_result *res)
{
	if (res->action == KVMI_EVENT_ACTION_CRASH) {
		pr_err("vcpu %u: the introspection tool answered %s with CRASH; stopping the guest",
		       vcpu->id, event);
		vm_request_stop(b->vm, KVMI_VM_EXIT_CRASH);
	}
}

/* Sends the TRAP event for an exception injected by INJECT_EXCEPTION:
 * what KVM really holds for the next entry (another event may have
 * replaced it). */
static void send_trap(struct kvmi_backend *b, struct vcpu *vcpu)
{
	struct kvmi_event_trap trap;
	struct kvmi_event_result res;
	struct kvm_vcpu_events ev;

	b->vcpus[vcpu->id].trap_pending = false;
	memset(&trap, 0, sizeof(trap));
	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) == 0 &&
	    (ev.exception.pending || ev.exception.injected)) {
		trap.vector = ev.exception.nr;
		trap.error_code = ev.exception.has_error_code ? ev.exception.error_code : 0;
		if (ev.exception.nr == 14) {
			if (ev.exception_has_payload) {
				trap.cr2 = ev.exception_payload;
			} else {
				struct kvm_sregs s;

				if (vcpu_get_sregs(vcpu, &s) == 0)
					trap.cr2 = s.cr2;
			}
		}
	} else {
		trap.vector = 0xff; /* nothing pending any more */
	}
	if (kvmi_vcpu_event(b->srv, vcpu->id, KVMI_EVENT_TRAP, &trap, sizeof(trap), NULL, 0, &res) == 0)
		handle_action(b, vcpu, "TRAP", &res);
}

/* --introspector-wait: may this vCPU run its first instruction? (called
 * with the VM lock held: reads atomics only) */
static bool first_entry_allowed(void *ctx)
{
	struct kvmi_backend *b = ctx;

	if (atomic_load(&b->in_session))
		return kvmi_vcpu_event_enabled(b->srv, 0, KVMI_EVENT_CREATE_VCPU);
	/* a tool came and went without asking for CREATE_VCPU: run */
	return atomic_load(&b->sessions) > 0;
}

/*
 * Before the first instruction of a vCPU: with --introspector-wait, wait for
 * the tool (serving its vCPU commands meanwhile); then raise CREATE_VCPU if
 * the tool enabled it.  The vCPU stays here until the tool replies, which
 * is how a tool keeps a new vCPU stopped.
 */
static void vcpu_created(struct kvmi_backend *b, struct vcpu *vcpu)
{
	struct kvmi_event_result res;

	b->vcpus[vcpu->id].created = true;
	if (b->cfg.wait_for_tool) {
		pr_debug("vcpu %u: waiting for an introspection tool (--introspector-wait)", vcpu->id);
		if (be_wait_reply(b, vcpu->id, first_entry_allowed, b))
			return;
	}
	if (kvmi_vcpu_event(b->srv, vcpu->id, KVMI_EVENT_CREATE_VCPU, NULL, 0, NULL, 0, &res) == 0)
		handle_action(b, vcpu, "CREATE_VCPU", &res);
}

static void hook_prerun(void *opaque, struct vcpu *vcpu)
{
	struct kvmi_backend *b = opaque;
	struct kvmi_event_result res;

	if (!b->vcpus[vcpu->id].created) {
		vcpu_created(b, vcpu);
		if (vm_stopping(b->vm))
			return;
	}
	/* While a tool is there, every exit may become an event: let KVM hand
	 * over the registers with the exit instead of two ioctls later. */
	vcpu_sync_regs(vcpu, kvmi_server_live(b->srv));
	bpf_events_prerun(b->bpf, vcpu); /* stops of the BPF hooks: their events first */
	if (atomic_exchange(&b->vcpus[vcpu->id].singlestep_off, false) &&
	    (b->vcpus[vcpu->id].singlestep || b->vcpus[vcpu->id].breakpoints)) {
		b->vcpus[vcpu->id].singlestep = false;
		b->vcpus[vcpu->id].breakpoints = false;
		update_guest_debug(b, vcpu);
	}
	if (b->vcpus[vcpu->id].trap_pending)
		send_trap(b, vcpu);
	/* PAUSE_VCPU events have the lowest priority: after jobs and other
	 * events. */
	if (kvmi_vcpu_pending_pauses(b->srv, vcpu->id)) {
		kvmi_vcpu_handle_pauses(b->srv, vcpu->id, &res);
		handle_action(b, vcpu, "PAUSE_VCPU", &res);
	}
}

/*
 * Completes the pending MMIO without letting the guest run: KVM finishes
 * an interrupted instruction on the next KVM_RUN before it looks at
 * immediate_exit.  Used to undo an access (RETRY): complete, then put the
 * registers back as they were before the instruction.
 */
static int complete_without_running(struct vcpu *vcpu)
{
	int ret = -EIO;

	/* A read-modify-write instruction exits once more for its store: drop
	 * it (the instruction is being undone) and finish again. */
	for (int i = 0; i < 16; i++) {
		__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		ret = ioctl(vcpu->fd, KVM_RUN, 0);
		vcpu_ran(vcpu, ret);
		__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
		if (ret < 0)
			return errno == EINTR ? 0 : -errno;
		if (vcpu->run->exit_reason != KVM_EXIT_MMIO)
			return -EIO;
		if (!vcpu->run->mmio.is_write) {
			void *hva = gpa_to_hva(&vcpu->vm->mem, vcpu->run->mmio.phys_addr, vcpu->run->mmio.len);

			if (hva)
				memcpy(vcpu->run->mmio.data, hva, vcpu->run->mmio.len);
		}
	}
	return ret < 0 ? ret : -EIO;
}

/* Reads may be served from the tool's ctx_data window (a guest-virtual
 * range): true when it covers this access. */
static bool ctx_covers(struct vcpu *vcpu, const struct kvmi_event_pf_reply *r, uint64_t gpa,
		       unsigned len, const uint8_t **data)
{
	uint64_t ctx_gpa;

	if (!r->ctx_size || r->ctx_size > KVMI_PF_CTX_DATA_SIZE)
		return false;
	kvmi_vcpu_translate_gva(vcpu, r->ctx_addr, &ctx_gpa);
	if (ctx_gpa == KVMI_UNMAPPED_GVA || (ctx_gpa >> 12) != ((ctx_gpa + r->ctx_size - 1) >> 12))
		return false;
	if (gpa < ctx_gpa || gpa + len > ctx_gpa + r->ctx_size)
		return false;
	*data = r->ctx_data + (gpa - ctx_gpa);
	return true;
}

static void complete_access(struct kvm_run *run, void *hva, const uint8_t *read_data)
{
	if (run->mmio.is_write)
		memcpy(hva, run->mmio.data, run->mmio.len);
	else
		memcpy(run->mmio.data, read_data ? read_data : hva, run->mmio.len);
}

/*
 * A guest access to RAM that exited because of page tracking (or while a
 * slot was being replaced).  Allowed accesses complete silently; forbidden
 * ones become a PF event with pre-read / pre-write semantics.
 */
static bool hook_mmio(void *opaque, struct vcpu *vcpu)
{
	struct kvmi_backend *b = opaque;
	struct intro_vcpu *iv = &b->vcpus[vcpu->id];
	struct kvm_run *run = vcpu->run;
	uint64_t gpa = run->mmio.phys_addr;
	unsigned len = run->mmio.len;
	uint8_t need = run->mmio.is_write ? PT_W : PT_R, allowed;
	struct kvmi_event_pf ev;
	struct kvmi_event_pf_reply rpl;
	struct kvmi_event_result res;
	struct kvm_regs regs;
	const uint8_t *ctx = NULL;
	void *hva = gpa_to_hva(&b->vm->mem, gpa, len);

	if (!hva)
		return false; /* not RAM: a device */

	pthread_rwlock_rdlock(&b->pt_lock);
	allowed = rights_for(b, gpa >> 12, vcpu->id);
	pthread_rwlock_unlock(&b->pt_lock);
	if ((allowed & need) || !kvmi_vcpu_event_enabled(b->srv, vcpu->id, KVMI_EVENT_PF)) {
		complete_access(run, hva, NULL);
		return true;
	}
	if (vcpu_get_regs(vcpu, &regs) < 0) {
		complete_access(run, hva, NULL);
		return true;
	}
	/* rep_complete: the rest of this (string) instruction goes through. */
	if (iv->rep_complete && regs.rip == iv->rep_rip) {
		complete_access(run, hva, NULL);
		return true;
	}
	iv->rep_complete = false;

	memset(&ev, 0, sizeof(ev));
	ev.gva = KVMI_UNMAPPED_GVA; /* KVM's MMIO exit does not tell it */
	ev.gpa = gpa;
	ev.access = need;
	ev.view = 0;
	memset(&rpl, 0, sizeof(rpl));
	if (kvmi_vcpu_event(b->srv, vcpu->id, KVMI_EVENT_PF, &ev, sizeof(ev), &rpl, sizeof(rpl), &res) ||
	    !res.delivered) {
		complete_access(run, hva, NULL); /* nobody listens: as CONTINUE */
		return true;
	}
	switch (res.action) {
	case KVMI_EVENT_ACTION_RETRY:
		if (run->mmio.is_write) {
			/* KVM emulated the whole store before exiting (RIP is
			 * already past it), so it cannot run again: perform it if
			 * the tool granted W meanwhile, as a re-execution would,
			 * else drop it. */
			pthread_rwlock_rdlock(&b->pt_lock);
			allowed = pagetrack_get(&b->pt, gpa >> 12);
			pthread_rwlock_unlock(&b->pt_lock);
			if (allowed & PT_W)
				complete_access(run, hva, NULL);
			break;
		}
		/* A load has not been committed yet: finish it without running
		 * the guest and restore the registers it started with (or those
		 * the tool set with SET_REGISTERS during the event), so the
		 * instruction runs again. */
		if (res.regs_applied && vcpu_get_regs(vcpu, &regs) < 0)
			break;
		memcpy(run->mmio.data, hva, len);
		if (complete_without_running(vcpu) || vcpu_set_regs(vcpu, &regs) < 0)
			pr_err("vcpu %u: cannot retry the read of %#llx; it completes", vcpu->id,
			       (unsigned long long)gpa);
		break;
	case KVMI_EVENT_ACTION_CRASH:
		handle_action(b, vcpu, "PF", &res);
		break;
	default: /* CONTINUE */
		if (rpl.rep_complete) {
			iv->rep_complete = true;
			iv->rep_rip = regs.rip;
		}
		if (!run->mmio.is_write && ctx_covers(vcpu, &rpl, gpa, len, &ctx))
			complete_access(run, hva, ctx);
		else
			complete_access(run, hva, NULL);
		break;
	}
	return true;
}

/* A RAM region is created again: the restrictions that fall in it are in
 * force before any vCPU runs on it (vCPUs are held by the caller). */
static int hook_recreate_region(void *opaque, unsigned idx, unsigned *slots)
{
	struct kvmi_backend *b = opaque;
	int err;

	pthread_rwlock_wrlock(&b->pt_lock);
	err = guest_memory_recreate_region(&b->vm->mem, idx, &b->pt, slots);
	pthread_rwlock_unlock(&b->pt_lock);
	return err;
}

/* ---- execute protection ---------------------------------------------- */


static bool step_slot_free(void *ctx)
{
	struct kvmi_backend *b = ctx;

	return atomic_load(&b->stepper) < 0;
}

static void wake_all(struct kvmi_backend *b)
{
	for (unsigned i = 0; i < b->vm->nr_vcpus; i++)
		vcpu_wake(&b->vm->vcpus[i]);
}

/* Sets gfn's rights and the slot layout; pt_lock held for writing, every
 * vCPU out of guest mode. */
static int set_rights_locked(struct kvmi_backend *b, uint64_t gfn, uint8_t access)
{
	struct pt_entry e = { gfn, access };
	int err = pagetrack_update(&b->pt, &e, 1);

	return err ? err : guest_memory_apply_tracking(&b->vm->mem, &b->pt, NULL, NULL);
}

/*
 * Runs the instruction at RIP, on execute-protected page gfn, once: the
 * page is mapped back (its rights plus R and X: a fetch needs a mapping),
 * the other vCPUs are held out of guest mode so none slips through, and
 * the vCPU re-enters with single-step on; exec_step_end() puts everything
 * back on the debug exit.  One vCPU steps at a time; the others wait for
 * their turn serving their jobs.  Returns false if the VM is stopping.
 */
static bool exec_step_begin(struct kvmi_backend *b, struct vcpu *vcpu, uint64_t gfn)
{
	struct intro_vcpu *iv = &b->vcpus[vcpu->id];
	uint8_t rights;
	int none = -1, err;

	while (!atomic_compare_exchange_strong(&b->stepper, &none, (int)vcpu->id)) {
		none = -1;
		if (be_wait_reply(b, vcpu->id, step_slot_free, b))
			return false;
	}
	vm_hold_vcpus(b->vm);
	pthread_rwlock_wrlock(&b->pt_lock);
	rights = pagetrack_get(&b->pt, gfn);
	err = 0;
	if ((rights & (PT_R | PT_X)) != (PT_R | PT_X)) {
		err = set_rights_locked(b, gfn, rights | PT_R | PT_X);
		if (!err) {
			b->step_vcpu = (int)vcpu->id;
			b->step_gfn = gfn;
			b->step_orig = rights;
		}
	}
	pthread_rwlock_unlock(&b->pt_lock);
	if ((rights & (PT_R | PT_X)) == (PT_R | PT_X) || err) {
		/* Lifted meanwhile (the instruction just runs), or the slot
		 * could not be mapped (the guest would loop: stop it). */
		if (err) {
			pr_err("vcpu %u: cannot map page %#llx for an execute step: %s", vcpu->id,
			       (unsigned long long)(gfn << 12), strerror(-err));
			vm_request_stop(b->vm, KVMI_VM_EXIT_HOST);
		}
		vm_release_vcpus(b->vm);
		atomic_store(&b->stepper, -1);
		wake_all(b);
		return !err;
	}
	{
		struct kvm_regs regs;
		struct kvm_sregs sregs;

		iv->exec_tf = vcpu_get_regs(vcpu, &regs) == 0 && (regs.rflags & RFLAGS_TF);
		memset(&sregs, 0, sizeof(sregs));
		vcpu_get_sregs(vcpu, &sregs);
		iv->exec_cs = sregs.cs;
		iv->exec_ss = sregs.ss;
	}
	iv->exec_step = true;
	iv->exec_gfn = gfn;
	iv->exec_orig = rights;
	iv->exec_opened = rights | PT_R | PT_X;
	if (update_guest_debug(b, vcpu))
		pr_warn("vcpu %u: cannot single-step; the page stays open until the next exit", vcpu->id);
	atomic_store(&vcpu->hold_exempt, true);
	return true;
}

/* Reads guest virtual memory through the vCPU's page tables. */
static int read_guest_virt(struct kvmi_backend *b, struct vcpu *vcpu, uint64_t gva, void *buf, size_t len)
{
	uint8_t *out = buf;

	while (len) {
		size_t n = 0x1000 - (gva & 0xfff);
		uint64_t gpa;
		const void *p;

		if (n > len)
			n = len;
		if (kvmi_vcpu_translate_gva(vcpu, gva, &gpa) || gpa == KVMI_UNMAPPED_GVA)
			return -EFAULT;
		p = gpa_to_hva(&b->vm->mem, gpa, n);
		if (!p)
			return -EFAULT;
		memcpy(out, p, n);
		out += n;
		gva += n;
		len -= n;
	}
	return 0;
}

/*
 * Some hosts (docs/test-hosts.md: kvm_pvm) do not exit after a single step
 * at CPL 3: the guest takes a #DB through its IDT and the exit comes at the
 * first instruction of its handler.  The guest did not ask for that trap:
 * undo its delivery like an iretq would (RIP, RFLAGS without TF and RSP
 * from the frame, CS/SS as before the step).
 */
static void undo_db_delivery(struct kvmi_backend *b, struct vcpu *vcpu)
{
	struct intro_vcpu *iv = &b->vcpus[vcpu->id];
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t frame[5], handler, top;
	uint8_t gate[16];
	unsigned ist;

	if ((iv->exec_cs.selector & 3) == 0 || iv->exec_tf)
		return;
	if (vcpu_get_regs(vcpu, &regs) < 0 || vcpu_get_sregs(vcpu, &sregs) < 0 ||
	    (sregs.cs.selector & 3) != 0 || sregs.idt.limit < 2 * 16 - 1 ||
	    read_guest_virt(b, vcpu, sregs.idt.base + 16, gate, sizeof(gate)))
		return;
	handler = (uint64_t)(gate[0] | gate[1] << 8) | (uint64_t)(gate[6] | gate[7] << 8) << 16 |
		  (uint64_t)(gate[8] | gate[9] << 8 | gate[10] << 16 | (uint32_t)gate[11] << 24) << 32;
	/* The exit may come after the handler's first instruction: find the
	 * frame where the CPU put it, at the top of the ring-0 (or IST) stack
	 * named by the TSS. */
	ist = gate[4] & 7;
	if (regs.rip - handler >= 16 ||
	    read_guest_virt(b, vcpu, sregs.tr.base + (ist ? 0x24 + 8 * (ist - 1) : 4), &top, sizeof(top)) ||
	    read_guest_virt(b, vcpu, (top & ~0xfull) - sizeof(frame), frame, sizeof(frame)) ||
	    (frame[1] & 3) != 3)
		return;
	regs.rip = frame[0];
	regs.rflags = frame[2] & ~RFLAGS_TF;
	regs.rsp = frame[3];
	sregs.cs = iv->exec_cs;
	sregs.ss = iv->exec_ss;
	if (vcpu_set_sregs(vcpu, &sregs) < 0 || vcpu_set_regs(vcpu, &regs) < 0)
		pr_err("vcpu %u: cannot undo the #DB of an execute step", vcpu->id);
	else
		pr_debug("vcpu %u: undid the guest #DB of a CPL 3 step (host quirk)", vcpu->id);
}

/* The stepped instruction is done (debug exit) or abandoned: restore. */
static void exec_step_end(struct kvmi_backend *b, struct vcpu *vcpu)
{
	struct intro_vcpu *iv = &b->vcpus[vcpu->id];

	if (vcpu->run->exit_reason == KVM_EXIT_DEBUG)
		undo_db_delivery(b, vcpu);

	iv->exec_step = false;
	update_guest_debug(b, vcpu);
	if (!iv->singlestep)
		kvmi_vcpu_drop_step_trap(vcpu, iv->exec_tf);
	pthread_rwlock_wrlock(&b->pt_lock);
	b->step_vcpu = -1;
	/* unless the tool changed the page's rights during the step */
	if (pagetrack_get(&b->pt, iv->exec_gfn) == iv->exec_opened &&
	    set_rights_locked(b, iv->exec_gfn, iv->exec_orig))
		pr_err("vcpu %u: cannot restore the restriction of page %#llx", vcpu->id,
		       (unsigned long long)(iv->exec_gfn << 12));
	pthread_rwlock_unlock(&b->pt_lock);
	atomic_store(&vcpu->hold_exempt, false);
	vm_release_vcpus(b->vm);
	atomic_store(&b->stepper, -1);
	wake_all(b);
}

/*
 * A guest int3 at RIP (debug exit or, on hosts whose emulator rejects it,
 * an emulation failure): the BREAKPOINT event.  CONTINUE (or nobody
 * listening) delivers the #BP to the guest as the CPU would have; RETRY
 * re-enters without it (the tool removed its breakpoint or moved RIP).
 */
static void handle_int3(struct kvmi_backend *b, struct vcpu *vcpu, uint64_t rip)
{
	struct kvmi_event_breakpoint ev;
	struct kvmi_event_result res;
	uint64_t gpa = KVMI_UNMAPPED_GVA;

	kvmi_vcpu_translate_gva(vcpu, rip, &gpa);
	memset(&ev, 0, sizeof(ev));
	ev.gpa = gpa;
	ev.insn_len = 1;
	memset(&res, 0, sizeof(res));
	res.action = KVMI_EVENT_ACTION_CONTINUE;
	if (b->vcpus[vcpu->id].breakpoints)
		kvmi_vcpu_event(b->srv, vcpu->id, KVMI_EVENT_BREAKPOINT, &ev, sizeof(ev), NULL, 0, &res);
	switch (res.action) {
	case KVMI_EVENT_ACTION_RETRY:
		break;
	case KVMI_EVENT_ACTION_CRASH:
		handle_action(b, vcpu, "BREAKPOINT", &res);
		break;
	default:
		if (res.regs_applied)
			break; /* the tool moved the vCPU: nothing to deliver at RIP */
		if (kvmi_vcpu_reinject_bp(vcpu, b->bp_path == KVMI_INT3_EMULATION))
			pr_err("vcpu %u: cannot deliver #BP to the guest", vcpu->id);
		break;
	}
}

/*
 * An emulation failure that tracking did not cause.  KVM's own answer at
 * CPL > 0, which KVM_CAP_EXIT_ON_EMULATION_FAILURE turned into an exit, is
 * a #UD for the guest; at CPL 0 the VMM stops the guest (false).
 */
static bool not_ours(struct kvmi_backend *b, struct vcpu *vcpu)
{
	struct kvm_sregs sregs;

	if (!b->exit_on_emulation_failure || vcpu_get_sregs(vcpu, &sregs) < 0 ||
	    (sregs.cs.selector & 3) == 0)
		return false;
	return kvmi_vcpu_inject_exception(vcpu, 6, 0, 0) == 0;
}

/*
 * KVM could not emulate an instruction.  Ours when the instruction sits on
 * a page that tracking removed from the memslots (read- or
 * execute-protected): without X it is a pre-exec PF event (gva = RIP),
 * and CONTINUE runs the instruction as one single step with the page
 * mapped; with X (only R was removed) the step happens silently.  Also
 * ours: an int3 the host's emulator rejects (BREAKPOINT).
 */
static bool hook_emulation_failure(void *opaque, struct vcpu *vcpu)
{
	struct kvmi_backend *b = opaque;
	struct intro_vcpu *iv = &b->vcpus[vcpu->id];
	struct kvmi_event_pf ev;
	struct kvmi_event_pf_reply rpl;
	struct kvmi_event_result res;
	struct kvm_regs regs;
	uint64_t gpa;
	uint8_t rights, byte;

	if (vcpu_get_regs(vcpu, &regs) < 0)
		return false;
	kvmi_vcpu_translate_gva(vcpu, regs.rip, &gpa);
	if (gpa == KVMI_UNMAPPED_GVA)
		return not_ours(b, vcpu);
	if (iv->exec_step)
		exec_step_end(b, vcpu); /* the stepped instruction failed itself */
	pthread_rwlock_rdlock(&b->pt_lock);
	rights = rights_for(b, gpa >> 12, vcpu->id);
	pthread_rwlock_unlock(&b->pt_lock);
	if ((rights & (PT_R | PT_X)) == (PT_R | PT_X)) {
		/* The page is mapped: not a fetch problem.  An int3? */
		if (b->bp_path == KVMI_INT3_EMULATION && read_guest_virt(b, vcpu, regs.rip, &byte, 1) == 0 &&
		    byte == 0xcc) {
			handle_int3(b, vcpu, regs.rip);
			return true;
		}
		/* A fetch can fail while the slot layout changes under it
		 * (another vCPU's step, the tool lifting a restriction): run
		 * the instruction once more before calling it KVM's failure. */
		if (iv->failed_rip != regs.rip) {
			iv->failed_rip = regs.rip;
			return true;
		}
		iv->failed_rip = 0;
		return not_ours(b, vcpu);
	}
	iv->failed_rip = 0;
	/* KVM may have queued a #UD for the failed fetch: it is ours, drop it. */
	kvmi_vcpu_drop_exception(vcpu, 6);
	if (!(rights & PT_X)) {
		memset(&ev, 0, sizeof(ev));
		ev.gva = regs.rip;
		ev.gpa = gpa;
		ev.access = KVMI_PAGE_ACCESS_X;
		memset(&rpl, 0, sizeof(rpl));
		if (kvmi_vcpu_event(b->srv, vcpu->id, KVMI_EVENT_PF, &ev, sizeof(ev), &rpl, sizeof(rpl), &res) == 0 &&
		    res.delivered) {
			if (res.action == KVMI_EVENT_ACTION_CRASH) {
				handle_action(b, vcpu, "PF", &res);
				return true;
			}
			/* RETRY: re-enter as is (the tool changed rights or
			 * registers; otherwise the fetch faults again). */
			if (res.action == KVMI_EVENT_ACTION_RETRY || res.regs_applied)
				return true;
		}
	}
	exec_step_begin(b, vcpu, gpa >> 12);
	return true;
}

/*
 * A guest WRMSR of a filtered MSR.  KVM has not written it: with the event
 * the tool sees old and new value, and CONTINUE writes the reply's new_val
 * (the tool vetoes by echoing the old one).  msr.error = 1 makes the guest
 * take #GP, as the CPU would for a value the MSR refuses.
 */
static void hook_wrmsr(void *opaque, struct vcpu *vcpu)
{
	struct kvmi_backend *b = opaque;
	struct kvm_run *run = vcpu->run;
	struct kvmi_event_msr ev = { .msr = run->msr.index, .new_value = run->msr.data };
	struct kvmi_event_msr_reply rpl = { .new_val = run->msr.data };
	struct intro_vcpu *iv = &b->vcpus[vcpu->id];
	struct kvmi_event_result res;
	uint64_t value = run->msr.data;
	bool controlled, have_old = false;

	pthread_mutex_lock(&b->msr_lock);
	controlled = msr_controlled(iv, run->msr.index);
	pthread_mutex_unlock(&b->msr_lock);
	/* The event header carries the usual MSRs: one KVM_GET_MSRS gives
	 * both it and the old value (each ioctl counts on the event path). */
	if (controlled && kvmi_vcpu_event_enabled(b->srv, vcpu->id, KVMI_EVENT_MSR) &&
	    kvmi_vcpu_fill_event_arch(vcpu, &iv->arch_cache) == 0) {
		iv->arch_cached = true;
		have_old = kvmi_event_arch_msr(&iv->arch_cache, run->msr.index, &ev.old_value);
	}
	if (controlled && !have_old)
		have_old = kvmi_vcpu_get_msr(vcpu, run->msr.index, &ev.old_value) == 0;
	/* Events come only for writes that change the value. */
	if (have_old && ev.old_value != value &&
	    kvmi_vcpu_event(b->srv, vcpu->id, KVMI_EVENT_MSR, &ev, sizeof(ev), &rpl, sizeof(rpl), &res) == 0 &&
	    res.delivered) {
		iv->arch_cached = false;
		if (res.action == KVMI_EVENT_ACTION_CRASH) {
			handle_action(b, vcpu, "MSR", &res);
			run->msr.error = 0;
			return;
		}
		value = rpl.new_val;
	}
	iv->arch_cached = false;
	run->msr.error = kvmi_vcpu_set_msr(vcpu, run->msr.index, value) ? 1 : 0;
}

/* One instruction done under CONTROL_SINGLESTEP: the SINGLESTEP event (if
 * the tool enabled it); stepping goes on until the tool turns it off. */
static void hook_debug(void *opaque, struct vcpu *vcpu)
{
	struct kvmi_backend *b = opaque;
	struct kvmi_event_singlestep ev = { .failed = 0 };
	struct kvmi_event_result res;

	struct intro_vcpu *iv = &b->vcpus[vcpu->id];
	struct kvm_debug_exit_arch *d = &vcpu->run->debug.arch;

	if (d->exception == 3) { /* int3 under USE_SW_BP */
		if (iv->breakpoints || b->bp_path == KVMI_INT3_DEBUG_EXIT)
			handle_int3(b, vcpu, d->pc);
		return;
	}
	if (iv->exec_step)
		exec_step_end(b, vcpu);
	if (!iv->singlestep)
		return;
	if (kvmi_vcpu_event(b->srv, vcpu->id, KVMI_EVENT_SINGLESTEP, &ev, sizeof(ev), NULL, 0, &res) == 0)
		handle_action(b, vcpu, "SINGLESTEP", &res);
}

/* ---- set-up and the connection thread --------------------------------- */

static void server_log(void *ctx, enum kvmi_srv_log_level level, const char *msg)
{
	(void)ctx;
	switch (level) {
	case KVMI_SRV_LOG_ERROR: pr_err("introspection: %s", msg); break;
	case KVMI_SRV_LOG_WARN:  pr_warn("introspection: %s", msg); break;
	case KVMI_SRV_LOG_INFO:  pr_info("introspection: %s", msg); break;
	default:                 pr_debug("introspection: %s", msg); break;
	}
}

int introspect_parse_uuid(const char *s, uint8_t uuid[16])
{
	unsigned n = 0;

	for (const char *p = s; *p; p++) {
		int hi, lo;

		if (*p == '-')
			continue;
		if (n == 16 || !p[1])
			return -EINVAL;
		hi = (*p >= '0' && *p <= '9') ? *p - '0' : ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f') ? (*p | 0x20) - 'a' + 10 : -1;
		lo = (p[1] >= '0' && p[1] <= '9') ? p[1] - '0' : ((p[1] | 0x20) >= 'a' && (p[1] | 0x20) <= 'f') ? (p[1] | 0x20) - 'a' + 10 : -1;
		if (hi < 0 || lo < 0)
			return -EINVAL;
		uuid[n++] = (uint8_t)(hi << 4 | lo);
		p++;
	}
	return n == 16 ? 0 : -EINVAL;
}

static int load_policy(struct kvmi_backend *b)
{
	char err[256];
	int ret;

	kvmi_policy_allow_all(&b->policy);
	if (b->cfg.policy_file) {
		ret = kvmi_policy_load_file(b->cfg.policy_file, &b->policy, err, sizeof(err));
		if (ret) {
			pr_err("introspection policy %s: %s", b->cfg.policy_file, err);
			return ret;
		}
	}
	if (b->cfg.allow_commands) {
		ret = kvmi_policy_parse_commands(b->cfg.allow_commands, &b->policy.commands, err, sizeof(err));
		if (ret) {
			pr_err("--allow-commands: %s", err);
			return ret;
		}
	}
	if (b->cfg.allow_events) {
		ret = kvmi_policy_parse_events(b->cfg.allow_events, &b->policy.events, err, sizeof(err));
		if (ret) {
			pr_err("--allow-events: %s", err);
			return ret;
		}
	}
	return 0;
}

int introspect_create(struct vm *vm, const struct introspect_config *cfg)
{
	struct kvmi_server_config sc;
	struct kvmi_backend *b;
	int err;

	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->vm = vm;
	b->cfg = *cfg;
	pthread_rwlock_init(&b->pt_lock, NULL);
	pagetrack_init(&b->pt);
	pthread_mutex_init(&b->msr_lock, NULL);
	kvmi_map_tokens_init(&b->tokens, 0);
	/* MSR events: writes exit to userspace through the MSR filter. */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) > 0) {
		struct kvm_enable_cap cap = {
			.cap = KVM_CAP_X86_USER_SPACE_MSR, .args = { KVM_MSR_EXIT_REASON_FILTER },
		};

		b->have_msr_filter = ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	}
	b->have_singlestep = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG) > 0;
	{
		int dbg2 = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_GUEST_DEBUG2);

		b->have_blockirq = dbg2 > 0 && (dbg2 & KVM_GUESTDBG_BLOCKIRQ);
	}
	/* An instruction fetch from a removed page fails emulation.  Without
	 * this KVM answers that with a #UD straight into the guest at CPL > 0
	 * (and queues one besides the exit at CPL 0). */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_EXIT_ON_EMULATION_FAILURE, .args = { 1 } };

		b->exit_on_emulation_failure = ioctl(vm->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
	}
	b->bp_path = b->have_singlestep ? kvmi_probe_int3(vm->kvm_fd) : KVMI_INT3_NONE;
	atomic_store(&b->stepper, -1);
	b->step_vcpu = -1;
	pr_info("introspection: MSR events %s, single-step %s%s, breakpoints through %s",
		b->have_msr_filter ? "available" : "unavailable",
		b->have_singlestep ? "available" : "unavailable",
		b->have_singlestep && !b->have_blockirq ? " (interrupts not blocked while stepping)" : "",
		kvmi_int3_path_name(b->bp_path));
	b->vcpus = calloc(vm->nr_vcpus, sizeof(*b->vcpus));
	if (!b->vcpus) {
		err = -ENOMEM;
		goto err;
	}
	err = kvmi_srv_addr_parse(cfg->address, &b->addr);
	if (err) {
		pr_err("--introspector: '%s' is not unix:PATH or vsock:CID:PORT", cfg->address);
		goto err;
	}
	err = load_policy(b);
	if (err)
		goto err;
	if (cfg->key_file) {
		size_t len;

		err = read_file(cfg->key_file, &b->key, &len);
		if (err) {
			pr_err("--introspector-key %s: %s", cfg->key_file, strerror(-err));
			goto err;
		}
		if (!len) {
			pr_err("--introspector-key %s: the key file is empty", cfg->key_file);
			err = -EINVAL;
			goto err;
		}
		b->key_len = len;
	}

	memset(&sc, 0, sizeof(sc));
	sc.ops = &backend_ops;
	sc.backend = b;
	sc.max_vcpus = vm->nr_vcpus;
	sc.policy = &b->policy;
	memcpy(sc.uuid, cfg->uuid, sizeof(sc.uuid));
	snprintf(sc.name, sizeof(sc.name), "%s", cfg->name ? cfg->name : "kvmi-vm");
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		sc.start_time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	sc.max_gpa = kvmi_vm_max_gfn(vm) << 12;
	sc.key = b->key;
	sc.key_len = b->key_len;
	sc.handshake_timeout_ms = cfg->handshake_timeout_ms;
	sc.log = server_log;
	err = kvmi_server_create(&sc, &b->srv);
	if (err) {
		pr_err("introspection: cannot create the server: %s", strerror(-err));
		goto err;
	}
	b->bpf = bpf_events_create(vm, b->srv);
	vm->intro = b;
	vm->hooks.opaque = b;
	vm->hooks.vcpu_prerun = hook_prerun;
	vm->hooks.mmio = hook_mmio;
	vm->hooks.emulation_failure = hook_emulation_failure;
	vm->hooks.wrmsr = hook_wrmsr;
	vm->hooks.debug = hook_debug;
	vm->hooks.recreate_region = hook_recreate_region;
	return 0;

err:
	free(b->key);
	free(b->vcpus);
	free(b);
	return err;
}

static void *intro_thread(void *arg)
{
	struct kvmi_backend *b = arg;
	int err = kvmi_server_run(b->srv, &b->addr);

	if (err)
		pr_err("introspection: connection loop failed: %s", strerror(-err));
	return NULL;
}

int introspect_start(struct vm *vm)
{
	struct kvmi_backend *b = vm->intro;
	sigset_t all, old;
	int err;

	if (!b)
		return 0;
	pr_info("introspection: connecting to %s", b->cfg.address);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&b->thread, NULL, intro_thread, b);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		return -err;
	b->thread_started = true;
	return 0;
}

void introspect_stop(struct vm *vm)
{
	struct kvmi_backend *b = vm->intro;
	int timeout;

	if (!b || !b->thread_started)
		return;
	timeout = b->cfg.unhook_timeout_ms > 0 ? b->cfg.unhook_timeout_ms : DEFAULT_UNHOOK_TIMEOUT_MS;
	if (kvmi_server_connected(b->srv)) {
		int err = kvmi_server_unhook(b->srv, timeout);

		if (err == -ETIMEDOUT)
			pr_warn("introspection: the tool did not close the connection within %d ms after UNHOOK",
				timeout);
	}
	kvmi_server_stop(b->srv);
	pthread_join(b->thread, NULL);
	b->thread_started = false;
}

void introspect_destroy(struct vm *vm)
{
	struct kvmi_backend *b = vm->intro;

	if (!b)
		return;
	introspect_stop(vm);
	bpf_events_destroy(b->bpf);
	kvmi_server_destroy(b->srv);
	pagetrack_destroy(&b->pt);
	pthread_rwlock_destroy(&b->pt_lock);
	pthread_mutex_destroy(&b->msr_lock);
	free(b->key);
	free(b->vcpus);
	free(b);
	vm->intro = NULL;
}
