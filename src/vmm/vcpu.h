/* SPDX-License-Identifier: MIT */
/*
 * A vCPU: one thread, one explicit state machine owned by that thread.
 *
 *   CREATED --start--> RUNNING <--pause/resume--> PAUSED
 *                         \--- done / VM stop ---> EXITED
 *
 * Other threads never touch a vCPU's registers; they set a request flag and
 * kick it (signal + immediate_exit), and the vCPU acts on its own thread.
 */
#ifndef KVMI_VM_VCPU_H
#define KVMI_VM_VCPU_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct vm;
struct vcpu;
struct kvm_run;
struct kvm_regs;
struct kvm_sregs;

enum vcpu_state {
	VCPU_CREATED,
	VCPU_RUNNING,
	VCPU_PAUSED,
	VCPU_EXITED,
};

#define VCPU_KICK_SIGNAL SIGUSR1

/*
 * Work another thread wants done on this vCPU's thread (e.g. an
 * introspection command that reads registers).  Jobs run in FIFO order at
 * the top of the run loop, while paused, and while the vCPU waits for an
 * event reply; the poster is woken through the job's own means.
 */
struct vcpu_job {
	struct vcpu_job *next;
	void (*fn)(struct vcpu *vcpu, void *ctx);
	void *ctx;
};

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;

	_Atomic int state;          /* enum vcpu_state; written by the vCPU thread only */
	atomic_bool pause_request;  /* set by anyone, acted on by the vCPU thread */
	atomic_bool in_guest;       /* inside KVM_RUN (see vm_hold_vcpus()) */
	/* This vCPU took the VM's only hold itself and may still run (it
	 * single-steps while the others stay out; see vcpu_held()). */
	atomic_bool hold_exempt;
	bool done;                  /* guest said GUEST_DONE (vCPU thread only) */

	/* Job queue and the condition the vCPU sleeps on while it waits for
	 * jobs or an event reply (under vm->lock). */
	struct vcpu_job *jobs, **jobs_tail;
	bool jobs_closed;           /* the thread has ended: no more jobs */
	pthread_cond_t wake;
	uint64_t nr_exits;
	/* KVM_SYNC_X86_REGS / _SREGS bits of run->s that hold the state of
	 * the last exit (KVM_CAP_SYNC_REGS; vCPU thread only): reading them
	 * saves an ioctl each on the event path. */
	uint32_t sync_valid;
};

int vcpu_init(struct vm *vm, struct vcpu *vcpu, unsigned id);
void vcpu_destroy(struct vcpu *vcpu);
int vcpu_start(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);

/*
 * Registers on the vCPU's own thread.  The getters use the copy KVM left in
 * kvm_run at the last exit when vcpu_sync_regs() asked for one and nothing
 * changed the registers since; the setters keep that rule true.
 */
void vcpu_sync_regs(struct vcpu *vcpu, bool on);  /* for the next KVM_RUNs */
void vcpu_regs_changed(struct vcpu *vcpu);        /* after any other state write */
void vcpu_ran(struct vcpu *vcpu, int kvm_run_ret); /* after every KVM_RUN */
int vcpu_get_regs(struct vcpu *vcpu, struct kvm_regs *r);
int vcpu_get_sregs(struct vcpu *vcpu, struct kvm_sregs *s);
int vcpu_set_regs(struct vcpu *vcpu, const struct kvm_regs *r);
int vcpu_set_sregs(struct vcpu *vcpu, const struct kvm_sregs *s);

/* Makes a running vCPU leave KVM_RUN soon; safe from any thread. */
void vcpu_kick(struct vcpu *vcpu);
/* Must the vCPU stay out of KVM_RUN now?  vm_hold_vcpus() holds every vCPU
 * but one that set hold_exempt while its own hold is the only one. */
bool vcpu_held(struct vcpu *vcpu);
/* With vm->lock held: broadcast wake. */
void vcpu_notify_locked(struct vcpu *vcpu);
void vcpu_pause(struct vcpu *vcpu);    /* asynchronous; the state shows when it took */
void vcpu_resume(struct vcpu *vcpu);
enum vcpu_state vcpu_state(const struct vcpu *vcpu);

/* Queues fn(vcpu, ctx) for the vCPU thread and kicks it; any thread.  The
 * job struct is owned by the caller until fn runs (fn may free it). */
int vcpu_queue_job(struct vcpu *vcpu, struct vcpu_job *job); /* 0 or -EAGAIN */
/* Whether queued jobs will run: the thread is up and has not ended. */
bool vcpu_accepts_jobs(struct vcpu *vcpu);
/* vCPU thread: runs every queued job; returns how many ran. */
unsigned vcpu_run_jobs(struct vcpu *vcpu);
/* Wakes a vCPU sleeping in vcpu_wait_event() or while paused. */
void vcpu_wake(struct vcpu *vcpu);
/*
 * vCPU thread: sleeps until done(ctx) is true (checked under vm->lock), the
 * VM stops, or a job arrives; queued jobs are run while waiting.  Returns
 * false if the VM is stopping.
 */
bool vcpu_wait_event(struct vcpu *vcpu, bool (*done)(void *ctx), void *ctx);

/* Logs the registers of a stopped vCPU (vCPU thread only). */
void vcpu_dump_state(struct vcpu *vcpu, const char *why);

/* Installs the (empty) kick signal handler; once per process. */
int vcpu_signals_init(void);

#endif
