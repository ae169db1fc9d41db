/* SPDX-License-Identifier: MIT */
/*
 * CR, XSETBV and HYPERCALL events through BPF (see bpf_events.h and
 * ../bpf/kvmi_hooks.bpf.c).
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

extern const unsigned char kvmi_hooks_bpf_obj[];
extern const size_t kvmi_hooks_bpf_obj_size;

#define NR_HOOKS 5
#define SELFTEST_TIMEOUT_MS 1000
#define KVM_ENOSYS_RESULT ((uint64_t)-1000)   /* -KVM_ENOSYS, what KVM wrote into RAX */

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
};

struct bpf_vcpu_state {
	/* Under be->lock: what the tool asked for. */
	unsigned cr_mask;               /* CONTROL_CR: KVMI_HOOK_CR0/3/4 */
	bool ev_cr, ev_xsetbv, ev_hc;   /* CONTROL_EVENTS */
	/* vCPU thread only. */
	bool registered;                /* its thread id is in kvmi_threads */
	uint64_t cr0, cr3, cr4;         /* the values of the last stop: next event's old values */
};

struct bpf_events {
	struct kvmi_engine *e;
	struct bpf_object *obj;
	struct bpf_program *progs[NR_HOOKS];
	struct bpf_link *links[NR_HOOKS];
	const char *target[NR_HOOKS];   /* the function that attached */
	int threads_fd;
	struct kvmi_bpf_vcpu *shared;   /* mmap of kvmi_vcpus */
	size_t shared_len;
	unsigned avail;                 /* KVMI_HOOK_*: this host delivers them */
	pthread_mutex_t lock;           /* links, the vCPUs' wishes */
	struct bpf_vcpu_state *vcpus;
};

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

static pid_t my_tid(void)
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

static void detach_all(struct bpf_events *be)
{
	for (unsigned i = 0; i < NR_HOOKS; i++) {
		if (be->links[i])
			bpf_link__destroy(be->links[i]);
		be->links[i] = NULL;
	}
}

static int register_thread(struct bpf_events *be, unsigned idx)
{
	__u32 tid = (__u32)my_tid(), v = idx;
	sigset_t s;

	/* Unblocked on this thread, so also while KVM_RUN runs (the vCPU
	 * threads block everything else but the kick). */
	sigemptyset(&s);
	sigaddset(&s, KVMI_BPF_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	return bpf_map_update_elem(be->threads_fd, &tid, &v, BPF_ANY) ? -errno : 0;
}

static void unregister_thread(struct bpf_events *be)
{
	__u32 tid = (__u32)my_tid();

	bpf_map_delete_elem(be->threads_fd, &tid);
}

/* ---- start-up self-test -------------------------------------------- */

/*
 * 16-bit real-mode code at 0x1000 (CS base 0): every write the hooks
 * watch, then HLT (no in-kernel irqchip: KVM_EXIT_HLT).  The stops land
 * after each instruction, so it simply runs on after every -EINTR.
 */
static size_t selftest_code(uint8_t *p, bool xsave, bool fep, bool amd)
{
	static const uint8_t cr0_cr4_cr3[] = {
		0x0f, 0x20, 0xc0,                       /* mov eax, cr0 */
		0x66, 0x0d, 0x00, 0x00, 0x01, 0x00,     /* or eax, 0x10000 (WP) */
		0x0f, 0x22, 0xc0,                       /* mov cr0, eax */
		0x0f, 0x20, 0xe0,                       /* mov eax, cr4 */
		0x66, 0x0d, 0x00, 0x02, 0x00, 0x00,     /* or eax, 0x200 (OSFXSR) */
		0x0f, 0x22, 0xe0,                       /* mov cr4, eax */
		0x66, 0xb8, 0x00, 0x20, 0x00, 0x00,     /* mov eax, 0x2000 */
		0x0f, 0x22, 0xd8,                       /* mov cr3, eax */
	};
	static const uint8_t xsetbv[] = {
		0x66, 0x31, 0xc9,                       /* xor ecx, ecx */
		0x66, 0x31, 0xd2,                       /* xor edx, edx */
		0x66, 0xb8, 0x01, 0x00, 0x00, 0x00,     /* mov eax, 1 (x87) */
	};
	static const uint8_t kvm_fep[] = { 0x0f, 0x0b, 'k', 'v', 'm' };
	size_t n = 0;

	memcpy(p + n, cr0_cr4_cr3, sizeof(cr0_cr4_cr3));
	n += sizeof(cr0_cr4_cr3);
	if (xsave) {
		memcpy(p + n, xsetbv, sizeof(xsetbv));
		n += sizeof(xsetbv);
		p[n++] = 0x0f, p[n++] = 0x01, p[n++] = 0xd1;    /* xsetbv */
		/* KVM's forced-emulation prefix reaches __kvm_set_xcr even where
		 * XSETBV is not intercepted (QEMU TCG's SVM). */
		if (fep) {
			memcpy(p + n, kvm_fep, sizeof(kvm_fep));
			n += sizeof(kvm_fep);
			p[n++] = 0x0f, p[n++] = 0x01, p[n++] = 0xd1;
		}
	}
	p[n++] = 0x66, p[n++] = 0xb8;                   /* mov eax, 34 */
	p[n++] = KVMI_AGENT_HYPERCALL, p[n++] = 0, p[n++] = 0, p[n++] = 0;
	p[n++] = 0x0f, p[n++] = 0x01, p[n++] = amd ? 0xd9 : 0xc1;  /* vmmcall / vmcall */
	p[n++] = 0xf4;                                  /* hlt */
	return n;
}

static bool host_is_amd(void)
{
	unsigned a = 0, b, c, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "=c"(c), "=d"(d));
	return b == 0x68747541; /* "Auth" */
}

static bool cpuid_has_xsave(const struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; c && i < c->nent; i++)
		if (c->entries[i].function == 1)
			return c->entries[i].ecx & (1u << 26);
	return false;
}

/* A kvm module parameter read as a boolean ("Y", "1", ...). */
static bool module_param_on(const char *path)
{
	char buf[8] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	close(fd);
	return buf[0] == 'Y' || (buf[0] >= '1' && buf[0] <= '9');
}

struct selftest {
	struct bpf_events *be;
	unsigned fired;
	const char *why;        /* why the scratch VM could not run */
};

static void *selftest_thread(void *arg)
{
	struct selftest *st = arg;
	struct bpf_events *be = st->be;
	const struct kvmi_engine_config *cfg = &be->e->cfg;
	const size_t mem_size = 0x10000;
	struct kvm_userspace_memory_region region = { .slot = 0, .memory_size = mem_size };
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = KVMI_BPF_SIGNAL };
	struct itimerspec its = { .it_value.tv_nsec = 200 * 1000000L,
				  .it_interval.tv_nsec = 200 * 1000000L };
	struct timespec t0, t;
	struct kvm_run *run = MAP_FAILED;
	timer_t timer;
	bool have_timer = false, xsave;
	uint8_t *mem = MAP_FAILED;
	int vmfd, vcpufd = -1, run_size;

	st->why = "cannot create the scratch VM";
	vmfd = ioctl(cfg->kvm_fd, KVM_CREATE_VM, 0);
	if (vmfd < 0)
		return NULL;
	run_size = ioctl(cfg->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (run_size <= 0 || mem == MAP_FAILED)
		goto out;
	ioctl(vmfd, KVM_SET_TSS_ADDR, 0xfffbd000ul); /* VMX real mode; AMD ignores it */
	region.userspace_addr = (uintptr_t)mem;
	if (ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		goto out;
	vcpufd = ioctl(vmfd, KVM_CREATE_VCPU, 0);
	if (vcpufd < 0)
		goto out;
	run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpufd, 0);
	if (run == MAP_FAILED)
		goto out;
	xsave = cfg->cpuid && ioctl(vcpufd, KVM_SET_CPUID2, cfg->cpuid) == 0 && cpuid_has_xsave(cfg->cpuid);
	if (ioctl(vcpufd, KVM_GET_SREGS, &sregs) < 0)
		goto out;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (xsave)
		sregs.cr4 |= 1u << 18; /* OSXSAVE */
	if (ioctl(vcpufd, KVM_SET_SREGS, &sregs) < 0 && xsave) {
		xsave = false;
		sregs.cr4 &= ~(1ull << 18);
		if (ioctl(vcpufd, KVM_SET_SREGS, &sregs) < 0)
			goto out;
	}
	selftest_code(mem + 0x1000, xsave, module_param_on("/sys/module/kvm/parameters/force_emulation_prefix"),
		      host_is_amd());
	if (ioctl(vcpufd, KVM_SET_REGS, &regs) < 0)
		goto out;

	/* A watchdog: some software hypervisors never come back from a
	 * hypercall at ring 0; the timer's signal ends KVM_RUN. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid /* glibc < 2.35 */
#endif
	sev.sigev_notify_thread_id = my_tid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0) {
		have_timer = true;
		timer_settime(timer, 0, &its, NULL);
	}
	if (register_thread(be, 0))
		goto out;
	__atomic_store_n(&be->shared[0].enabled, KVMI_HOOK_ALL, __ATOMIC_SEQ_CST);
	st->why = NULL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int ret = ioctl(vcpufd, KVM_RUN, 0);

		clock_gettime(CLOCK_MONOTONIC, &t);
		if (ret == 0 && run->exit_reason != KVM_EXIT_INTR)
			break; /* HLT, or anything else: done either way */
		if (ret < 0 && errno != EINTR && errno != EAGAIN)
			break;
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > SELFTEST_TIMEOUT_MS)
			break;
	}
	__atomic_store_n(&be->shared[0].enabled, 0, __ATOMIC_SEQ_CST);
	st->fired = __atomic_exchange_n(&be->shared[0].pending, 0, __ATOMIC_SEQ_CST);
	be->shared[0].fired = 0;
	unregister_thread(be);
out:
	if (have_timer)
		timer_delete(timer);
	if (run != MAP_FAILED)
		munmap(run, (size_t)run_size);
	if (vcpufd >= 0)
		close(vcpufd);
	if (mem != MAP_FAILED)
		munmap(mem, mem_size);
	close(vmfd);
	return NULL;
}

/* What the administrator may want to know when hooks are missing. */
static void host_notes(char *buf, size_t len)
{
	char lock[128] = "";
	int fd, n = 0;
	bool tracefs = access("/sys/kernel/tracing/events/kvm", F_OK) == 0 ||
		       access("/sys/kernel/debug/tracing/events/kvm", F_OK) == 0;

	fd = open("/sys/kernel/security/lockdown", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t r = read(fd, lock, sizeof(lock) - 1);

		lock[r > 0 ? r : 0] = 0;
		close(fd);
	}
	buf[0] = 0;
	if (access("/sys/module/kvm_amd/parameters/npt", F_OK) == 0)
		n = snprintf(buf, len, "kvm_amd npt=%s", module_param_on("/sys/module/kvm_amd/parameters/npt") ? "1" : "0");
	else if (access("/sys/module/kvm_intel/parameters/ept", F_OK) == 0)
		n = snprintf(buf, len, "kvm_intel ept=%s", module_param_on("/sys/module/kvm_intel/parameters/ept") ? "1" : "0");
	else
		n = snprintf(buf, len, "neither kvm_amd nor kvm_intel loaded");
	if (n > 0 && (size_t)n < len)
		n += snprintf(buf + n, len - (size_t)n, ", tracefs %s", tracefs ? "mounted" : "not mounted");
	if (n > 0 && (size_t)n < len && strstr(lock, "[integrity]"))
		n += snprintf(buf + n, len - (size_t)n, ", lockdown integrity");
	if (n > 0 && (size_t)n < len && strstr(lock, "[confidentiality]"))
		snprintf(buf + n, len - (size_t)n, ", lockdown confidentiality (no kprobes)");
}

static void unavailable(const char *why, const char *notes)
{
	pr_info("introspection: CR/XSETBV/HYPERCALL events unavailable: %s (%s); see docs/limitations.md",
		why, notes);
}

struct bpf_events *bpf_events_create(struct kvmi_engine *e)
{
	struct bpf_events *be;
	struct bpf_map *vmap, *tmap;
	struct selftest st = { 0 };
	struct sigaction sa;
	pthread_t thr;
	sigset_t all, old;
	char notes[192], line[256];
	size_t n = 0;

	host_notes(notes, sizeof(notes));
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
	be->shared = MAP_FAILED;
	pthread_mutex_init(&be->lock, NULL);
	be->vcpus = calloc(e->cfg.max_vcpus, sizeof(*be->vcpus));
	if (!be->vcpus)
		goto fail;

	libbpf_set_print(libbpf_quiet);
	be->obj = bpf_object__open_mem(kvmi_hooks_bpf_obj, kvmi_hooks_bpf_obj_size, NULL);
	if (!be->obj) {
		unavailable("cannot open the embedded BPF object", notes);
		goto fail;
	}
	if (bpf_object__load(be->obj)) {
		unavailable(errno == EPERM || errno == EACCES ?
			    "no privilege to load BPF programs (root, or CAP_BPF + CAP_PERFMON)" :
			    "the kernel refused the BPF programs", notes);
		goto fail;
	}
	vmap = bpf_object__find_map_by_name(be->obj, "kvmi_vcpus");
	tmap = bpf_object__find_map_by_name(be->obj, "kvmi_threads");
	if (!vmap || !tmap)
		goto fail;
	be->threads_fd = bpf_map__fd(tmap);
	be->shared_len = (KVMI_BPF_MAX_VCPUS * sizeof(struct kvmi_bpf_vcpu) + 4095) & ~(size_t)4095;
	be->shared = mmap(NULL, be->shared_len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(vmap), 0);
	if (be->shared == MAP_FAILED) {
		unavailable("cannot map the BPF vCPU table", notes);
		goto fail;
	}
	for (unsigned i = 0; i < NR_HOOKS; i++)
		be->progs[i] = bpf_object__find_program_by_name(be->obj, hook_defs[i].prog);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bpf_signal_handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(KVMI_BPF_SIGNAL, &sa, NULL) < 0)
		goto fail;

	/* Attach what attaches, run the scratch VM, keep what fired. */
	for (unsigned i = 0; i < NR_HOOKS; i++)
		if (be->progs[i] && attach_hook(be, i) == 0)
			n++;
	if (!n) {
		unavailable("no KVM hook could be attached (kprobes, kvm tracepoints)", notes);
		goto fail;
	}
	n = 0;
	st.be = be;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&thr, NULL, selftest_thread, &st) == 0)
		pthread_join(thr, NULL);
	else
		st.why = "cannot start the self-test thread";
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (unsigned i = 0; i < NR_HOOKS; i++)
		if (be->links[i] && (st.fired & hook_defs[i].bit))
			be->avail |= hook_defs[i].bit;
	detach_all(be);

	if (!be->avail) {
		unavailable(st.why ? st.why : "no hook fired in the start-up self-test", notes);
		goto fail;
	}
	for (unsigned i = 0; i < NR_HOOKS; i++)
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s%s %s", i ? ", " : "",
				      hook_defs[i].name, (be->avail & hook_defs[i].bit) ? "yes" : "no");
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
	pthread_mutex_destroy(&be->lock);
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
	if (want && !s->registered) {
		if (register_thread(be, vcpu->idx))
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
	pthread_mutex_lock(&be->lock);
	old = s->cr_mask;
	s->cr_mask = enable ? s->cr_mask | bit : s->cr_mask & ~bit;
	err = apply(be, vcpu);
	if (err)
		s->cr_mask = old;
	pthread_mutex_unlock(&be->lock);
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
	pthread_mutex_lock(&be->lock);
	old = *flag;
	*flag = enable;
	err = apply(be, vcpu);
	if (err)
		*flag = old;
	pthread_mutex_unlock(&be->lock);
	return err;
}

void bpf_events_session_end(struct bpf_events *be)
{
	if (!be)
		return;
	pthread_mutex_lock(&be->lock);
	for (unsigned i = 0; i < be->e->cfg.max_vcpus; i++) {
		struct bpf_vcpu_state *s = &be->vcpus[i];

		s->cr_mask = 0;
		s->ev_cr = s->ev_xsetbv = s->ev_hc = false;
		__atomic_store_n(&be->shared[i].enabled, 0, __ATOMIC_SEQ_CST);
	}
	detach_all(be);
	pthread_mutex_unlock(&be->lock);
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

void bpf_events_prerun(struct bpf_events *be, struct kvmi_engine_vcpu *vcpu)
{
	(void)be;
	(void)vcpu;
}

void bpf_events_session_end(struct bpf_events *be)
{
	(void)be;
}

#endif
