/* SPDX-License-Identifier: MIT */
/*
 * internal.h - the engine's state and the functions its files share.
 * Frontends use engine.h only.
 *
 * Files, one responsibility each:
 *   engine.c    creation, capabilities, the connection thread, sessions
 *   vcpu.c      per-vCPU jobs, waits, holds; pre_run/post_run routing
 *   raise.c     the one path that raises an event; TRAP, CREATE_VCPU, pauses
 *   memory.c    RAM regions, their slot layout, guest memory access, maps
 *   pagetrack.c the rights a tool set per page and the layout they need
 *   pf.c        accesses that exit because of tracking: PF read/write events
 *   exec.c      fetches from execute-protected pages: PF exec events, steps
 *   msr.c       MSR events, the merged MSR filter
 *   debug.c     single-step, breakpoints, the merged guest-debug state
 *   bpf_events.c CR/XSETBV/HYPERCALL through BPF (bpf_selftest.c: start-up test)
 *   ptwalk.c    guest page walks through write-protected pages (nested paging)
 *   regs.c      vCPU state in wire form through KVM ioctls
 *   commands.c  the server's backend ops
 *   probe.c     start-up probes: the int3 path, nested paging
 */
#ifndef KVMI_ENGINE_INTERNAL_H
#define KVMI_ENGINE_INTERNAL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>

#include "engine.h"
#include "lockorder.h"
#include "pagetrack.h"
#include "probe.h"

#define MSR_RANGE_LEN 0x2000u   /* CONTROL_MSR: 0..0x1fff and 0xc0000000..0xc0001fff */
#define MSR_HIGH_BASE 0xc0000000u
#define RFLAGS_TF     (1ull << 8)

struct bpf_events;
struct pause_ack;

struct vcpu_job {
	struct vcpu_job *next;
	void (*fn)(struct kvmi_engine_vcpu *v, void *ctx);
	void *ctx;
};

/* A RETRY of a load being completed without the guest running on. */
struct finish_state {
	bool active;
	unsigned rounds;
	struct kvm_regs regs;           /* put back once KVM is done */
};

struct kvmi_engine_vcpu {
	struct kvmi_engine *e;
	unsigned idx;
	int fd;
	pid_t tid;                      /* the thread that runs KVM_RUN (first pre_run) */
	struct kvm_run *run;

	/* Job queue and the wait condition (rank KVMI_RANK_VCPU). */
	struct kvmi_mutex lock;
	pthread_cond_t wake;
	struct vcpu_job *jobs, **jobs_tail;
	bool gone;                      /* the thread left its loop */
	atomic_bool has_jobs;

	atomic_bool in_guest;           /* between pre_run ENTER/FINISH and post_run */
	/* This vCPU holds the others out while it single-steps (exec.c). */
	atomic_bool hold_exempt;
	/* KVM_SYNC_X86_REGS / _SREGS bits of run->s valid since the last exit. */
	uint32_t sync_valid;
	struct finish_state finish;

	/* vCPU thread only, unless noted. */
	bool created;                   /* CREATE_VCPU handled */
	/* Yielding (host->wants_thread): a wait where the frontend may take
	 * the thread back (pre-run waits: holds, --introspector-wait, events
	 * without a reply part), whether it did, and an event left in flight. */
	bool may_yield, yielded, suspended;
	unsigned suspended_event;
	/* the suspended event came from an exit: the exit is handled again
	 * (with KVM_RUN's result then) before the next entry */
	bool suspended_exit;
	int exit_ret, exit_err;
	bool trap_pending;              /* an injected exception awaits its TRAP */
	bool singlestep;                /* CONTROL_SINGLESTEP */
	atomic_bool tool_left;          /* drop single-step/breakpoints before the next entry */
	bool rep_complete;              /* no more PF events for the instruction at ... */
	uint64_t rep_rip;
	bool breakpoints;               /* BREAKPOINT enabled */
	struct kvm_guest_debug host_dbg; /* the frontend's own guest-debug state */
	/* An execute step (exec.c); the page it opened is the engine's
	 * (step_vcpu, step_gfn, step_orig). */
	bool exec_step;
	uint64_t exec_rip;              /* of the stepped instruction */
	bool exec_tf;
	uint64_t failed_rip;
	struct kvm_segment exec_cs, exec_ss;
	/* MSRs whose writes this vCPU reports (under msr_lock). */
	uint8_t msr_lo[MSR_RANGE_LEN / 8], msr_hi[MSR_RANGE_LEN / 8];
};

struct ram_region {
	struct kvmi_ram_region r;
	/* Current slot layout (page tracking splits it) and the kernel slot
	 * id of each segment (UINT32_MAX: hole).  Under pt_lock. */
	struct pt_segment *layout;
	uint32_t *slot_ids;
	size_t nr_layout;
};

struct kvmi_engine {
	struct kvmi_engine_config cfg;
	const struct kvmi_host_ops *ops;
	void *host;
	/* The server's handle on us (its ops take a struct kvmi_backend). */
	struct kvmi_backend {
		struct kvmi_engine *e;
	} backend;
	struct kvmi_server *srv;
	pthread_t thread;
	bool thread_started;
	uint8_t *key;

	struct kvmi_engine_vcpu **vcpus;  /* [max_vcpus] */
	atomic_uint nr_vcpus;             /* highest index added + 1 */
	atomic_bool stopping;
	atomic_uint hold;                 /* > 0: vCPUs stay out of KVM_RUN */

	/* Host capabilities (fixed after create). */
	bool have_sync_regs;
	bool have_msr_filter;
	bool have_singlestep;
	bool have_blockirq;
	bool exit_on_emulation_failure;
	enum kvmi_int3_path bp_path;
	struct bpf_events *bpf;
	enum kvmi_nested_paging npt;
	/* Guest page walks through write-protected pages (ptwalk.c): they
	 * reach the tool, or cannot happen (no nested paging); else the guard
	 * refuses to write-protect page tables in use. */
	bool ptwalk_ok, ptwalk_guard;

	/* Page restrictions (view 0), the regions and their layouts. */
	struct kvmi_rwlock pt_lock;
	struct pagetrack pt;
	struct ram_region *regions;
	unsigned nr_regions;
	/* KVM_SET_USER_MEMORY_REGION calls asked of the frontend, and the
	 * time they took (pt_lock, for the debug log). */
	unsigned long slot_ioctls;
	uint64_t slot_ioctl_ns;
	/* The page an execute step opened and its real rights (pt_lock).
	 * step_vcpu < 0: no opening pending; the step's end restores
	 * step_orig only while step_vcpu still names it.  Whatever sets the
	 * page's rights meanwhile (SET_PAGE_ACCESS of that page, the end of
	 * the session) supersedes the opening: eng_step_superseded(). */
	int step_vcpu;
	uint64_t step_gfn;
	uint8_t step_orig;
	atomic_int stepper;               /* vCPU in an execute step, or -1 */

	/* MSR interception (msr_lock). */
	struct kvmi_mutex msr_lock;
	struct kvm_msr_filter *host_filter; /* the frontend's, NULL: none */
	uint8_t *filter_bits;             /* the merged filter's bitmaps */

	/* PAUSE_VCPU acknowledgements armed, not waited for yet (commands.c;
	 * introspection thread only). */
	struct pause_ack *pause_acks;

	atomic_bool in_session;
	atomic_uint sessions;
	struct kvmi_map_tokens tokens;    /* introspection thread */
};

/* vcpu.c */
struct kvmi_engine_vcpu *eng_vcpu(struct kvmi_engine *e, unsigned idx);
int eng_queue_job(struct kvmi_engine_vcpu *v, struct vcpu_job *job);
void eng_wake(struct kvmi_engine_vcpu *v);
void eng_wake_all(struct kvmi_engine *e);
void eng_kick(struct kvmi_engine_vcpu *v);
/* Sleeps until done(ctx), running jobs; false when the VM stops. */
bool eng_wait(struct kvmi_engine_vcpu *v, bool (*done)(void *ctx), void *ctx);
void eng_request_stop(struct kvmi_engine *e, enum kvmi_stop_reason why);

/* raise.c: the one way to raise an event. */
enum kvmi_outcome {
	KVMI_NO_TOOL,           /* not enabled, nobody connected, or the tool left */
	KVMI_CONTINUE,
	KVMI_RETRY,
	KVMI_CRASH,             /* handled: the VM is stopping */
	KVMI_SUSPENDED,         /* the frontend took the thread back; the event
				 * waits on at the next pre_run (only where
				 * v->may_yield) */
};
struct kvmi_raised {
	enum kvmi_outcome outcome;
	bool regs_applied;      /* the tool's SET_REGISTERS was applied */
};
/* arch: the event header if the caller has read it already, else NULL. */
struct kvmi_raised eng_raise(struct kvmi_engine_vcpu *v, unsigned event, const struct kvmi_event_arch *arch,
			     const void *data, size_t len, void *rpl, size_t rpl_len);
bool eng_event_wanted(struct kvmi_engine_vcpu *v, unsigned event);
void eng_raise_pending(struct kvmi_engine_vcpu *v);
/* A suspended event first: true while it still waits (the thread goes
 * back to the frontend again). */
bool eng_resume_suspended(struct kvmi_engine_vcpu *v);
int eng_inject_exception(struct kvmi_engine_vcpu *v, uint8_t vector, uint32_t error_code, uint64_t address);

/* memory.c */
/* Host address of [gpa, gpa + len) if it is RAM of one region (its
 * KVM_MEM_* flags in *flags if given), else NULL. */
void *eng_gpa_to_hva(struct kvmi_engine *e, uint64_t gpa, uint64_t len, uint32_t *flags);
int eng_read_phys(struct kvmi_engine *e, uint64_t gpa, void *buf, size_t len);
int eng_write_phys(struct kvmi_engine *e, uint64_t gpa, const void *buf, size_t len);
/* pt_lock held for writing, vCPUs held: make the slots follow the tracker. */
int eng_apply_tracking(struct kvmi_engine *e, unsigned *removed, unsigned *added);
/* -EOPNOTSUPP: refused by eng_ptwalk_guard(). */
int eng_set_page_access(struct kvmi_engine *e, const struct pt_entry *pe, size_t n);
/* [vcpu] The page gets W besides its rights (a page walk needs it). */
int eng_grant_w(struct kvmi_engine *e, uint64_t gfn);
/* pt_lock held: the host address of RAM [gpa, gpa + len), else NULL. */
void *eng_gpa_to_hva_locked(struct kvmi_engine *e, uint64_t gpa, uint64_t len);
int eng_map_memory(struct kvmi_engine *e, const struct kvmi_map_mem_token *token, uint64_t gpa, uint64_t len,
		   bool readonly, int *fd, uint64_t *offset);
int eng_query_physical(struct kvmi_engine *e, uint64_t gfn, struct kvmi_query_physical_reply *r);
uint64_t eng_max_gfn(struct kvmi_engine *e);
void eng_memory_session_end(struct kvmi_engine *e);
void eng_memory_destroy(struct kvmi_engine *e);
/* The rights of gfn as vCPU self must see them (pt_lock held). */
uint8_t eng_rights_for(struct kvmi_engine *e, uint64_t gfn, unsigned self);
uint8_t eng_rights(struct kvmi_engine *e, uint64_t gfn, unsigned self);
/* pt_lock held for writing: the tool's rights for these pages (n == 0:
 * for every page) now stand; an execute step's opening of one of them is
 * forgotten, its end restores nothing. */
void eng_step_superseded(struct kvmi_engine *e, const struct pt_entry *pe, size_t n);

/* pf.c, exec.c, msr.c, debug.c: exits. */
enum kvmi_exit_owner eng_pf_exit(struct kvmi_engine_vcpu *v);
enum kvmi_exit_owner eng_finish_exit(struct kvmi_engine_vcpu *v, int ret, int err);
enum kvmi_exit_owner eng_emulation_failure(struct kvmi_engine_vcpu *v);
void eng_exec_step_end(struct kvmi_engine_vcpu *v);
int eng_read_guest_virt(struct kvmi_engine_vcpu *v, uint64_t gva, void *buf, size_t len);
void eng_handle_int3(struct kvmi_engine_vcpu *v, uint64_t rip);
enum kvmi_exit_owner eng_msr_exit(struct kvmi_engine_vcpu *v);
int eng_control_msr(struct kvmi_engine_vcpu *v, uint32_t msr, bool enable);
void eng_msr_session_end(struct kvmi_engine *e);
int eng_msr_init(struct kvmi_engine *e);
/* The filter KVM gets: the engine's write ranges (the frontend's
 * decisions folded in), then the frontend's.  msr_lock held. */
int eng_msr_merge(struct kvmi_engine *e, struct kvm_msr_filter *out);
void eng_msr_destroy(struct kvmi_engine *e);
enum kvmi_exit_owner eng_debug_exit(struct kvmi_engine_vcpu *v);
int eng_update_guest_debug(struct kvmi_engine_vcpu *v);
int eng_control_singlestep(struct kvmi_engine_vcpu *v, bool enable);
int eng_control_breakpoints(struct kvmi_engine_vcpu *v, bool enable);
void eng_debug_prerun(struct kvmi_engine_vcpu *v);

/* ptwalk.c: guest page walks through write-protected pages. */
/* [vcpu] The page-walk hook stopped the vCPU: the PF event, then W for
 * the page unless the tool answered RETRY or CRASH. */
void eng_ptwalk_event(struct kvmi_engine_vcpu *v, uint64_t gpa, uint64_t error_code);
/* pt_lock held for writing, vCPUs held: where walks cannot be reported,
 * -EOPNOTSUPP if pe takes W from a page table of a vCPU's address space. */
int eng_ptwalk_guard(struct kvmi_engine *e, const struct pt_entry *pe, size_t n);
/* At creation, after the BPF probe: what the host offers, logged. */
void eng_ptwalk_init(struct kvmi_engine *e);

/* engine.c: the server's session_start / session_end ops. */
void eng_session_start(struct kvmi_backend *b);
void eng_session_end(struct kvmi_backend *b);
void eng_vcpu_free(struct kvmi_engine_vcpu *v);

/* commands.c */
extern const struct kvmi_backend_ops eng_backend_ops;

#endif
