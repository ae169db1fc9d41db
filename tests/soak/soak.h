/* SPDX-License-Identifier: MIT */
/*
 * The fault-injection soak (make soak): shared declarations.
 *   soak.c   options, the time loop, VM lifetimes, the summary
 *   vm.c     kvmi-vm as a child process: start, stop, kill, its log
 *   chaos.c  one round's tool session in a forked process, cut at random
 *   ops.c    the random operations of a chaos session
 *   check.c  the fresh session after each round: nothing survived, the
 *            guest runs, the next session works
 */
#ifndef KVMI_SOAK_H
#define KVMI_SOAK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <kvmi/kvmi.h>

#include "soak_abi.h"

/* ---- seeded PRNG (splitmix64) ---- */
struct rng {
	uint64_t s;
};

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline unsigned rng_below(struct rng *r, unsigned n)
{
	return (unsigned)(rng_next(r) % n);
}

/* True with probability pct percent. */
static inline bool rng_pct(struct rng *r, unsigned pct)
{
	return rng_below(r, 100) < pct;
}

/* ---- what this host's kvmi-vm offers (CHECK_EVENT) ---- */
struct soak_caps {
	bool msr, singlestep, breakpoint;
};

/* ---- one kvmi-vm and its listener ---- */
struct soak_vm {
	unsigned index;                 /* VM lifetimes so far */
	unsigned vcpus;
	pid_t pid;
	struct kvmi_listener *l;
	struct soak_caps caps;
	bool vsock;                     /* AF_VSOCK over loopback, not unix */
	char sock[256], addr[272], vmm_addr[272], log[256];
};

/* vm.c */
int soak_vm_start(struct soak_vm *vm, const char *vmm, const char *elf, const char *dir,
		  unsigned timeout_s);
/* SIGTERM, then the exit status (128 + signal when killed); -1 after
 * timeout_s (the process is then killed). */
int soak_vm_stop(struct soak_vm *vm, int timeout_s);
void soak_vm_kill(struct soak_vm *vm);
/* True while the kvmi-vm process has not exited; *status otherwise. */
bool soak_vm_alive(struct soak_vm *vm, int *status);
/* Every informational line starts with this ("soak: "; "# soak: " with
 * --tap, so that the lines are TAP comments). */
extern const char *soak_prefix;
void soak_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the last `last` lines of a file, each after soak_prefix and prefix. */
void soak_tail(const char *path, unsigned last, const char *prefix);
/* Exit status of pid (128 + signal), or -1 after timeout_ms (not killed). */
int soak_wait_pid(pid_t pid, int timeout_ms);
/* Kills every child still registered (exit paths, signals). */
void soak_kill_children(void);
void soak_register_child(pid_t pid);
void soak_forget_child(pid_t pid);

/* ---- a round's outcome ---- */
#define SOAK_MSG 512
struct soak_result {
	unsigned failures;
	char what[SOAK_MSG];            /* the first failure */
	char desc[160];                 /* what the round did (chaos.c) */
};

void soak_fail(struct soak_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Answers an event with its event's reply struct (PF, MSR) filled so that
 * the guest's own access goes on. */
int soak_reply(struct kvmi_dom *dom, const struct kvmi_event_msg *ev, uint8_t action);
/* A fresh session from the listener within timeout_ms. */
int soak_accept(struct soak_vm *vm, int timeout_ms, struct kvmi_dom **dom);

/* check.c: the counters of every vCPU. */
struct soak_counters {
	struct soak_vcpu v[SOAK_MAX_VCPUS];
};
/* The session after a round (or the first one of a VM, with first=true:
 * waits for the guest to start and fills vm->caps). */
void soak_check(struct soak_vm *vm, bool first, struct soak_result *res);

/* chaos.c: how a round's session ends. */
enum soak_cut {
	CUT_CLOSE,      /* the library's close (FIN) */
	CUT_RST,        /* SO_LINGER 0, then close: RST */
	CUT_KILL,       /* the tool process kills itself at a chosen point */
	CUT_KILL_ASYNC, /* the soak kills the tool process after a random delay */
	CUT_MAX,
};

/* One round: fork a tool process that runs a random session from
 * round_seed and cuts it; its trace goes to trace_path. */
void soak_chaos_round(struct soak_vm *vm, uint64_t round_seed, const char *trace_path,
		      struct soak_result *res);

/* ops.c: the random session itself, in the tool process. */
struct chaos {
	struct kvmi_dom *dom;
	struct soak_vm *vm;
	struct rng rng;
	FILE *trace;
	unsigned timeouts;              /* commands that timed out: the VMM hung */
};
/* One random operation; its name and result go to the trace. */
void chaos_op(struct chaos *c);
/* A vCPU command written straight to the socket, its reply never read:
 * the job is queued at the VMM when the cut comes. */
void chaos_raw_vcpu_command(struct chaos *c);
void chaos_trace(struct chaos *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
