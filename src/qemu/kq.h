/* SPDX-License-Identifier: MIT */
/*
 * kq.h - libkvmi-qemu, the engine's second frontend: a library that an
 * unmodified QEMU loads through LD_PRELOAD.  It interposes QEMU's ioctl()
 * on /dev/kvm and its file descriptors and runs the introspection engine
 * (src/engine) inside QEMU's process.  QEMU keeps its view of KVM: its own
 * memslots, its own exits, its own MSR filter and guest debugging; the
 * kernel sees the engine's view (split slots, the merged filter, ...).
 *
 *   preload.c   the interposed symbols (ioctl, sigaction), the constructor,
 *               which fd is what, the dispatch of KVM ioctls
 *   config.c    options: KVMI_QEMU_OPTIONS, QEMU's own -name/-uuid/-smp
 *   slots.c     QEMU's memslots as engine regions, slot ids, the dirty log
 *   run.c       vCPUs: KVM_RUN through the engine, kicks, QEMU's signals
 *
 * Locks, in order: a vCPU's own (who drives it: see struct kq_vcpu) and
 * kq.slot_op_lock (QEMU's memslot calls, one at a time) come before any
 * engine lock (the engine never calls back into a path that takes them);
 * kq.lock (the fd and slot tables) is a leaf, never held while the engine
 * is called.
 */
#ifndef KVMI_QEMU_KQ_H
#define KVMI_QEMU_KQ_H

#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intro_config.h"

#include "engine.h"

/* What QEMU is told about KVM_CAP_NR_MEMSLOTS at most: the ids above are
 * the engine's pieces. */
#define KQ_QEMU_SLOTS_MAX 512u
#define KQ_MAX_VCPUS 256u

/* Newer kernel ABI that Debian bookworm's headers lack. */
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP
#define KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP 225
#endif
#define KQ_MEM_GUEST_MEMFD (1u << 2)
struct kq_memory_region2 {
	uint32_t slot, flags;
	uint64_t guest_phys_addr, memory_size, userspace_addr;
	uint64_t guest_memfd_offset;
	uint32_t guest_memfd, pad1;
	uint64_t pad2[14];
};
#define KQ_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kq_memory_region2)

struct kq_vcpu {
	int fd;
	unsigned idx;
	struct kvm_run *run;            /* our own mapping of the vCPU's kvm_run */
	size_t run_size;
	struct kvmi_engine_vcpu *ev;
	pthread_t thread;
	atomic_bool thread_known;
	atomic_uint qemu_signals;       /* QEMU's SIG_IPI delivered to this thread */
	/* while QEMU's KVM_RUN call is with us: its SIG_IPIs at the call and
	 * whether it had kicked itself (immediate_exit already set) */
	atomic_bool in_call;
	unsigned call_signals;
	bool call_kicked_self;
	/* QEMU's last KVM_GET_REGS, until the guest runs again: QEMU writes
	 * its copy back before its next KVM_RUN, which must not undo what the
	 * engine (a tool's SET_REGISTERS) changed meanwhile. */
	struct kvm_regs qemu_regs;
	bool qemu_regs_valid;
	/* Held by whoever drives the vCPU for the engine: its thread inside
	 * KVM_RUN, or the job thread while QEMU keeps the thread parked. */
	pthread_mutex_t own;
};

/* One memslot QEMU created (address space 0). */
struct kq_slot {
	bool used;
	uint32_t flags;
	uint64_t gpa, size;
	void *hva;
	_Atomic(unsigned long) *written; /* pages the engine wrote since the last GET_DIRTY_LOG */
};

/* One kernel memslot id of ours (above what QEMU sees) or QEMU's. */
struct kq_kslot {
	bool allocated;                 /* given to the engine by slot_alloc */
	bool live;                      /* exists in KVM */
	uint32_t flags;
	uint64_t gpa, size;
};

struct kq_state {
	bool configured;                /* KVMI_QEMU_OPTIONS named a tool */
	atomic_bool off;                /* introspection given up: pass everything through */
	struct intro_options opts;
	char *opts_buf;                 /* backing store of opts' strings */
	unsigned smp_max;               /* from QEMU's -smp (0: unknown) */
	char qemu_name[64];
	uint8_t qemu_uuid[16];
	bool have_qemu_uuid;
	/* KVMI_QEMU_NO_DIRTY_MERGE: leave the engine's own writes out of the
	 * dirty log - only for the negative control of the test that shows
	 * the writes a migration then loses (tests/integration/test_qemu.c). */
	bool no_dirty_merge;

	int kvm_fd, vm_fd;              /* -1 until KVM_CREATE_VM */
	struct kvmi_engine *e;
	atomic_bool started;
	pthread_mutex_t lock;           /* leaf: the tables below */
	pthread_mutex_t slot_op_lock;   /* QEMU's memslot calls, one at a time */
	unsigned nr_kslots;             /* KVM's KVM_CAP_NR_MEMSLOTS */
	unsigned nr_qslots;             /* what QEMU is told */
	struct kq_slot *qslots;         /* [nr_qslots] */
	struct kq_kslot *kslots;        /* [nr_kslots] */
	struct kq_vcpu *vcpus[KQ_MAX_VCPUS];
	unsigned nr_vcpus;
	int kick_signal;
	/* The job thread runs the engine's jobs of vCPUs QEMU keeps parked
	 * (a stopped VM): a tool's vCPU commands work while QEMU waits. */
	pthread_t job_thread;
	pthread_mutex_t job_lock;
	pthread_cond_t job_cond;
	bool job_wake;
};

extern struct kq_state kq;

/* The real system call, bypassing every interposer. */
long kq_sys_ioctl(int fd, unsigned long req, unsigned long arg);

/* config.c */
int kq_config_load(void);       /* from the environment and /proc/self/cmdline */
void kq_disable(const char *why);

/* slots.c */
extern const struct kvmi_host_ops kq_host_ops;
int kq_slots_init(void);
long kq_set_memory_region(unsigned long req, void *arg);
long kq_get_dirty_log(struct kvm_dirty_log *log);
long kq_check_extension(int fd, unsigned long req, long cap);

/* run.c */
int kq_run_init(void);
struct kq_vcpu *kq_vcpu_of_fd(int fd);
long kq_create_vcpu(int vm_fd, unsigned long id);
long kq_vcpu_run(struct kq_vcpu *c);
void kq_kick(void *host, unsigned idx);
void kq_request_stop(void *host, enum kvmi_stop_reason why);
bool kq_wants_thread(void *host, unsigned idx);
int kq_wrap_sigaction(int sig, const struct sigaction *act, struct sigaction *old,
		      int (*real)(int, const struct sigaction *, struct sigaction *));

#endif
