/* SPDX-License-Identifier: MIT */
/*
 * bpf_selftest.c - the start-up self-test of the BPF hooks: a scratch VM
 * with one vCPU writes CR0, CR4, CR3, XCR0 and makes the agent hypercall,
 * and a paged one walks a write-protected page directory; a hook counts as
 * available only if it fired there.
 */
#include "kvm_ioctl.h"
#include "internal.h"

#if KVMI_HAVE_BPF

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "bpf_events.h"
#include "bpf_internal.h"
#include "probe.h"
#include "util.h"


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

struct scratch {
	int vmfd, vcpufd, run_size;
	struct kvm_run *run;
	uint8_t *mem;
};

#define SCRATCH_MEM 0x10000ul

static void scratch_destroy(struct scratch *sc)
{
	if (sc->run != MAP_FAILED)
		munmap(sc->run, (size_t)sc->run_size);
	if (sc->vcpufd >= 0)
		close(sc->vcpufd);
	if (sc->mem != MAP_FAILED)
		munmap(sc->mem, SCRATCH_MEM);
	if (sc->vmfd >= 0)
		close(sc->vmfd);
}

/* Real mode, CS base 0, the code at 0x1000.  0 or -1. */
static int scratch_vcpu_state(const struct kvmi_engine_config *cfg, struct scratch *sc)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	bool xsave = cfg->cpuid && kvm_ioctl(sc->vcpufd, KVM_SET_CPUID2, cfg->cpuid) == 0 && cpuid_has_xsave(cfg->cpuid);

	if (kvm_ioctl(sc->vcpufd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (xsave)
		sregs.cr4 |= 1u << 18; /* OSXSAVE */
	if (kvm_ioctl(sc->vcpufd, KVM_SET_SREGS, &sregs) < 0 && xsave) {
		xsave = false;
		sregs.cr4 &= ~(1ull << 18);
		if (kvm_ioctl(sc->vcpufd, KVM_SET_SREGS, &sregs) < 0)
			return -1;
	}
	selftest_code(sc->mem + 0x1000, xsave, module_param_on("/sys/module/kvm/parameters/force_emulation_prefix"),
		      host_is_amd());
	return kvm_ioctl(sc->vcpufd, KVM_SET_REGS, &regs) < 0 ? -1 : 0;
}

/* The scratch VM: 64 KiB of RAM, one vCPU.  0 or -1. */
static int scratch_create(const struct kvmi_engine_config *cfg, struct scratch *sc)
{
	struct kvm_userspace_memory_region region = { .slot = 0, .memory_size = SCRATCH_MEM };

	sc->vcpufd = -1;
	sc->run = MAP_FAILED;
	sc->mem = MAP_FAILED;
	sc->vmfd = kvm_ioctl(cfg->kvm_fd, KVM_CREATE_VM, 0);
	if (sc->vmfd < 0)
		return -1;
	sc->run_size = kvm_ioctl(cfg->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	sc->mem = mmap(NULL, SCRATCH_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sc->run_size <= 0 || sc->mem == MAP_FAILED)
		return -1;
	kvm_ioctl(sc->vmfd, KVM_SET_TSS_ADDR, 0xfffbd000ul); /* VMX real mode; AMD ignores it */
	region.userspace_addr = (uintptr_t)sc->mem;
	if (kvm_ioctl(sc->vmfd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return -1;
	sc->vcpufd = kvm_ioctl(sc->vmfd, KVM_CREATE_VCPU, 0);
	if (sc->vcpufd < 0)
		return -1;
	sc->run = mmap(NULL, (size_t)sc->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, sc->vcpufd, 0);
	if (sc->run == MAP_FAILED)
		return -1;
	return scratch_vcpu_state(cfg, sc);
}

/* Runs the scratch vCPU to its HLT (or the timeout): the stops land after
 * each watched instruction, so it simply runs on after every -EINTR. */
static void scratch_run(struct scratch *sc)
{
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int ret = kvm_ioctl(sc->vcpufd, KVM_RUN, 0);

		clock_gettime(CLOCK_MONOTONIC, &t);
		if (ret == 0 && sc->run->exit_reason != KVM_EXIT_INTR)
			break; /* HLT, or anything else: done either way */
		if (ret < 0 && errno != EINTR && errno != EAGAIN)
			break;
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > SELFTEST_TIMEOUT_MS)
			break;
	}
}

/*
 * The page-walk hook's test: a scratch VM in 32-bit paged mode whose page
 * directory (gfn 3, one 4 MiB page at 0) lies in a read-only slot and is
 * in kvmi_wp_gfns; the vCPU executes HLT at 0x1000.  Under nested paging
 * the fetch's walk faults on gfn 3 and the hook fires; with shadow paging
 * KVM walks in software and it does not (nothing to report there).
 */
#define WALK_PD_GFN 3ull

static int walk_slot(int vmfd, uint32_t id, uint64_t gpa, uint64_t size, uint8_t *mem, bool ro)
{
	struct kvm_userspace_memory_region r = {
		.slot = id, .flags = ro ? KVM_MEM_READONLY : 0, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = (uintptr_t)(mem + gpa),
	};

	return kvm_ioctl(vmfd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -1 : 0;
}

/* The paged scratch VM of the page-walk test.  0 or -1. */
static int walk_scratch_create(const struct kvmi_engine_config *cfg, struct scratch *sc)
{
	uint64_t pd = WALK_PD_GFN << 12;
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	struct kvm_sregs sregs;

	sc->vcpufd = -1;
	sc->run = MAP_FAILED;
	sc->mem = mmap(NULL, SCRATCH_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	sc->vmfd = kvm_ioctl(cfg->kvm_fd, KVM_CREATE_VM, 0);
	sc->run_size = kvm_ioctl(cfg->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sc->vmfd < 0 || sc->mem == MAP_FAILED || sc->run_size <= 0)
		return -1;
	kvm_ioctl(sc->vmfd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	((uint32_t *)(sc->mem + pd))[0] = 0x83;         /* P RW PS: 4 MiB at 0 */
	sc->mem[0x1000] = 0xf4;                         /* hlt */
	if (walk_slot(sc->vmfd, 0, 0, pd, sc->mem, false) || walk_slot(sc->vmfd, 1, pd, 0x1000, sc->mem, true) ||
	    walk_slot(sc->vmfd, 2, pd + 0x1000, SCRATCH_MEM - pd - 0x1000, sc->mem, false))
		return -1;
	sc->vcpufd = kvm_ioctl(sc->vmfd, KVM_CREATE_VCPU, 0);
	if (sc->vcpufd < 0 || kvm_ioctl(sc->vcpufd, KVM_GET_SREGS, &sregs) < 0)
		return -1;
	sc->run = mmap(NULL, (size_t)sc->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, sc->vcpufd, 0);
	if (sc->run == MAP_FAILED)
		return -1;
	kvmi_probe_segment(&sregs.cs, 8, 0xb, 0);
	kvmi_probe_segment(&sregs.ds, 16, 0x3, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr3 = pd;
	sregs.cr4 = 1u << 4;                            /* PSE */
	sregs.cr0 = 0x80000011u;                        /* PG ET PE */
	sregs.efer = 0;
	if (kvm_ioctl(sc->vcpufd, KVM_SET_SREGS, &sregs) < 0)
		return -1;
	return kvm_ioctl(sc->vcpufd, KVM_SET_REGS, &regs) < 0 ? -1 : 0;
}

/* On the self-test thread, registered as vCPU 0: KVMI_HOOK_PTWALK if the
 * hook fired at the page directory. */
static unsigned walk_selftest(struct bpf_events *be)
{
	__u64 key = WALK_PD_GFN;
	__u32 one = 1;
	unsigned fired = 0;
	struct scratch sc;

	if (!be->links[PTWALK_HOOK])
		return 0;
	if (walk_scratch_create(&be->e->cfg, &sc) == 0 && bpf_map_update_elem(be->wp_fd, &key, &one, BPF_ANY) == 0) {
		__atomic_store_n(&be->shared[0].pending, 0, __ATOMIC_SEQ_CST);
		scratch_run(&sc);
		fired = __atomic_exchange_n(&be->shared[0].pending, 0, __ATOMIC_SEQ_CST) & KVMI_HOOK_PTWALK;
		if (fired && (be->shared[0].walk_gpa >> 12) != WALK_PD_GFN)
			fired = 0;
		bpf_map_delete_elem(be->wp_fd, &key);
	}
	scratch_destroy(&sc);
	return fired;
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
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = KVMI_BPF_SIGNAL };
	struct itimerspec its = { .it_value.tv_nsec = 200 * 1000000L, .it_interval.tv_nsec = 200 * 1000000L };
	struct scratch sc;
	timer_t timer;
	bool have_timer = false;

	st->why = "cannot create the scratch VM";
	if (scratch_create(&be->e->cfg, &sc))
		goto out;
	/* A watchdog: some software hypervisors never come back from a
	 * hypercall at ring 0; the timer's signal ends KVM_RUN (this thread
	 * started with every signal blocked: let that one through). */
	bpf_thread_init();
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid /* glibc < 2.35 */
#endif
	sev.sigev_notify_thread_id = bpf_my_tid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0) {
		have_timer = true;
		timer_settime(timer, 0, &its, NULL);
	}
	if (bpf_register_thread(be, 0, bpf_my_tid()))
		goto out;
	__atomic_store_n(&be->shared[0].enabled, KVMI_HOOK_ALL, __ATOMIC_SEQ_CST);
	st->why = NULL;
	scratch_run(&sc);
	__atomic_store_n(&be->shared[0].enabled, 0, __ATOMIC_SEQ_CST);
	st->fired = __atomic_exchange_n(&be->shared[0].pending, 0, __ATOMIC_SEQ_CST) & ~KVMI_HOOK_PTWALK;
	st->fired |= walk_selftest(be);
	be->shared[0].fired = 0;
	bpf_unregister_thread(be, bpf_my_tid());
out:
	if (have_timer)
		timer_delete(timer);
	scratch_destroy(&sc);
	return NULL;
}

/* On a thread of its own, which takes the stop signal (the caller's
 * signal mask stays as it is). */
unsigned bpf_selftest(struct bpf_events *be, const char **why)
{
	struct selftest st = { .be = be };
	pthread_t thr;

	if (thread_start_blocked(&thr, selftest_thread, &st) == 0)
		pthread_join(thr, NULL);
	else
		st.why = "cannot start the self-test thread";
	*why = st.why;
	return st.fired;
}

/* What the administrator may want to know when hooks are missing. */
void bpf_host_notes(char *buf, size_t len)
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

#endif /* KVMI_HAVE_BPF */
