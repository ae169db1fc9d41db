/* SPDX-License-Identifier: MIT */
/*
 * Shared pieces of the benchmark programs: statistics and the result files
 * that bench/run.sh turns into RESULTS.md (common.c); driving the VMM that
 * runs the benchmark guest (bench_abi.h) through its guest-RAM mapping,
 * kvmi-vm or QEMU, and the tool's side of an event (vmm.c).
 */
#ifndef KVMI_BENCH_H
#define KVMI_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench_abi.h"

/* ---------------------------------------------------------------- time */
uint64_t now_ns(void);
void sleep_us(unsigned us);

/* ---------------------------------------------------------------- stats */
struct stats {
	size_t n;
	double min, p50, p90, p99, max, mean;
};

/* Sorts @v in place. */
void stats_of(double *v, size_t n, struct stats *s);

/*
 * Results go to $BENCH_OUT (default "."): one line per figure in
 * results.tsv (id, unit, n, median, p90, p99, mean, min, max, note) and,
 * with result_samples(), the distribution in samples/ID.dat ("value
 * cumulative-fraction", at most 401 quantiles) for the plot.
 */
void result_init(void);
void result_add(const char *id, const char *unit, const struct stats *s, const char *note, ...)
	__attribute__((format(printf, 4, 5)));
/* Stats of @v (sorted in place), written as a result and as samples. */
void result_samples(const char *id, const char *unit, double *v, size_t n, const char *note, ...)
	__attribute__((format(printf, 5, 6)));
/* A figure that cannot be measured: unit "n/a" and the reason. */
void result_na(const char *id, const char *why, ...) __attribute__((format(printf, 2, 3)));
/* A single value (a count, a calibration) with unit. */
void result_value(const char *id, const char *unit, double value, const char *note, ...)
	__attribute__((format(printf, 4, 5)));

double *xmalloc_d(size_t n);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---------------------------------------------------------------- the VMM */
struct kvmi_listener;
struct kvmi_dom;
struct kvmi_event_msg;

enum vmm_kind {
	VMM_KVMI_VM,            /* kvmi-vm --guest bench_guest.elf */
	VMM_QEMU,               /* stock qemu-system-x86_64 -bios bench_guest.bios, no library */
	VMM_KVMI_QEMU,          /* the same QEMU through kvmi-qemu (libkvmi-qemu.so) */
};

struct vmm {
	enum vmm_kind kind;
	pid_t pid;
	unsigned nr_vcpus;
	char log[512];
	uint64_t ram_hva;       /* guest RAM (GPA 0) in the VMM's address space */
	uint64_t ram_size;
	uint64_t seq;           /* last mailbox command */
	double tsc_hz;          /* guest TSC rate, calibrated against CLOCK_MONOTONIC */
	struct kvmi_listener *l;
	struct kvmi_dom *dom;   /* NULL without a tool */
	bool exiting;           /* BENCH_CMD_EXIT posted */
};

struct vmm_opts {
	enum vmm_kind kind;
	const char *kvmi_vm;    /* path of kvmi-vm, or of kvmi-qemu */
	const char *qemu;       /* QEMU binary (NULL: qemu-system-x86_64) */
	const char *guest;      /* path of bench_guest.elf (QEMU: .bios next to it) */
	const char *tmpdir;     /* socket and log */
	const char *memory;     /* --memory value or NULL */
	unsigned nr_vcpus;
	bool introspect;        /* connect a tool (our client library) */
	bool verbose;           /* -vv: debug log (memslot changes) */
	double tsc_hz;          /* the guest TSC rate if known (another VM's): no calibration */
};

/* VMM_KVMI_QEMU for a path named kvmi-qemu, else VMM_KVMI_VM. */
enum vmm_kind vmm_kind_of(const char *path);
const char *vmm_kind_name(enum vmm_kind k);
/* Starts the VMM, accepts its connection when @introspect, waits for the
 * guest's mailbox and calibrates the TSC (unless o->tsc_hz gives it).
 * Exits the program on failure (the VMM dies with it). */
void vmm_start(struct vmm *v, const struct vmm_opts *o);
/* BENCH_CMD_EXIT (unless vmm_stop_begin() posted it), closes the tool,
 * waits for the VMM's clean exit.  vmm_stop_begin() first on many VMs
 * lets them end at once. */
void vmm_stop_begin(struct vmm *v);
void vmm_stop(struct vmm *v);

void gmem_read(struct vmm *v, uint64_t gpa, void *buf, size_t len);
void gmem_write(struct vmm *v, uint64_t gpa, const void *buf, size_t len);
uint64_t gmem_read64(struct vmm *v, uint64_t gpa);
void gmem_write64(struct vmm *v, uint64_t gpa, uint64_t val);
#define MBOX_FIELD(f) (BENCH_MBOX_GPA + __builtin_offsetof(struct bench_mbox, f))
#define VCPU_FIELD(i, f) (BENCH_MBOX_GPA + __builtin_offsetof(struct bench_mbox, v) + \
			  (i) * sizeof(struct bench_vcpu) + __builtin_offsetof(struct bench_vcpu, f))

/* Posts a command (args may be NULL); returns its seq. */
uint64_t mbox_post(struct vmm *v, uint64_t cmd, const uint64_t args[4]);
/* True once every vCPU acknowledged @seq; waits up to @timeout_ms (0: poll once). */
bool mbox_done(struct vmm *v, uint64_t seq, int timeout_ms);
/* Post + wait (dies on timeout). */
void mbox_run(struct vmm *v, uint64_t cmd, const uint64_t args[4], int timeout_ms);
/* vCPU @i's samples (uint64_t each) after a command, converted: cycles -> us. */
size_t vcpu_samples_us(struct vmm *v, unsigned i, double *out, size_t max);
double cycles_to_us(const struct vmm *v, double cycles);

/* The tool's side (v->dom): the next event (NULL after @timeout_ms; dies
 * on an error), CONTINUE to it (and frees it), every vCPU's SPIN count. */
struct kvmi_event_msg *next_event(struct vmm *v, int timeout_ms);
void reply_continue(struct vmm *v, struct kvmi_event_msg *ev);
void read_counts(struct vmm *v, uint64_t *counts);

#endif
