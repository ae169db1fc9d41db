/* SPDX-License-Identifier: MIT */
/*
 * The contract between the benchmark guest (bench/guest/bench_guest.c) and
 * the host-side benchmark programs: a mailbox at a fixed guest-physical
 * address, per-vCPU sample arrays, and a 64 MiB data region.  The host
 * reaches all of it through the VMM's guest-RAM mapping (process_vm_readv /
 * process_vm_writev), so the control path never goes through KVMI and is
 * the same with and without an introspection tool attached.
 *
 * Plain fixed-width types only: included by freestanding guest code too.
 */
#ifndef KVMI_BENCH_ABI_H
#define KVMI_BENCH_ABI_H

#include <stdint.h>

#define BENCH_MBOX_GPA      0x400000ull          /* 4 MiB */
#define BENCH_MAGIC         0x4b564d4942454e43ull /* "KVMIBENC" */
#define BENCH_MAX_VCPUS     4

#define BENCH_SAMPLES_GPA   0x800000ull          /* 8 MiB: per-vCPU arrays */
#define BENCH_SAMPLES_SIZE  0x200000ull          /* 2 MiB per vCPU */
#define BENCH_SAMPLES_MAX   (BENCH_SAMPLES_SIZE / 16)  /* struct bench_gap entries */

#define BENCH_DATA_GPA      0x4000000ull         /* 64 MiB..128 MiB */
#define BENCH_DATA_SIZE     0x4000000ull         /* 64 MiB */

#define BENCH_WORK_GPA      0x2000000ull         /* 32 MiB: the workload's buffer */
#define BENCH_WORK_SIZE     0x40000ull           /* 256 KiB: stays in L2 */
#define BENCH_PF_PAGE_GPA   0x3000000ull         /* 48 MiB: the page PF benchmarks protect */
#define BENCH_EXEC_PAGE_GPA 0x3001000ull         /* a function (one ret) for PF exec */

/* A port nobody claims: not the VMM's bus, not KVM's in-kernel devices. */
#define BENCH_IDLE_PORT     0xe0

/* The value every 8-byte word of the data region holds after BENCH_CMD_FILL. */
static inline uint64_t bench_pattern(uint64_t gpa)
{
	uint64_t x = gpa * 0x9e3779b97f4a7c15ull;

	return x ^ (x >> 29);
}

enum bench_cmd {
	BENCH_CMD_NONE = 0,
	/*
	 * Ring 3, every vCPU: spin, publishing rdtsc in v.now and counting in
	 * v.count, and record every gap between two consecutive rdtsc reads
	 * longer than arg[0] cycles (the vCPU was out of guest mode) as a
	 * struct bench_gap tagged with mbox.tag, until mbox.stop == seq.
	 */
	BENCH_CMD_SPIN = 1,
	/* Ring 3: arg[0] OUTs to BENCH_IDLE_PORT, each timed with rdtsc
	 * (uint64_t cycles per sample). */
	BENCH_CMD_PIO3 = 2,
	/* The same in ring 0 (emulated on software-hypervisor hosts). */
	BENCH_CMD_PIO0 = 3,
	/* Ring 3: arg[1] repetitions of a fixed workload of arg[0] steps
	 * (an LCG scattering adds over a 256 KiB buffer); cycles per repetition.
	 * arg[2] != 0: an OUT to BENCH_IDLE_PORT after every arg[2] steps. */
	BENCH_CMD_WORK = 4,
	/* Ring 3, vCPU 0: fill the data region with bench_pattern(). */
	BENCH_CMD_FILL = 5,
	/* Leave ring 3 and finish (GUEST_DONE). */
	BENCH_CMD_EXIT = 6,
	/* Ring 3, every vCPU: arg[0] 8-byte stores to its own 64 words of the
	 * page at BENCH_PF_PAGE_GPA, each timed with rdtsc. */
	BENCH_CMD_STORES = 7,
	/* Ring 0, every vCPU: arg[0] WRMSRs of MSR arg[1], each timed. */
	BENCH_CMD_WRMSR0 = 8,
	/* Ring 0: publish seq in v.result[0], then spin until mbox.stop ==
	 * seq (single-step needs ring 0 on software-hypervisor hosts). */
	BENCH_CMD_SPIN0 = 9,
	/* Ring 3, every vCPU: arg[0] 8-byte loads from its own 64 words of the
	 * page at BENCH_PF_PAGE_GPA, each timed. */
	BENCH_CMD_LOADS = 10,
	/* Ring 3, every vCPU: arg[0] calls of the function at
	 * BENCH_EXEC_PAGE_GPA (a single ret), each timed. */
	BENCH_CMD_CALLS = 11,
	/* Ring 0, every vCPU: arg[0] int3 instructions, each timed (the guest's
	 * #BP handler counts them in v.result[1]). */
	BENCH_CMD_INT3_0 = 12,
	/* Ring 0, every vCPU: arg[0] writes of CR4 with the value it holds,
	 * each timed. */
	BENCH_CMD_WRCR4_0 = 13,
};

struct bench_gap {
	uint64_t cycles;      /* length of the gap */
	uint64_t tag;         /* mbox.tag read right after the gap */
};

struct bench_vcpu {
	uint64_t ack;         /* = mbox.seq once the command is done */
	uint64_t count;       /* SPIN iterations */
	uint64_t now;         /* last rdtsc of SPIN */
	uint64_t nsamples;    /* entries written to this vCPU's sample array */
	uint64_t result[4];
	uint64_t pad[8];      /* one 128-byte block per vCPU: no false sharing */
};

struct bench_mbox {
	uint64_t magic;       /* set by vCPU 0 once the mailbox is valid */
	uint64_t nr_vcpus;
	uint64_t seq;         /* the host bumps it after writing cmd/arg */
	uint64_t cmd;
	uint64_t arg[4];
	uint64_t tag;
	uint64_t stop;
	uint64_t pad[6];
	struct bench_vcpu v[BENCH_MAX_VCPUS];
};

_Static_assert(sizeof(struct bench_vcpu) == 128, "bench_vcpu layout");
_Static_assert(sizeof(struct bench_mbox) == 128 + 128 * BENCH_MAX_VCPUS, "bench_mbox layout");

#endif
