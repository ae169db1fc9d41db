/* SPDX-License-Identifier: MIT */
/*
 * kvmi_hooks.h - what the BPF program (kvmi_hooks.bpf.c) and kvmi-vm
 * (bpf_events.c) share: map layouts, hook bits, the signal.
 *
 * Included by both the BPF target (clang -target bpf) and the VMM, so only
 * fixed-width types from <linux/types.h>.
 */
#ifndef KVMI_BPF_HOOKS_H
#define KVMI_BPF_HOOKS_H

#include <linux/types.h>

/* One bit per hook, in struct kvmi_bpf_vcpu.enabled / .pending / .fired. */
#define KVMI_HOOK_CR0       (1u << 0)
#define KVMI_HOOK_CR3       (1u << 1)
#define KVMI_HOOK_CR4       (1u << 2)
#define KVMI_HOOK_XSETBV    (1u << 3)
#define KVMI_HOOK_HYPERCALL (1u << 4)
#define KVMI_HOOK_ALL       0x1fu       /* the ones a tool enables per vCPU */
/* A guest page walk through a write-protected page (kvm_mmu_page_fault).
 * Not enabled per vCPU: attached while any page lacks W, it stops every
 * registered vCPU thread whose walk hits a gfn of kvmi_wp_gfns. */
#define KVMI_HOOK_PTWALK    (1u << 5)

/* KVM's page-fault error code (arch/x86/include/asm/kvm_host.h): W, and a
 * fault of the guest's own page walk under nested paging (AMD: bit 33 of
 * the NPF exit info; Intel: set from the EPT violation qualification). */
#define KVMI_PFERR_WRITE        (1ull << 1)
#define KVMI_PFERR_GUEST_PAGE   (1ull << 33)
/* Write-protected gfns the page-walk hook reacts to (kvmi_wp_gfns): 1 GiB
 * of protected RAM; allocated on use. */
#define KVMI_BPF_MAX_WP_GFNS (1u << 18)

/* The hypercall number of the KVMI agent call (KVM_HC_XEN_HVM_OP). */
#define KVMI_AGENT_HYPERCALL 34

/*
 * Sent to the vCPU thread by bpf_send_signal_thread() from inside KVM_RUN.
 * A real-time signal of its own (glibc's SIGRTMIN + 6), never the kick
 * signal: a kick means "look at your requests", this one "a hook fired".
 */
#define KVMI_BPF_SIGNAL 40

/* Entries of the per-vCPU array (BPF_F_MMAPABLE: the VMM reads and writes
 * it without system calls).  Indexed by vCPU index. */
#define KVMI_BPF_MAX_VCPUS 64
/* Threads the hooks react to: thread id -> vCPU index. */
#define KVMI_BPF_MAX_THREADS 128

struct kvmi_bpf_vcpu {
	__u32 enabled;          /* KVMI_HOOK_*: what the tool wants (VMM writes) */
	__u32 pending;          /* KVMI_HOOK_*: fired, not handled yet (BPF ors, VMM takes) */
	__u64 fired;            /* stops requested, ever (statistics) */
	__u64 walk_gpa;         /* KVMI_HOOK_PTWALK: the last walk fault's gpa */
	__u64 walk_error;       /* ... and KVM's error code */
};

#endif
