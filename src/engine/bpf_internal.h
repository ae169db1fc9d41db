/* SPDX-License-Identifier: MIT */
/*
 * bpf_internal.h - what bpf_events.c (the events) and bpf_selftest.c (the
 * start-up self-test) share.  Only built with BPF support.
 */
#ifndef KVMI_ENGINE_BPF_INTERNAL_H
#define KVMI_ENGINE_BPF_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bpf/kvmi_hooks.h"
#include "lockorder.h"

struct bpf_object;
struct bpf_program;
struct bpf_link;
struct kvmi_engine;

#define NR_HOOKS 6
#define PTWALK_HOOK 5                   /* hook_defs[] index of KVMI_HOOK_PTWALK */
#define SELFTEST_TIMEOUT_MS 1000
#define KVM_ENOSYS_RESULT ((uint64_t)-1000)   /* -KVM_ENOSYS, what KVM wrote into RAX */

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
	int wp_fd;                      /* kvmi_wp_gfns */
	size_t wp_count;                /* gfns in it (under lock) */
	struct kvmi_bpf_vcpu *shared;   /* mmap of kvmi_vcpus */
	size_t shared_len;
	unsigned avail;                 /* KVMI_HOOK_*: this host delivers them */
	struct kvmi_mutex lock;         /* links, the vCPUs' wishes */
	struct bpf_vcpu_state *vcpus;
};

pid_t bpf_my_tid(void);
/* The calling thread's stops go to BPF map entry idx. */
int bpf_register_thread(struct bpf_events *be, unsigned idx, pid_t tid);
void bpf_unregister_thread(struct bpf_events *be, pid_t tid);

/* Runs the scratch VM with every hook enabled, then (if its hook is
 * attached) a paged scratch VM whose page directory is write-protected;
 * the KVMI_HOOK_* bits that fired, and *why when the VM could not run. */
unsigned bpf_selftest(struct bpf_events *be, const char **why);
/* What an administrator may want to know when hooks are missing. */
void bpf_host_notes(char *buf, size_t len);

#endif
