/* SPDX-License-Identifier: MIT */
/*
 * CR, XSETBV and HYPERCALL events through BPF (see bpf_events.h and
 * ../bpf/kvmi_hooks.bpf.c), and the page-walk hook's half of PF events for
 * walks through write-protected pages (the gfn map; ptwalk.c raises them).
 *
 * The BPF program marks a vCPU's map entry and signals its thread from
 * inside KVM (kvm_set_cr0/3/4, __kvm_set_xcr, kvm:kvm_hypercall); KVM_RUN
 * returns -EINTR before the guest's next instruction and the run loop
 * calls bpf_events_prerun(), which compares the registers with the values
 * it saw last, raises the events and applies the tool's answer (a CR veto
 * or rewrite with KVM_SET_SREGS, the hypercall's RAX with KVM_SET_REGS).
 *
 * Threads: the map entries' `pending` words are shared with the BPF
 * program (atomics); everything else is under be->lock or owned by the
 * vCPU thread as noted.
 */
#include "bpf_events.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/kvm.h>

#include "internal.h"
#include "regs.h"
#include "util.h"

#if KVMI_HAVE_BPF

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "bpf/kvmi_hooks.h"
#include "bpf_internal.h"

/* One hook: its BPF program, where it attaches, what it stands for. */
static const struct hook_def {
	unsigned bit;
	const char *prog;
	const char *name;
	const char *targets[2];         /* kprobe functions, first that attaches; NULL: tracepoint */
} hook_defs[NR_HOOKS] = {
	{ KVMI_HOOK_CR0, "kvmi_cr0", "CR0", { "kvm_set_cr0" } },
	{ KVMI_HOOK_CR3, "kvmi_cr3", "CR3", { "kvm_set_cr3" } },
	{ KVMI_HOOK_CR4, "kvmi_cr4", "CR4", { "kvm_set_cr4" } },
	{ KVMI_HOOK_XSETBV, "kvmi_xsetbv", "XSETBV", { "__kvm_set_xcr", "kvm_emulate_xsetbv" } },
	{ KVMI_HOOK_HYPERCALL, "kvmi_hypercall", "HYPERCALL", { NULL } },
	{ KVMI_HOOK_PTWALK, "kvmi_ptwalk", "PT-WALK", { "kvm_mmu_page_fault" } },
};

extern const unsigned char kvmi_hooks_bpf_obj[];
extern const size_t kvmi_hooks_bpf_obj_size;

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char msg[512];

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = 0;
	pr_debug("libbpf: %s", msg);
	return 0;
}

static void bpf_signal_handler(int sig)
{
	(void)sig; /* only here to make KVM_RUN return -EINTR */
}

pid_t bpf_my_tid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static int attach_hook(struct bpf_events *be, unsigned i)
{
	const struct hook_def *h = &hook_defs[i];
	struct bpf_link *l = NULL;
	int err = -ENOENT;

	if (be->links[i])
		return 0;
	if (!h->targets[0]) {
		l = bpf_program__attach_tracepoint(be->progs[i], "kvm", "kvm_hypercall");
		err = l ? 0 : -errno;
		be->target[i] = "kvm:kvm_hypercall";
	}
	for (unsigned t = 0; t < 2 && h->targets[t] && !l; t++) {
		l = bpf_program__attach_kprobe(be->progs[i], false, h->targets[t]);
		err = l ? 0 : -errno;
		if (l)
			be->target[i] = h->targets[t];
	}
	be->links[i] = l;
	return l ? 0 : err;
}

/* What the page-walk hook cost while it was attached, when the kernel
 * keeps BPF statistics (sysctl kernel.bpf_stats_enabled=1). */
static void ptwalk_stats(struct bpf_events *be)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	uint64_t stops = 0;

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(bpf_program__fd(be->progs[PTWALK_HOOK]), &info, &len) || !info.run_cnt)
		return;
	for (unsigned i = 0; i < be->e->cfg.max_vcpus; i++)
		stops += __atomic_load_n(&be->shared[i].fired, __ATOMIC_SEQ_CST);
	pr_info("introspection: page-walk hook detached: %llu runs so far, %llu ns each on average; %llu stops of "
		"all hooks", (unsigned long long)info.run_cnt, (unsigned long long)(info.run_time_ns / info.run_cnt),
		(unsigned long long)stops);
}

static void detach_hook(struct bpf_events *be, unsigned i)
{
	if (be->links[i]) {
		if (i == PTWALK_HOOK)
			ptwalk_stats(be);
		bpf_link__destroy(be->links[i]);
	}
	be->links[i] = NULL;
}

static void detach_all(struct bpf_events *be)
{
	for (unsigned i = 0; i < NR_HOOKS; i++)
		detach_hook(be, i);
}

void bpf_thread_init(void)
{
	sigset_t s;

	/* Unblocked on the vCPU's thread, so also while KVM_RUN runs (the
	 * vCPU threads block everything else but the kick). */
	sigemptyset(&s);
	sigaddset(&s, KVMI_BPF_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

int bpf_register_thread(struct bpf_events *be, unsigned idx, pid_t tid)
{
	__u32 key = (__u32)tid, v = idx;

	return bpf_map_update_elem(be->threads_fd, &key, &v, BPF_ANY) ? -errno : 0;
}

void bpf_unregister_thread(struct bpf_events *be, pid_t tid)
{
	__u32 key = (__u32)tid;

	bpf_map_delete_elem(be->threads_fd, &key);
}

static void unavailable(const char *why, const char *notes)
{
	pr_info("introspection: CR/XSETBV/HYPERCALL events and page-walk reports unavailable: %s (%s); "
		"see docs/limitations.md", why, notes);
}

/* Opens and loads the embedded object, maps its tables, installs the
 * signal the programs send.  0, or -1 with the reason logged. */
static int load_object(struct bpf_events *be, const char *notes)
{
	struct bpf_map *vmap, *tmap, *wmap;
	struct sigaction sa;

	libbpf_set_print(libbpf_quiet);
	be->obj = bpf_object__open_mem(kvmi_hooks_bpf_obj, kvmi_hooks_bpf_obj_size, NULL);
	if (!be->obj) {
		unavailable("cannot open the embedded BPF object", notes);
		return -1;
	}
	if (bpf_object__load(be->obj)) {
		unavailable(errno == EPERM || errno == EACCES ?
			    "no privilege to load BPF programs (root, or CAP_BPF + CAP_PERFMON)" :
			    "the kernel refused the BPF programs", notes);
		return -1;
	}
	vmap = bpf_object__find_map_by_name(be->obj, "kvmi_vcpus");
	tmap = bpf_object__find_map_by_name(be->obj, "kvmi_threads");
	wmap = bpf_object__find_map_by_name(be->obj, "kvmi_wp_gfns");
	if (!vmap || !tmap || !wmap)
		return -1;
	be->threads_fd = bpf_map__fd(tmap);
	be->wp_fd = bpf_map__fd(wmap);
	be->shared_len = (KVMI_BPF_MAX_VCPUS * sizeof(struct kvmi_bpf_vcpu) + 4095) & ~(size_t)4095;
	be->shared = mmap(NULL, be->shared_len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(vmap), 0);
	if (be->shared == MAP_FAILED) {
		unavailable("cannot map the BPF vCPU table", notes);
		return -1;
	}
	for (unsigned i = 0; i < NR_HOOKS; i++)
		be->progs[i] = bpf_object__find_program_by_name(be->obj, hook_defs[i].prog);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bpf_signal_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(KVMI_BPF_SIGNAL, &sa, NULL) < 0)
		return -1;

	return 0;
}

struct bpf_events *bpf_events_create(struct kvmi_engine *e)
{
	struct bpf_events *be;
	const char *why = NULL;
	unsigned fired;
	char notes[192], line[256];
	size_t n = 0;

	bpf_host_notes(notes, sizeof(notes));
	if (e->cfg.max_vcpus > KVMI_BPF_MAX_VCPUS) {
		unavailable("more vCPUs than the BPF map holds", notes);
		return NULL;
	}
	if (KVMI_BPF_SIGNAL < SIGRTMIN || KVMI_BPF_SIGNAL > SIGRTMAX) {
		unavailable("the reserved real-time signal is not available", notes);
		return NULL;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return NULL;
	be->e = e;
	be->threads_fd = -1;
	be->wp_fd = -1;
	be->shared = MAP_FAILED;
	kvmi_mutex_init(&be->lock, KVMI_RANK_BPF, "BPF events");
	be->vcpus = calloc(e->cfg.max_vcpus, sizeof(*be->vcpus));
	if (!be->vcpus)
		goto fail;

	if (load_object(be, notes))
		goto fail;

	/* Attach what attaches, run the scratch VM, keep what fired. */
	for (unsigned i = 0; i < NR_HOOKS; i++)
		if (be->progs[i] && (i != PTWALK_HOOK || e->cfg.ptwalk == KVMI_PTWALK_AUTO) &&
		    attach_hook(be, i) == 0)
			n++;
	if (!n) {
		unavailable("no KVM hook could be attached (kprobes, kvm tracepoints)", notes);
		goto fail;
	}
	n = 0;
	fired = bpf_selftest(be, &why);
	for (unsigned i = 0; i < NR_HOOKS; i++)
		if (be->links[i] && (fired & hook_defs[i].bit))
			be->avail |= hook_defs[i].bit;
	detach_all(be);

	if (!be->avail) {
		unavailable(why ? why : "no hook fired in the start-up self-test", notes);
		goto fail;
	}
	for (unsigned i = 0; i < NR_HOOKS; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %s", i ? ", " : "", hook_defs[i].name,
				      (be->avail & hook_defs[i].bit) ? "yes" :
				      i == PTWALK_HOOK && e->npt == KVMI_NPT_OFF ? "not needed" : "no");
	pr_info("introspection: events through BPF on KVM hooks: %s (%s)", line, notes);
	return be;

fail:
	bpf_events_destroy(be);
	return NULL;
}

void bpf_events_destroy(struct bpf_events *be)
{
	if (!be)
		return;
	detach_all(be);
	if (be->shared != MAP_FAILED)
		munmap(be->shared, be->shared_len);
	if (be->obj)
		bpf_object__close(be->obj);
	kvmi_mutex_destroy(&be->lock);
	free(be->vcpus);
	free(be);
}

int bpf_events_check_event(struct bpf_events *be, unsigned id)
{
	unsigned need;

	switch (id) {
	case KVMI_EVENT_CR: need = KVMI_HOOK_CR0 | KVMI_HOOK_CR3 | KVMI_HOOK_CR4; break;
	case KVMI_EVENT_XSETBV: need = KVMI_HOOK_XSETBV; break;
	case KVMI_EVENT_HYPERCALL: need = KVMI_HOOK_HYPERCALL; break;
	default: return -KVM_EOPNOTSUPP;
	}
	return be && (be->avail & need) ? 0 : -KVM_EOPNOTSUPP;
}

int bpf_events_check_control_cr(struct bpf_events *be)
{
	return bpf_events_check_event(be, KVMI_EVENT_CR);
}

static int read_crs(struct kvmi_engine_vcpu *vcpu, struct bpf_vcpu_state *s)
{
	struct kvm_sregs sr;

	if (eng_get_sregs(vcpu, &sr) < 0)
		return -errno;
	s->cr0 = sr.cr0;
	s->cr3 = sr.cr3;
	s->cr4 = sr.cr4;
	return 0;
}

/* vCPU thread, under be->lock: the BPF map entry follows the wishes;
 * the hooks are attached while anything is wanted. */
static int apply(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu)
{
	struct bpf_vcpu_state *s = &be->vcpus[vcpu->idx];
	unsigned want = (s->ev_cr ? s->cr_mask : 0) | (s->ev_xsetbv ? KVMI_HOOK_XSETBV : 0) |
			(s->ev_hc ? KVMI_HOOK_HYPERCALL : 0);

	want &= be->avail;
	/* A job may run on another thread than the vCPU's (a QEMU vCPU
	 * parked by QEMU): the hooks know the thread that runs KVM_RUN. */
	if (want && !s->registered) {
		if (!vcpu->tid || bpf_register_thread(be, vcpu->idx, vcpu->tid))
			return -KVM_EINVAL;
		s->registered = true;
	}
	if (want) {
		read_crs(vcpu, s);
		for (unsigned i = 0; i < NR_HOOKS; i++)
			if ((want & hook_defs[i].bit) && attach_hook(be, i))
				return -KVM_EINVAL;
	}
	__atomic_store_n(&be->shared[vcpu->idx].enabled, want, __ATOMIC_SEQ_CST);
	return 0;
}

int bpf_events_control_cr(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu, unsigned cr, bool enable)
{
	unsigned bit = cr == 0 ? KVMI_HOOK_CR0 : cr == 3 ? KVMI_HOOK_CR3 : cr == 4 ? KVMI_HOOK_CR4 : 0;
	struct bpf_vcpu_state *s;
	unsigned old;
	int err;

	if (!bit)
		return -KVM_EINVAL;
	if (!be || !(be->avail & bit))
		return enable ? -KVM_EOPNOTSUPP : 0;
	s = &be->vcpus[vcpu->idx];
	kvmi_mutex_lock(&be->lock);
	old = s->cr_mask;
	s->cr_mask = enable ? s->cr_mask | bit : s->cr_mask & ~bit;
	err = apply(be, vcpu);
	if (err)
		s->cr_mask = old;
	kvmi_mutex_unlock(&be->lock);
	return err;
}

int bpf_events_control_event(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu, unsigned id, bool enable)
{
	struct bpf_vcpu_state *s;
	bool *flag, old;
	int err;

	if (id != KVMI_EVENT_CR && id != KVMI_EVENT_XSETBV && id != KVMI_EVENT_HYPERCALL)
		return 0;
	if (bpf_events_check_event(be, id))
		return enable ? -KVM_EOPNOTSUPP : 0;
	s = &be->vcpus[vcpu->idx];
	flag = id == KVMI_EVENT_CR ? &s->ev_cr : id == KVMI_EVENT_XSETBV ? &s->ev_xsetbv : &s->ev_hc;
	kvmi_mutex_lock(&be->lock);
	old = *flag;
	*flag = enable;
	err = apply(be, vcpu);
	if (err)
		*flag = old;
	kvmi_mutex_unlock(&be->lock);
	return err;
}

void bpf_events_session_end(struct bpf_events *be)
{
	if (!be)
		return;
	kvmi_mutex_lock(&be->lock);
	for (unsigned i = 0; i < be->e->cfg.max_vcpus; i++) {
		struct bpf_vcpu_state *s = &be->vcpus[i];

		s->cr_mask = 0;
		s->ev_cr = s->ev_xsetbv = s->ev_hc = false;
		__atomic_store_n(&be->shared[i].enabled, 0, __ATOMIC_SEQ_CST);
	}
	detach_all(be);
	kvmi_mutex_unlock(&be->lock);
}

/* ---- page walks through write-protected pages (ptwalk.c) ------------ */

bool bpf_events_ptwalk_available(struct bpf_events *be)
{
	return be && (be->avail & KVMI_HOOK_PTWALK);
}

void bpf_events_vcpu_start(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu)
{
	struct bpf_vcpu_state *s;

	if (!be)
		return;
	s = &be->vcpus[vcpu->idx];
	kvmi_mutex_lock(&be->lock);
	if (!s->registered && vcpu->tid && bpf_register_thread(be, vcpu->idx, vcpu->tid) == 0)
		s->registered = true;
	kvmi_mutex_unlock(&be->lock);
}

/* One gfn in or out of kvmi_wp_gfns; 0 or -errno (the map is full). */
static int wp_set(struct bpf_events *be, uint64_t gfn, bool protect)
{
	__u64 key = gfn;
	__u32 one = 1;

	if (!protect) {
		if (bpf_map_delete_elem(be->wp_fd, &key) == 0)
			be->wp_count--;
		return 0;
	}
	if (bpf_map_update_elem(be->wp_fd, &key, &one, BPF_NOEXIST) == 0)
		be->wp_count++;
	else if (errno != EEXIST)
		return -errno;
	return 0;
}

/* The page-walk hook is attached while a page lacks W. */
static int wp_hook(struct bpf_events *be)
{
	if (!be->wp_count) {
		detach_hook(be, PTWALK_HOOK);
		return 0;
	}
	return attach_hook(be, PTWALK_HOOK);
}

int bpf_events_wp_update(struct bpf_events *be, const struct pagetrack *pt, const struct pt_entry *pe, size_t n)
{
	int err = 0;

	if (!bpf_events_ptwalk_available(be))
		return 0;
	kvmi_mutex_lock(&be->lock);
	for (size_t i = 0; !err && i < n; i++)
		err = wp_set(be, pe[i].gfn, !(pagetrack_get(pt, pe[i].gfn) & PT_W));
	if (!err)
		err = wp_hook(be);
	kvmi_mutex_unlock(&be->lock);
	if (err)
		pr_err("introspection: the page-walk hook cannot follow the write-protected pages: %s", strerror(-err));
	return err;
}

void bpf_events_wp_clear(struct bpf_events *be)
{
	__u64 key;

	if (!bpf_events_ptwalk_available(be))
		return;
	kvmi_mutex_lock(&be->lock);
	while (bpf_map_get_next_key(be->wp_fd, NULL, &key) == 0)
		if (bpf_map_delete_elem(be->wp_fd, &key))
			break;
	be->wp_count = 0;
	detach_hook(be, PTWALK_HOOK);
	kvmi_mutex_unlock(&be->lock);
}

bool bpf_events_walk_pending(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu)
{
	return be && (__atomic_load_n(&be->shared[vcpu->idx].pending, __ATOMIC_SEQ_CST) & KVMI_HOOK_PTWALK);
}

/* ---- the vCPU side of a stop ---------------------------------------- */

/* The CRs written since the last stop: one CR event per changed register,
 * CONTINUE with new_val != the written value rewrites (or vetoes) it. */
static void handle_crs(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu, unsigned pending)
{
	static const struct { unsigned bit, cr; size_t off; } crs[] = {
		{ KVMI_HOOK_CR0, 0, offsetof(struct kvm_sregs, cr0) },
		{ KVMI_HOOK_CR3, 3, offsetof(struct kvm_sregs, cr3) },
		{ KVMI_HOOK_CR4, 4, offsetof(struct kvm_sregs, cr4) },
	};
	struct bpf_vcpu_state *s = &be->vcpus[vcpu->idx];
	uint64_t *old[] = { &s->cr0, &s->cr3, &s->cr4 };
	struct kvm_sregs sr;
	bool changed = false;

	if (eng_get_sregs(vcpu, &sr) < 0)
		return;
	for (unsigned i = 0; i < ARRAY_SIZE(crs); i++) {
		uint64_t *val = (uint64_t *)((char *)&sr + crs[i].off);
		struct kvmi_event_cr ev = { .cr = (uint16_t)crs[i].cr, .old_value = *old[i], .new_value = *val };
		struct kvmi_event_cr_reply rpl = { .new_val = *val };
		enum kvmi_outcome out;

		if (!(pending & crs[i].bit) || *val == *old[i])
			continue;
		out = eng_raise(vcpu, KVMI_EVENT_CR, NULL, &ev, sizeof(ev), &rpl, sizeof(rpl)).outcome;
		if (out == KVMI_NO_TOOL || out == KVMI_CRASH)
			continue;
		if (out == KVMI_CONTINUE && rpl.new_val != *val) {
			*val = rpl.new_val;
			changed = true;
		} else if (out != KVMI_CONTINUE) {
			/* Other actions: "the write is not performed". */
			*val = *old[i];
			changed = true;
		}
	}
	if (changed && eng_set_sregs(vcpu, &sr) < 0)
		pr_err("vcpu %u: cannot apply the tool's CR values: %s", vcpu->idx, strerror(errno));
	read_crs(vcpu, s);
}

/* The agent hypercall ran; KVM already answered -KVM_ENOSYS in RAX and
 * moved RIP past it.  The event shows RAX = 34 as the guest made the
 * call; the guest then sees 0 (delivered) or KVM's answer. */
static void handle_hypercall(struct kvmi_engine_vcpu *vcpu)
{
	struct kvmi_raised res;
	struct kvm_regs r;
	uint64_t result;

	if (eng_get_regs(vcpu, &r) < 0)
		return;
	result = r.rax;
	r.rax = KVMI_AGENT_HYPERCALL;
	if (eng_set_regs(vcpu, &r) < 0)
		return;
	res = eng_raise(vcpu, KVMI_EVENT_HYPERCALL, NULL, NULL, 0, NULL, 0);
	if (res.outcome == KVMI_CRASH)
		return;
	if (res.regs_applied && eng_get_regs(vcpu, &r) < 0)
		return;
	r.rax = res.outcome != KVMI_NO_TOOL ? 0 : result;
	if (eng_set_regs(vcpu, &r) < 0)
		pr_err("vcpu %u: cannot set the hypercall's result: %s", vcpu->idx, strerror(errno));
}

void bpf_events_prerun(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu)
{
	unsigned pending;

	if (!be)
		return;
	pending = __atomic_exchange_n(&be->shared[vcpu->idx].pending, 0, __ATOMIC_SEQ_CST);
	if (!pending)
		return;
	if (pending & (KVMI_HOOK_CR0 | KVMI_HOOK_CR3 | KVMI_HOOK_CR4))
		handle_crs(be, vcpu, pending);
	if (pending & KVMI_HOOK_XSETBV)
		eng_raise(vcpu, KVMI_EVENT_XSETBV, NULL, NULL, 0, NULL, 0);
	if (pending & KVMI_HOOK_HYPERCALL)
		handle_hypercall(vcpu);
	if (pending & KVMI_HOOK_PTWALK)
		eng_ptwalk_event(vcpu, __atomic_load_n(&be->shared[vcpu->idx].walk_gpa, __ATOMIC_SEQ_CST),
				 __atomic_load_n(&be->shared[vcpu->idx].walk_error, __ATOMIC_SEQ_CST));
}

#else /* !KVMI_HAVE_BPF: built without clang's BPF target or libbpf */

struct bpf_events *bpf_events_create(struct kvmi_engine *e)
{
	(void)e;
	pr_info("introspection: CR/XSETBV/HYPERCALL events unavailable: built without BPF support");
	return NULL;
}

void bpf_events_destroy(struct bpf_events *be)
{
	(void)be;
}

int bpf_events_check_event(struct bpf_events *be, unsigned id)
{
	(void)be;
	(void)id;
	return -KVM_EOPNOTSUPP;
}

int bpf_events_check_control_cr(struct bpf_events *be)
{
	(void)be;
	return -KVM_EOPNOTSUPP;
}

int bpf_events_control_cr(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu, unsigned cr, bool enable)
{
	(void)be;
	(void)vcpu;
	(void)cr;
	return enable ? -KVM_EOPNOTSUPP : 0;
}

int bpf_events_control_event(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu, unsigned id, bool enable)
{
	(void)be;
	(void)vcpu;
	return enable && (id == KVMI_EVENT_CR || id == KVMI_EVENT_XSETBV || id == KVMI_EVENT_HYPERCALL) ?
		       -KVM_EOPNOTSUPP : 0;
}

void bpf_thread_init(void)
{
}

void bpf_events_prerun(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu)
{
	(void)be;
	(void)vcpu;
}

void bpf_events_session_end(struct bpf_events *be)
{
	(void)be;
}

bool bpf_events_ptwalk_available(struct bpf_events *be)
{
	(void)be;
	return false;
}

void bpf_events_vcpu_start(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu)
{
	(void)be;
	(void)vcpu;
}

int bpf_events_wp_update(struct bpf_events *be, const struct pagetrack *pt, const struct pt_entry *pe, size_t n)
{
	(void)be;
	(void)pt;
	(void)pe;
	(void)n;
	return 0;
}

void bpf_events_wp_clear(struct bpf_events *be)
{
	(void)be;
}

bool bpf_events_walk_pending(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu)
{
	(void)be;
	(void)vcpu;
	return false;
}

#endif
