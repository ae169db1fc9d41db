/* SPDX-License-Identifier: MIT */
/*
 * The engine's side of a vCPU: its job queue, the waits that keep serving
 * jobs, the hold that keeps every vCPU out of guest mode while slots
 * change, and the routing of the frontend's pre_run/post_run calls.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bpf_events.h"
#include "regs.h"
#include "util.h"

struct kvmi_engine_vcpu *eng_vcpu(struct kvmi_engine *e, unsigned idx)
{
	return idx < e->cfg.max_vcpus ? e->vcpus[idx] : NULL;
}

struct kvmi_engine_vcpu *kvmi_engine_vcpu_add(struct kvmi_engine *e, unsigned idx, int fd,
					      struct kvm_run *run)
{
	struct kvmi_engine_vcpu *v;

	if (idx >= e->cfg.max_vcpus || e->vcpus[idx])
		return NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->e = e;
	v->idx = idx;
	v->fd = fd;
	v->run = run;
	kvmi_mutex_init(&v->lock, KVMI_RANK_VCPU, "engine vCPU");
	pthread_cond_init(&v->wake, NULL);
	v->jobs_tail = &v->jobs;
	e->vcpus[idx] = v;
	if (atomic_load(&e->nr_vcpus) < idx + 1)
		atomic_store(&e->nr_vcpus, idx + 1);
	return v;
}

void eng_vcpu_free(struct kvmi_engine_vcpu *v)
{
	kvmi_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->wake);
	free(v);
}

void eng_kick(struct kvmi_engine_vcpu *v)
{
	v->e->ops->kick(v->e->host, v->idx);
}

void eng_wake(struct kvmi_engine_vcpu *v)
{
	kvmi_mutex_lock(&v->lock);
	pthread_cond_broadcast(&v->wake);
	kvmi_mutex_unlock(&v->lock);
}

void eng_wake_all(struct kvmi_engine *e)
{
	for (unsigned i = 0; i < atomic_load(&e->nr_vcpus); i++)
		if (e->vcpus[i])
			eng_wake(e->vcpus[i]);
}

void eng_request_stop(struct kvmi_engine *e, enum kvmi_stop_reason why)
{
	e->ops->request_stop(e->host, why);
	kvmi_engine_vm_stopping(e);
}

void kvmi_engine_vm_stopping(struct kvmi_engine *e)
{
	atomic_store(&e->stopping, true);
	eng_wake_all(e);
}

/* ---- jobs ------------------------------------------------------------- */

int eng_queue_job(struct kvmi_engine_vcpu *v, struct vcpu_job *job)
{
	job->next = NULL;
	kvmi_mutex_lock(&v->lock);
	if (v->gone) {
		kvmi_mutex_unlock(&v->lock);
		return -EAGAIN;
	}
	*v->jobs_tail = job;
	v->jobs_tail = &job->next;
	atomic_store(&v->has_jobs, true);
	pthread_cond_broadcast(&v->wake);
	kvmi_mutex_unlock(&v->lock);
	eng_kick(v);
	return 0;
}

bool kvmi_engine_vcpu_has_jobs(struct kvmi_engine_vcpu *v)
{
	return atomic_load(&v->has_jobs);
}

unsigned kvmi_engine_vcpu_run_jobs(struct kvmi_engine_vcpu *v)
{
	unsigned n = 0;

	for (;;) {
		struct vcpu_job *list;

		kvmi_mutex_lock(&v->lock);
		list = v->jobs;
		v->jobs = NULL;
		v->jobs_tail = &v->jobs;
		atomic_store(&v->has_jobs, false);
		kvmi_mutex_unlock(&v->lock);
		if (!list)
			return n;
		while (list) {
			struct vcpu_job *j = list;

			list = j->next;
			j->fn(v, j->ctx); /* may free j */
			n++;
		}
	}
}

void kvmi_engine_vcpu_gone(struct kvmi_engine_vcpu *v)
{
	kvmi_mutex_lock(&v->lock);
	v->gone = true;
	kvmi_mutex_unlock(&v->lock);
	/* Whoever queued work waits for its answer: run what is left. */
	kvmi_engine_vcpu_run_jobs(v);
}

/* The frontend wants the thread back, and this wait may give it. */
static bool yield_now(struct kvmi_engine_vcpu *v)
{
	struct kvmi_engine *e = v->e;

	if (!v->may_yield || !e->ops->wants_thread || !e->ops->wants_thread(e->host, v->idx))
		return false;
	v->yielded = true;
	return true;
}

static const struct timespec *deadline_ms(long ms, struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += ms * 1000000;
	ts->tv_sec += ts->tv_nsec / 1000000000;
	ts->tv_nsec %= 1000000000;
	return ts;
}

bool eng_wait(struct kvmi_engine_vcpu *v, bool (*done)(void *ctx), void *ctx)
{
	struct kvmi_engine *e = v->e;
	bool poll = v->may_yield && e->ops->wants_thread;
	struct timespec ts;

	for (;;) {
		bool stop, finished;

		kvmi_mutex_lock(&v->lock);
		while (!atomic_load(&e->stopping) && !v->jobs && !done(ctx)) {
			if (!poll) {
				kvmi_cond_wait(&v->wake, &v->lock);
				continue;
			}
			/* the frontend's wish is not a wake-up: look every 10 ms */
			kvmi_cond_timedwait(&v->wake, &v->lock, deadline_ms(10, &ts));
			if (yield_now(v))
				break;
		}
		stop = atomic_load(&e->stopping) || v->yielded;
		finished = !stop && done(ctx);
		kvmi_mutex_unlock(&v->lock);
		if (stop)
			return false;
		if (finished)
			return true;
		kvmi_engine_vcpu_run_jobs(v);
	}
}

/* ---- holding every vCPU out of guest mode ------------------------------ */

static bool held(struct kvmi_engine_vcpu *v)
{
	unsigned hold = atomic_load(&v->e->hold);

	return hold > 1 || (hold == 1 && !atomic_load(&v->hold_exempt));
}

static bool not_held(void *ctx)
{
	return !held(ctx);
}

void kvmi_engine_hold(struct kvmi_engine *e)
{
	atomic_fetch_add(&e->hold, 1);
	for (unsigned i = 0; i < atomic_load(&e->nr_vcpus); i++)
		if (e->vcpus[i])
			eng_kick(e->vcpus[i]);
	/* A vCPU sets in_guest before it checks hold, we set hold before we
	 * check in_guest: one of us sees the other. */
	for (unsigned i = 0; i < atomic_load(&e->nr_vcpus); i++) {
		struct kvmi_engine_vcpu *v = e->vcpus[i];

		while (v && atomic_load(&v->in_guest) && held(v)) {
			eng_kick(v);
			usleep(20);
		}
	}
}

void kvmi_engine_release(struct kvmi_engine *e)
{
	atomic_fetch_sub(&e->hold, 1);
	eng_wake_all(e);
}

/* ---- the frontend's run loop --------------------------------------------- */

/* The exit KVM_RUN left in v->run, to whom it belongs. */
static enum kvmi_exit_owner dispatch_exit(struct kvmi_engine_vcpu *v, int ret, int err)
{
	if (v->finish.active)
		return eng_finish_exit(v, ret, err);
	if (ret < 0)
		return KVMI_EXIT_FRONTEND;
	switch (v->run->exit_reason) {
	case KVM_EXIT_MMIO:
		return eng_pf_exit(v);
	case KVM_EXIT_INTERNAL_ERROR:
		/* KVM failed to emulate the instruction whose page walk the
		 * page-walk hook reported: the walk event comes first, and
		 * the instruction runs again after it (ptwalk.c). */
		if (bpf_events_walk_pending(v->e->bpf, v))
			return KVMI_EXIT_ENGINE;
		if (v->run->internal.suberror != KVM_INTERNAL_ERROR_EMULATION)
			return KVMI_EXIT_FRONTEND;
		return eng_emulation_failure(v);
	case KVM_EXIT_X86_WRMSR:
	case KVM_EXIT_X86_RDMSR:
		return eng_msr_exit(v);
	case KVM_EXIT_DEBUG:
		return eng_debug_exit(v);
	default:
		return KVMI_EXIT_FRONTEND;
	}
}

/* Handles the exit with may_yield: YIELD when its event was suspended. */
static enum kvmi_exit_owner handle_exit(struct kvmi_engine_vcpu *v, int ret, int err)
{
	enum kvmi_exit_owner o;

	v->may_yield = true;
	o = dispatch_exit(v, ret, err);
	if (v->suspended && !v->yielded) {
		/* handled again, the exit did not raise its event (the tool
		 * lifted the restriction meanwhile): take the reply anyway */
		struct kvmi_event_result res;

		if (kvmi_vcpu_event_resume(v->e->srv, v->idx, NULL, 0, &res) != -EINTR)
			v->suspended = false;
	}
	v->may_yield = false;
	if (!v->suspended)
		return o;
	v->suspended_exit = true;
	v->exit_ret = ret;
	v->exit_err = err;
	return KVMI_EXIT_YIELD;
}

enum kvmi_run_action kvmi_engine_pre_run(struct kvmi_engine_vcpu *v)
{
	struct kvmi_engine *e = v->e;

	if (!v->tid) {
		v->tid = (pid_t)syscall(SYS_gettid);
		bpf_thread_init();
		bpf_events_vcpu_start(e->bpf, v);
	}
	v->yielded = false;
	if (v->suspended_exit) {
		/* the exit the thread left for the frontend: handle it again */
		enum kvmi_exit_owner o = handle_exit(v, v->exit_ret, v->exit_err);

		if (o == KVMI_EXIT_YIELD)
			return KVMI_RUN_YIELD;
		v->suspended_exit = false;
		if (o == KVMI_EXIT_FRONTEND)
			return KVMI_RUN_EXIT;
	}
	if (v->finish.active) {
		/* Nothing may happen between the exit and its completion. */
		atomic_store(&v->in_guest, true);
		return KVMI_RUN_FINISH;
	}
	for (;;) {
		bool ok;

		kvmi_engine_vcpu_run_jobs(v);
		if (atomic_load(&e->stopping))
			return KVMI_RUN_STOP;
		if (eng_resume_suspended(v))
			return KVMI_RUN_YIELD;
		/* While a tool is there, every exit may become an event: let
		 * KVM hand over the registers with the exit. */
		eng_sync_regs(v, kvmi_server_live(e->srv));
		eng_debug_prerun(v);
		eng_raise_pending(v);
		if (atomic_load(&e->stopping))
			return KVMI_RUN_STOP;
		if (v->yielded)
			return KVMI_RUN_YIELD;
		atomic_store(&v->in_guest, true);
		if (!held(v) && !atomic_load(&v->has_jobs))
			return KVMI_RUN_ENTER;
		atomic_store(&v->in_guest, false);
		if (!held(v))
			continue;
		v->may_yield = true;
		ok = eng_wait(v, not_held, v);
		v->may_yield = false;
		if (!ok)
			return v->yielded ? KVMI_RUN_YIELD : KVMI_RUN_STOP;
	}
}

enum kvmi_exit_owner kvmi_engine_post_run(struct kvmi_engine_vcpu *v, int ret, int err)
{
	eng_regs_ran(v, ret, err);
	atomic_store(&v->in_guest, false);
	v->yielded = false;
	return handle_exit(v, ret, err);
}
