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
struct kvmi_engine_vcpu;

enum vcpu_state {
	VCPU_CREATED,
	VCPU_RUNNING,
	VCPU_PAUSED,
	VCPU_EXITED,
};

#define VCPU_KICK_SIGNAL SIGUSR1

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	atomic_bool thread_started;  /* set after pthread_create (thread is valid) */

	_Atomic int state;          /* enum vcpu_state; written by the vCPU thread only */
	atomic_bool pause_request;  /* set by anyone, acted on by the vCPU thread */
	bool done;                  /* guest said GUEST_DONE (vCPU thread only) */
	/* The condition the vCPU sleeps on while paused or done (vm->lock). */
	pthread_cond_t wake;
	uint64_t nr_exits;
	/* The introspection engine's side of this vCPU; NULL without one. */
	struct kvmi_engine_vcpu *intro;
};

int vcpu_init(struct vm *vm, struct vcpu *vcpu, unsigned id);
void vcpu_destroy(struct vcpu *vcpu);
int vcpu_start(struct vcpu *vcpu);
void vcpu_join(struct vcpu *vcpu);

/* Makes a running vCPU leave KVM_RUN soon; safe from any thread. */
void vcpu_kick(struct vcpu *vcpu);
/* With vm->lock held: broadcast wake. */
void vcpu_notify_locked(struct vcpu *vcpu);
void vcpu_pause(struct vcpu *vcpu);    /* asynchronous; the state shows when it took */
void vcpu_resume(struct vcpu *vcpu);
enum vcpu_state vcpu_state(const struct vcpu *vcpu);

/* Wakes a vCPU parked while paused or done (it then runs the engine's
 * jobs, if any). */
void vcpu_wake(struct vcpu *vcpu);

/* Logs the registers of a stopped vCPU (vCPU thread only). */
void vcpu_dump_state(struct vcpu *vcpu, const char *why);

/* Installs the (empty) kick signal handler; once per process. */
int vcpu_signals_init(void);

#endif
