/* SPDX-License-Identifier: MIT */
/*
 * What the soak's guest payload (tests/guest/tests/soak.c) and the soak
 * program (tests/soak/) agree on: where the guest's pages are and the layout
 * of its mailbox.  Freestanding: fixed-width types only.
 *
 * Every vCPU loops forever: a batch in ring 3 (counters in the mailbox,
 * a read and a write of one data page, a call into one code page, a read
 * and a write of one sweep page per iteration), then in ring 0 one WRMSR
 * and one int3 handled by the guest's own #BP handler.  A tool's leftover
 * restriction of any of those pages, a leftover MSR interception or a
 * leftover single-step therefore shows up within a few ring-0 loops.
 */
#ifndef KVMI_SOAK_ABI_H
#define KVMI_SOAK_ABI_H

#include <stdint.h>

#define SOAK_MBOX_GPA    0x300000ull   /* struct soak_mbox */
#define SOAK_DATA_GPA    0x310000ull   /* SOAK_DATA_PAGES pages of data */
#define SOAK_DATA_PAGES  8
#define SOAK_CODE_GPA    0x320000ull   /* SOAK_CODE_PAGES pages, a function at the start of each */
#define SOAK_CODE_PAGES  4
#define SOAK_INT3_GPA    0x330000ull   /* int3; ret (called at ring 0) */
#define SOAK_SWEEP_GPA   0x1000000ull  /* 16 MiB: SOAK_SWEEP_PAGES pages, one touched per iteration */
#define SOAK_SWEEP_PAGES 1024
#define SOAK_MAGIC       0x4b414f534b414f53ull   /* "SOAKSOAK" */
#define SOAK_MAX_VCPUS   4
#define SOAK_MSR_A       0x175u        /* SYSENTER_ESP: written on even ring-0 loops */
#define SOAK_MSR_B       0x176u        /* SYSENTER_EIP: written on odd ones */

/* One vCPU's counters; only that vCPU writes them. */
struct soak_vcpu {
	uint64_t r3_iters;      /* ring-3 iterations */
	uint64_t r0_loops;      /* ring-0 loops (one ring-3 batch, one WRMSR, one int3 each) */
	uint64_t msr_writes;
	uint64_t bp_count;      /* #BP taken by the guest's own handler */
	uint64_t db_count;      /* #DB taken by the guest (a tool's TF reached ring 3) */
	uint64_t sweep_pos;
	uint64_t sum;           /* what the reads and calls returned, so that they happen */
	uint64_t alive;
};

struct soak_mbox {
	uint64_t magic;
	uint64_t nr_vcpus;
	uint64_t pad[6];
	struct soak_vcpu vcpu[SOAK_MAX_VCPUS];
};

#endif
