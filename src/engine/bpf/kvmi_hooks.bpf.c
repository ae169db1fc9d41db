/* SPDX-License-Identifier: MIT */
/*
 * kvmi_hooks.bpf.c - the host-kernel half of CR, XSETBV and HYPERCALL
 * events on stock KVM (issue #6, docs/limitations.md), and of PF events
 * for guest page walks through write-protected pages (issue #14).
 *
 * Attached to KVM's own functions and tracepoints by kvmi-vm.  When one of
 * them runs on a thread of this VM's vCPUs and the tool enabled that event
 * on that vCPU, it notes the hook in the vCPU's map entry and sends
 * KVMI_BPF_SIGNAL to the thread.  KVM then leaves KVM_RUN with -EINTR
 * before the guest runs its next instruction, and the vCPU thread raises
 * the KVMI event.  Everything else (values, veto) is done in userspace.
 *
 * No BTF of the kernel is needed: kprobes and tracepoints only; the one
 * tracepoint's record layout is fixed below from its tracefs format.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "kvmi_hooks.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KVMI_BPF_MAX_THREADS);
	__type(key, __u32);             /* thread id */
	__type(value, __u32);           /* vCPU index */
} kvmi_threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KVMI_BPF_MAX_VCPUS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct kvmi_bpf_vcpu);
} kvmi_vcpus SEC(".maps");

/* The gfns whose rights lack W, kept in sync with the page tracker. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KVMI_BPF_MAX_WP_GFNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);             /* gfn */
	__type(value, __u32);           /* unused */
} kvmi_wp_gfns SEC(".maps");

static __always_inline int stop(__u32 hook)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct kvmi_bpf_vcpu *v;
	__u32 *idx;

	idx = bpf_map_lookup_elem(&kvmi_threads, &tid);
	if (!idx)
		return 0;
	v = bpf_map_lookup_elem(&kvmi_vcpus, idx);
	if (!v || !(v->enabled & hook))
		return 0;
	__sync_fetch_and_or(&v->pending, hook);
	__sync_fetch_and_add(&v->fired, 1);
	bpf_send_signal_thread(KVMI_BPF_SIGNAL);
	return 0;
}

/* kvm_set_cr0/3/4(vcpu, value) and __kvm_set_xcr(vcpu, index, value):
 * the guest's write reached KVM (intercepted or emulated).  The value is
 * read back by the vCPU thread: KVM may still refuse it (#GP). */
SEC("kprobe")
int kvmi_cr0(void *ctx)
{
	(void)ctx;
	return stop(KVMI_HOOK_CR0);
}

SEC("kprobe")
int kvmi_cr3(void *ctx)
{
	(void)ctx;
	return stop(KVMI_HOOK_CR3);
}

SEC("kprobe")
int kvmi_cr4(void *ctx)
{
	(void)ctx;
	return stop(KVMI_HOOK_CR4);
}

SEC("kprobe")
int kvmi_xsetbv(void *ctx)
{
	(void)ctx;
	return stop(KVMI_HOOK_XSETBV);
}

/* The kvm:kvm_hypercall record (tracefs events/kvm/kvm_hypercall/format,
 * unchanged since Linux 2.6.3x): 8 bytes of common fields, then these. */
struct kvm_hypercall_record {
	__u64 common;
	__u64 nr, a0, a1, a2, a3;
};

SEC("tracepoint/kvm/kvm_hypercall")
int kvmi_hypercall(struct kvm_hypercall_record *rec)
{
	/* 32-bit callers: KVM compares only the low half as well. */
	if ((__u32)rec->nr != KVMI_AGENT_HYPERCALL)
		return 0;
	return stop(KVMI_HOOK_HYPERCALL);
}

/* The x86-64 struct pt_regs (arch/x86/include/asm/ptrace.h): a kprobe's
 * context; the first three arguments are in di, si, dx. */
struct kvmi_pt_regs {
	__u64 r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	__u64 ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

/* kvm_mmu_page_fault(vcpu, cr2_or_gpa, error_code, insn, insn_len): under
 * nested paging the guest's walk through a guest page table in a read-only
 * memslot faults here, with PFERR_GUEST_PAGE and W, and KVM emulates the
 * instruction itself without an exit.  Stop the vCPU thread when the page
 * is one of this VM's write-protected ones; everything else passes. */
SEC("kprobe")
int kvmi_ptwalk(struct kvmi_pt_regs *ctx)
{
	__u64 gpa = ctx->si, err = ctx->dx, gfn = gpa >> 12;
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct kvmi_bpf_vcpu *v;
	__u32 *idx;

	if ((err & (KVMI_PFERR_GUEST_PAGE | KVMI_PFERR_WRITE)) != (KVMI_PFERR_GUEST_PAGE | KVMI_PFERR_WRITE))
		return 0;
	idx = bpf_map_lookup_elem(&kvmi_threads, &tid);
	if (!idx || !bpf_map_lookup_elem(&kvmi_wp_gfns, &gfn))
		return 0;
	v = bpf_map_lookup_elem(&kvmi_vcpus, idx);
	if (!v)
		return 0;
	v->walk_gpa = gpa;
	v->walk_error = err;
	__sync_fetch_and_or(&v->pending, KVMI_HOOK_PTWALK);
	__sync_fetch_and_add(&v->fired, 1);
	bpf_send_signal_thread(KVMI_BPF_SIGNAL);
	return 0;
}
