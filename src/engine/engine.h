/* SPDX-License-Identifier: MIT */
/*
 * engine.h - the introspection engine and the one interface between it and
 * the VMM that hosts it (the "frontend": kvmi-vm, or a library inside
 * QEMU).
 *
 * The engine is everything KVMI that does not depend on which VMM runs the
 * guest: the protocol server (src/introspection) and what makes its
 * commands and events real on a stock KVM - page tracking by memslot
 * splitting (PF events with pre-read/pre-write/pre-exec semantics), MSR
 * events through the MSR filter, single-step and breakpoints through guest
 * debugging, CR/XSETBV/HYPERCALL through BPF, pauses, vCPU jobs, map
 * tokens.  It never calls KVM_RUN and never owns a thread of the guest: the
 * frontend's run loop asks it what to do.
 *
 * What the frontend does, at these points:
 *
 *   kvmi_engine_create()            after KVM_CREATE_VM
 *   kvmi_engine_region_add()        for every RAM region, at any time
 *   kvmi_engine_region_remove()     before the region's memory goes away
 *   kvmi_engine_vcpu_add()          after KVM_CREATE_VCPU + mmap of kvm_run
 *   kvmi_engine_start()             once, when the guest may run
 *   in each vCPU thread's loop:
 *       switch (kvmi_engine_pre_run(v)) {
 *       case KVMI_RUN_STOP:   leave the loop (the VM is stopping)
 *       case KVMI_RUN_YIELD:  back to the VMM (only with host->wants_thread)
 *       case KVMI_RUN_EXIT:   the exit in run is the frontend's (ditto)
 *       case KVMI_RUN_FINISH: KVM_RUN with run->immediate_exit = 1
 *       case KVMI_RUN_ENTER:  KVM_RUN as usual
 *       }
 *       if (kvmi_engine_post_run(v, ret, errno) == KVMI_EXIT_ENGINE)
 *               continue;         the engine consumed the exit
 *       ... the frontend's own exit handling ...
 *   kvmi_engine_unhook()            before a snapshot or a migration
 *   kvmi_engine_vm_stopping()       when the VM is about to stop
 *   kvmi_engine_vcpu_gone()         when a vCPU thread has left its loop
 *   kvmi_engine_stop(), kvmi_engine_destroy()
 *
 * While a frontend parks a vCPU thread outside this loop (paused, halted
 * in userspace) it must run the engine's jobs for that vCPU: host->kick
 * wakes it, kvmi_engine_vcpu_has_jobs() tells, kvmi_engine_vcpu_run_jobs()
 * runs them.
 *
 * Threads: [vcpu] functions run on that vCPU's own thread, [any] on any
 * thread.  The engine runs one thread of its own, the introspection
 * thread (started by kvmi_engine_start()).
 *
 * Lock order (a thread takes them only in this order; a debug build with
 * -Dlockcheck=true checks it, see src/common/lockorder.h):
 *   1. receive lock     (kvmi_server.rx_lock: the input stream; the
 *                        introspection thread dispatches commands under it)
 *   2. page tracker     (engine.pt_lock: rights, regions, slot layout)
 *   3. MSR lock         (engine.msr_lock: MSR masks, the merged filter)
 *   4. BPF events lock  (bpf_events.lock: hook links, the vCPUs' wishes)
 *   5. engine vCPU lock (kvmi_engine_vcpu.lock: job queue; a waiting vCPU
 *                        checks the server's reply state under it)
 *   6. send lock        (kvmi_server.send_lock: one message at a time)
 *   7. server lock      (kvmi_server.lock: per-vCPU event state)
 *   8. leaf locks       (a PAUSE_VCPU acknowledgement: nothing nests in them)
 * The engine calls the host's ops with none of its locks held, except
 * slot_alloc, slot_free and slot_set, which run under 2; the frontend's
 * own locks are never held when it calls the engine.
 */
#ifndef KVMI_ENGINE_H
#define KVMI_ENGINE_H

#include <kvmi/kvmi-wire.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../introspection/introspection.h"

struct kvm_run;
struct kvm_cpuid2;
struct kvm_msr_filter;
struct kvm_guest_debug;

struct kvmi_engine;
struct kvmi_engine_vcpu;

/* Lock ranks of the order above (lockorder.h). */
enum kvmi_lock_rank {
	KVMI_RANK_RX = KVMI_SRV_RANK_RX,
	KVMI_RANK_PAGETRACK = 20,
	KVMI_RANK_MSR = 30,
	KVMI_RANK_BPF = 40,
	KVMI_RANK_VCPU = 50,
	KVMI_RANK_SEND = KVMI_SRV_RANK_SEND,
	KVMI_RANK_SERVER = KVMI_SRV_RANK_LOCK,
	KVMI_RANK_LEAF = 80,
};
_Static_assert(KVMI_RANK_RX < KVMI_RANK_PAGETRACK && KVMI_RANK_VCPU < KVMI_RANK_SEND &&
	       KVMI_RANK_SEND < KVMI_RANK_SERVER, "the server's locks are ranked as the order above says");

enum kvmi_stop_reason {
	KVMI_STOP_CRASH,        /* the tool answered an event with CRASH */
	KVMI_STOP_HOST,         /* the engine cannot keep the guest correct */
};

/* What the frontend implements. */
struct kvmi_host_ops {
	/* [any] Make vCPU idx leave KVM_RUN soon (signal + immediate_exit)
	 * and, if the frontend parks that thread, wake it so that it runs
	 * the engine's jobs. */
	void (*kick)(void *host, unsigned idx);
	/* [any] Stop the VM: a tool's CRASH, or an engine failure that would
	 * leave the guest wrong.  Must not wait for vCPU threads. */
	void (*request_stop)(void *host, enum kvmi_stop_reason why);
	/*
	 * Kernel memslots.  The engine cuts RAM regions into slots (read-only
	 * pieces, holes); the frontend owns the slot ids.  slot_alloc gives
	 * an id nobody uses (the frontend must not hand it out itself until
	 * slot_free); slot_set is KVM_SET_USER_MEMORY_REGION for that id
	 * (size 0 deletes).  0 or -errno.
	 */
	int (*slot_alloc)(void *host, uint32_t *id);
	void (*slot_free)(void *host, uint32_t id);
	int (*slot_set)(void *host, uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size, void *hva);
	/* [any] Optional: the engine wrote guest RAM [gpa, gpa + len) itself
	 * (KVM's dirty log does not see such writes). */
	void (*ram_written)(void *host, uint64_t gpa, uint64_t len);
	/* [vcpu] Optional: the VMM wants vCPU idx's thread back (QEMU kicked
	 * it to stop the VM).  Polled every 10 ms while the vCPU waits (for a
	 * tool's reply, a hold, --introspector-wait): pre_run answers
	 * KVMI_RUN_YIELD, or post_run KVMI_EXIT_YIELD, and the wait goes on
	 * at the next pre_run.  CR/XSETBV/HYPERCALL events do not yield. */
	bool (*wants_thread)(void *host, unsigned idx);
};

/* Everything the engine needs to know at creation.  Parsing options,
 * policy files and keys is the frontend's business (src/frontend). */
struct kvmi_engine_config {
	const struct kvmi_host_ops *ops;
	void *host;
	int kvm_fd, vm_fd;
	unsigned max_vcpus;
	/* The frontend's KVM_GET_SUPPORTED_CPUID (start-up probes); may be NULL. */
	const struct kvm_cpuid2 *cpuid;

	struct kvmi_addr addr;          /* where the tool listens */
	struct kvmi_policy policy;
	const void *key;                /* NULL: tools are not authenticated */
	size_t key_len;
	uint8_t uuid[16];
	char name[KVMI_HANDSHAKE_NAME_SIZE];
	int handshake_timeout_ms;       /* <= 0: 10 s */
	int unhook_timeout_ms;          /* <= 0: 5 s */
	/* Hold every vCPU before its first instruction until a tool has
	 * enabled CREATE_VCPU (each vCPU then raises it) or has come and gone. */
	bool wait_for_tool;
	/* Guest page walks through write-protected pages (docs/limitations.md):
	 * the BPF hook where the host allows it, else SET_PAGE_ACCESS refuses
	 * to take W from a page table in use.  The other modes are for tests
	 * and diagnosis (the frontend's KVMI_PTWALK environment variable). */
	enum kvmi_ptwalk_mode {
		KVMI_PTWALK_AUTO,       /* the hook if it works, else the refusal */
		KVMI_PTWALK_NO_HOOK,    /* as if the hook could not be attached */
		KVMI_PTWALK_UNGUARDED,  /* neither: the guest stalls (issue #14) */
	} ptwalk;
};

/* A RAM region as the frontend sees it. */
struct kvmi_ram_region {
	uint64_t gpa, size;             /* page aligned */
	void *hva;
	/* Backing file for map grants; -1: none.  Read-only grants are given
	 * only if its mode has no write bit (0400): else the tool could reopen
	 * its descriptor for writing through /proc/self/fd. */
	int fd;
	uint64_t fd_offset;             /* of gpa in fd */
	uint32_t slot_id;               /* the frontend's id for this region */
	/* KVM_MEM_* flags the frontend wants on every slot of the region:
	 * KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY (ROM: guest writes are
	 * the frontend's, after the PF event if the tool asked for one). */
	uint32_t flags;
	/* The frontend has already registered the whole region as slot
	 * slot_id (kvmi-vm at start-up); otherwise the engine creates it. */
	bool slot_exists;
};

/* One kernel slot of a region (dirty logging: the frontend's bitmap of a
 * region is the OR of its slots' bitmaps at their offsets, plus the pages
 * the engine reported through ram_written). */
struct kvmi_slot_piece {
	uint32_t id;
	uint64_t gpa, size;
};

/* 0 or -errno, with the reason logged. */
int kvmi_engine_create(const struct kvmi_engine_config *cfg, struct kvmi_engine **out);
/* Starts the connection thread: the guest runs whether or not a tool is there. */
int kvmi_engine_start(struct kvmi_engine *e);
/* VM shutdown: UNHOOK if the tool asked for it (bounded wait), disconnect,
 * join the thread. */
void kvmi_engine_stop(struct kvmi_engine *e);
/* [any, not a vCPU thread] The VM is about to be saved or migrated: UNHOOK
 * if the tool asked for it, and wait (bounded) until it has closed the
 * connection; a later tool may connect again.  True if UNHOOK was sent. */
bool kvmi_engine_unhook(struct kvmi_engine *e);
void kvmi_engine_destroy(struct kvmi_engine *e);
/* [any] The VM is stopping: every vCPU's wait ends (events act as
 * CONTINUE) and pre_run answers KVMI_RUN_STOP from now on. */
void kvmi_engine_vm_stopping(struct kvmi_engine *e);

/* [any] Regions.  The restrictions a tool set are in force on the
 * region's slots before this returns; vCPUs are held out of guest mode
 * while slots are replaced. */
int kvmi_engine_region_add(struct kvmi_engine *e, const struct kvmi_ram_region *r);
/* Deletes every slot of the region at gpa (ids from slot_alloc are freed;
 * the region's own id is the frontend's again). */
int kvmi_engine_region_remove(struct kvmi_engine *e, uint64_t gpa);
/* [any] Turns KVM_MEM_LOG_DIRTY_PAGES on or off on every slot of the region
 * at gpa (KVM allows no other flag change on a live slot). */
int kvmi_engine_region_set_dirty_log(struct kvmi_engine *e, uint64_t gpa, bool on);
/* [any] The kernel slots of the region at gpa now, at most max of them;
 * returns how many there are (> max: call again with more room), or
 * -ENOENT. */
int kvmi_engine_region_slots(struct kvmi_engine *e, uint64_t gpa, struct kvmi_slot_piece *out, size_t max);
/* [any, not a vCPU thread of this VM unless it is out of KVM_RUN] Keeps
 * every vCPU out of guest mode until kvmi_engine_release(): for changes
 * the guest must never see half done (a region removed and added again).
 * Holds nest; returns once no vCPU is inside KVM_RUN. */
void kvmi_engine_hold(struct kvmi_engine *e);
void kvmi_engine_release(struct kvmi_engine *e);

/* vCPUs (idx < max_vcpus).  NULL on error. */
struct kvmi_engine_vcpu *kvmi_engine_vcpu_add(struct kvmi_engine *e, unsigned idx, int fd,
					      struct kvm_run *run);
/* [vcpu] The thread left its loop for good: no more jobs; queued ones run now. */
void kvmi_engine_vcpu_gone(struct kvmi_engine_vcpu *v);

enum kvmi_run_action {
	KVMI_RUN_ENTER,         /* KVM_RUN */
	KVMI_RUN_FINISH,        /* KVM_RUN with immediate_exit = 1: KVM completes
				 * the interrupted instruction, the guest does
				 * not run on */
	KVMI_RUN_STOP,          /* the VM is stopping */
	KVMI_RUN_YIELD,         /* host->wants_thread said yes: return to the
				 * VMM without entering; call pre_run again
				 * before the next entry */
	KVMI_RUN_EXIT,          /* a yielded exit turned out to be the
				 * frontend's: handle run's exit, no entry */
};
enum kvmi_exit_owner {
	KVMI_EXIT_ENGINE,       /* consumed: loop */
	KVMI_EXIT_FRONTEND,     /* the frontend's (ret < 0 included) */
	KVMI_EXIT_YIELD,        /* host->wants_thread: back to the VMM as if
				 * kicked (-EINTR); the exit is not finished:
				 * the next pre_run finishes it */
};
/* [vcpu] Before every KVM_RUN: runs jobs, raises pending events, waits
 * while the engine holds vCPUs out of guest mode. */
enum kvmi_run_action kvmi_engine_pre_run(struct kvmi_engine_vcpu *v);
/* [vcpu] After every KVM_RUN, with its return value and errno. */
enum kvmi_exit_owner kvmi_engine_post_run(struct kvmi_engine_vcpu *v, int ret, int err);

/* [any] Jobs queued for a vCPU the frontend parks outside its loop. */
bool kvmi_engine_vcpu_has_jobs(struct kvmi_engine_vcpu *v);
/* [vcpu] Runs them; returns how many ran. */
unsigned kvmi_engine_vcpu_run_jobs(struct kvmi_engine_vcpu *v);
/* [vcpu] The frontend wrote registers itself (KVM_SET_REGS/SREGS/MSRS):
 * the engine's copy from the last exit is stale. */
void kvmi_engine_vcpu_regs_changed(struct kvmi_engine_vcpu *v);

/*
 * The frontend's own MSR filter (KVM_X86_SET_MSR_FILTER as it would have
 * issued it; NULL = none): the engine installs the union with its own and
 * hands the frontend every MSR exit its filter asked for.  0, or -ENOSPC
 * when the union needs more ranges than KVM takes.
 */
int kvmi_engine_set_host_msr_filter(struct kvmi_engine *e, const struct kvm_msr_filter *f);
/* [vcpu] The frontend's own KVM_SET_GUEST_DEBUG (NULL = none): merged with
 * the engine's; debug exits the engine did not ask for go to the frontend. */
int kvmi_engine_set_host_guest_debug(struct kvmi_engine_vcpu *v, const struct kvm_guest_debug *d);

#endif
