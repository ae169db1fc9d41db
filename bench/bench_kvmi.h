/* SPDX-License-Identifier: MIT */
/*
 * The phases of bench-kvmi (bench_kvmi.c runs one per invocation), each in
 * its own file, and the options they share: which VMM, which guest.
 */
#ifndef KVMI_BENCH_KVMI_H
#define KVMI_BENCH_KVMI_H

#include "bench.h"

/* The VMM (kind, kvmi-vm or kvmi-qemu, QEMU binary), guest and tmpdir of
 * this run; nr_vcpus and introspect are set by each phase. */
extern struct vmm_opts opts;

void bench_baselines(void);     /* baselines.c: IPC and ioctl floors, no VM */
void bench_events(void);        /* events.c */
void bench_memory(void);        /* memory.c */
struct vmm;
void bench_commands(struct vmm *v);     /* commands.c: with vCPU 0 paused */
/* commands.c: @n GET_REGISTERS (@which 0) or TRANSLATE_GVA (1) with vCPU 0
 * paused, for the census of events.c; returns @n. */
uint64_t bench_commands_census(struct vmm *v, unsigned which, unsigned n);
void bench_pagetrack(void);     /* pagetrack.c */
void bench_quiet(void);         /* quiet.c */
void bench_scale(void);         /* scale.c: one tool, many guests */

#endif
