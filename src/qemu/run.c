/* SPDX-License-Identifier: MIT */
/*
 * run.c - QEMU's vCPUs under the engine.  QEMU's KVM_RUN becomes a loop
 * inside the library: the engine is asked before and after every entry
 * and consumes its own exits (restricted pages, its MSRs, its debug
 * exits); QEMU gets back only exits that are QEMU's, or -EINTR when QEMU
 * kicked the vCPU.
 *
 * Kicks: the engine's kick is our own real-time signal plus
 * run->immediate_exit; QEMU's kick is its SIG_IPI (its handler sets
 * immediate_exit).  QEMU's handler is wrapped (sigaction is interposed)
 * to count the signals a vCPU thread received, so that the loop can tell
 * QEMU's kicks from ours and never swallow one of QEMU's.
 */
#include "kq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine.h"
#include "util.h"

/* QEMU's SIG_IPI on Linux. */
#define KQ_QEMU_SIG_IPI SIGUSR1

static __thread struct kq_vcpu *this_vcpu __attribute__((tls_model("initial-exec")));
static struct sigaction qemu_ipi_action;        /* QEMU's own handler */
static atomic_bool qemu_ipi_wrapped;
static atomic_int stop_pending = -1;            /* enum kvmi_stop_reason to report, or -1 */
static bool report_stop(struct kq_vcpu *c);

static void kick_handler(int sig)
{
	(void)sig;
}

int kq_run_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sa.sa_flags = SA_RESTART;       /* QEMU's other calls on the thread must not see EINTR */
	sigemptyset(&sa.sa_mask);
	kq.kick_signal = SIGRTMAX - 3;
	return sigaction(kq.kick_signal, &sa, NULL) ? -errno : 0;
}

struct kq_vcpu *kq_vcpu_of_fd(int fd)
{
	for (unsigned i = 0; i < kq.nr_vcpus; i++)
		if (kq.vcpus[i] && kq.vcpus[i]->fd == fd)
			return kq.vcpus[i];
	return NULL;
}

long kq_create_vcpu(int vm_fd, unsigned long id)
{
	long fd = kq_sys_ioctl(vm_fd, KVM_CREATE_VCPU, id);
	long size = kq_sys_ioctl(kq.kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	struct kq_vcpu *c;

	if (fd < 0)
		return fd;
	c = calloc(1, sizeof(*c));
	if (!c || size <= 0 || kq.nr_vcpus >= KQ_MAX_VCPUS)
		goto fail;
	c->fd = (int)fd;
	c->idx = kq.nr_vcpus;
	pthread_mutex_init(&c->own, NULL);
	c->run_size = (size_t)size;
	c->run = mmap(NULL, c->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED)
		goto fail;
	c->ev = kvmi_engine_vcpu_add(kq.e, c->idx, c->fd, c->run);
	if (!c->ev) {
		munmap(c->run, c->run_size);
		goto fail;
	}
	kq.vcpus[kq.nr_vcpus] = c;
	__atomic_store_n(&kq.nr_vcpus, kq.nr_vcpus + 1, __ATOMIC_RELEASE);
	return fd;
fail:
	free(c);
	pr_err("vCPU %lu (QEMU's id %lu): cannot introspect it (more vCPUs than -smp announced?)",
	       (unsigned long)kq.nr_vcpus, id);
	kq_disable("a vCPU the engine cannot follow");
	return fd;
}

void kq_kick(void *host, unsigned idx)
{
	struct kq_vcpu *c;

	(void)host;
	if (idx >= __atomic_load_n(&kq.nr_vcpus, __ATOMIC_ACQUIRE))
		return;
	c = kq.vcpus[idx];
	__atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (atomic_load(&c->thread_known))
		pthread_kill(c->thread, kq.kick_signal);
	pthread_mutex_lock(&kq.job_lock);
	kq.job_wake = true;
	pthread_cond_signal(&kq.job_cond);
	pthread_mutex_unlock(&kq.job_lock);
}

/* Jobs of vCPUs whose thread is in QEMU, not in KVM_RUN (parked while the
 * VM is stopped, or between two exits): run here, with the vCPU owned. */
static void *job_thread(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&kq.job_lock);
		while (!kq.job_wake)
			pthread_cond_wait(&kq.job_cond, &kq.job_lock);
		kq.job_wake = false;
		pthread_mutex_unlock(&kq.job_lock);
		for (unsigned i = 0; i < __atomic_load_n(&kq.nr_vcpus, __ATOMIC_ACQUIRE); i++) {
			struct kq_vcpu *c = kq.vcpus[i];

			if (!kvmi_engine_vcpu_has_jobs(c->ev) || pthread_mutex_trylock(&c->own))
				continue;
			pr_debug("vcpu %u: its jobs on the job thread (the thread is in QEMU)", i);
			kvmi_engine_vcpu_run_jobs(c->ev);
			pthread_mutex_unlock(&c->own);
		}
	}
	return NULL;
}

void kq_request_stop(void *host, enum kvmi_stop_reason why)
{
	(void)host;
	atomic_store(&stop_pending, (int)why);
	for (unsigned i = 0; i < __atomic_load_n(&kq.nr_vcpus, __ATOMIC_ACQUIRE); i++)
		kq_kick(NULL, i);
}

/* The engine wants the VM stopped: QEMU learns it as the exit it stops
 * the VM for (a guest crash, or an internal error), once. */
static bool report_stop(struct kq_vcpu *c)
{
	int why = atomic_exchange(&stop_pending, -1);

	if (why < 0)
		return false;
	memset(&c->run->internal, 0, sizeof(c->run->internal));
	if (why == KVMI_STOP_CRASH) {
		c->run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
		c->run->system_event.type = KVM_SYSTEM_EVENT_CRASH;
	} else {
		c->run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
		c->run->internal.suberror = KVM_INTERNAL_ERROR_EMULATION;
	}
	return true;
}

/* The first KVM_RUN of a thread: it is the vCPU's, it takes our kick. */
static void adopt_thread(struct kq_vcpu *c)
{
	sigset_t s;

	this_vcpu = c;
	c->thread = pthread_self();
	sigemptyset(&s);
	sigaddset(&s, kq.kick_signal);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	atomic_store(&c->thread_known, true);
	if (atomic_exchange(&kq.started, true))
		return;
	if (thread_start_blocked(&kq.job_thread, job_thread, NULL) || kvmi_engine_start(kq.e))
		kq_disable("the introspection threads did not start");
}

/* QEMU kicked the vCPU since it called KVM_RUN (or before: it had set
 * immediate_exit itself). */
static bool qemu_kicked(struct kq_vcpu *c)
{
	return c->call_kicked_self || atomic_load(&c->qemu_signals) != c->call_signals;
}

bool kq_wants_thread(void *host, unsigned idx)
{
	(void)host;
	return idx < __atomic_load_n(&kq.nr_vcpus, __ATOMIC_ACQUIRE) && atomic_load(&kq.vcpus[idx]->in_call) &&
	       qemu_kicked(kq.vcpus[idx]);
}

/* One entry: 1 when QEMU must see this exit, 0 to loop. */
static int run_once(struct kq_vcpu *c, long *ret, int *err)
{
	enum kvmi_run_action a = kvmi_engine_pre_run(c->ev);
	enum kvmi_exit_owner o;

	switch (a) {
	case KVMI_RUN_STOP:
		/* a CRASH just now, on this vCPU: QEMU hears it from here */
		if (report_stop(c)) {
			*ret = 0;
			*err = 0;
			return 1;
		}
		c->qemu_regs_valid = false;
		*ret = kq_sys_ioctl(c->fd, KVM_RUN, 0);
		*err = errno;
		return 1;
	case KVMI_RUN_YIELD:            /* QEMU wants its thread: as a kick */
		pr_debug("vcpu %u: back to QEMU from a wait (its kick)", c->idx);
		*ret = -1;
		*err = EINTR;
		return 1;
	case KVMI_RUN_EXIT:             /* the exit left in run is QEMU's */
		*ret = 0;
		*err = 0;
		return 1;
	case KVMI_RUN_FINISH:
	case KVMI_RUN_ENTER:
		break;
	}
	if (a == KVMI_RUN_FINISH || qemu_kicked(c))
		__atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	*ret = kq_sys_ioctl(c->fd, KVM_RUN, 0);
	*err = errno;
	c->qemu_regs_valid = false;     /* the guest may have run */
	o = kvmi_engine_post_run(c->ev, (int)*ret, *err);
	if (o == KVMI_EXIT_YIELD) {
		pr_debug("vcpu %u: back to QEMU from an exit's wait (its kick)", c->idx);
		*ret = -1;
		*err = EINTR;
		return 1;
	}
	if (o == KVMI_EXIT_ENGINE)
		goto ours;
	if (*ret < 0 && (*err == EINTR || *err == EAGAIN) && !qemu_kicked(c))
		goto ours;              /* our kick, a FINISH: not QEMU's business */
	return 1;
ours:
	if (!qemu_kicked(c))
		__atomic_store_n(&c->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	return 0;
}

long kq_vcpu_run(struct kq_vcpu *c)
{
	long ret;
	int err;

	if (!atomic_load(&c->thread_known))
		adopt_thread(c);
	if (atomic_load(&kq.off)) {
		c->qemu_regs_valid = false;
		return kq_sys_ioctl(c->fd, KVM_RUN, 0);
	}
	/* QEMU kicked itself before the call (exit_request): one entry that
	 * returns at once, as without us. */
	pthread_mutex_lock(&c->own);
	c->call_signals = atomic_load(&c->qemu_signals);
	/* Set on entry: QEMU kicked itself (or a kick of ours landed while
	 * the thread was in QEMU: one needless return to QEMU, never a lost
	 * kick of QEMU's). */
	c->call_kicked_self = __atomic_load_n(&c->run->immediate_exit, __ATOMIC_SEQ_CST);
	atomic_store(&c->in_call, true);
	ret = 0;
	err = 0;
	while (!report_stop(c) && !run_once(c, &ret, &err))
		;
	atomic_store(&c->in_call, false);
	pthread_mutex_unlock(&c->own);
	errno = err;
	return ret;
}

/* ---- QEMU's SIG_IPI --------------------------------------------------- */

static void qemu_ipi_trampoline(int sig, siginfo_t *info, void *uc)
{
	struct kq_vcpu *c = this_vcpu;

	if (c)
		atomic_fetch_add(&c->qemu_signals, 1);
	if (qemu_ipi_action.sa_flags & SA_SIGINFO)
		qemu_ipi_action.sa_sigaction(sig, info, uc);
	else if (qemu_ipi_action.sa_handler != SIG_IGN && qemu_ipi_action.sa_handler != SIG_DFL)
		qemu_ipi_action.sa_handler(sig);
}

int kq_wrap_sigaction(int sig, const struct sigaction *act, struct sigaction *old,
		      int (*real)(int, const struct sigaction *, struct sigaction *))
{
	struct sigaction mine;
	bool wrapped = atomic_load(&qemu_ipi_wrapped);
	int ret;

	if (sig != KQ_QEMU_SIG_IPI || !kq.configured)
		return real(sig, act, old);
	if (!act || act->sa_handler == SIG_IGN || act->sa_handler == SIG_DFL) {
		ret = real(sig, act, old);
		if (!ret && old && wrapped)
			*old = qemu_ipi_action;
		if (!ret && act)
			atomic_store(&qemu_ipi_wrapped, false);
		return ret;
	}
	mine = *act;
	mine.sa_flags |= SA_SIGINFO;
	mine.sa_sigaction = qemu_ipi_trampoline;
	if (old && wrapped)
		*old = qemu_ipi_action;
	qemu_ipi_action = *act;
	ret = real(sig, &mine, old && wrapped ? NULL : old);
	if (!ret)
		atomic_store(&qemu_ipi_wrapped, true);
	return ret;
}
