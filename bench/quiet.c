/* SPDX-License-Identifier: MIT */
/*
 * bench-kvmi quiet: what introspection costs a guest that nobody
 * introspects.  The same guest and workload in several variants of VM, run
 * in rounds (one VM of each variant per round, the order rotating from
 * round to round, so that slow drift of the host cancels); each variant is
 * compared with the first one of its round:
 *
 *   kvmi-vm:   no --introspector | a tool attached, nothing enabled
 *   kvmi-qemu: stock QEMU | QEMU with libkvmi-qemu.so, no tool |
 *              the same with a tool attached, nothing enabled
 *
 * Two workloads per VM: ring-3 compute over an L2-sized buffer (under
 * QEMU with an OUT after every QUIET_QEMU_PERIOD steps, as a quiet guest
 * exits for its timer) and ring-3 port-I/O exits (the per-exit cost).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_kvmi.h"

#define QUIET_STEPS  5000000ull
#define QUIET_REPS   20
#define QUIET_PIO    2000
#define QUIET_ROUNDS 12
/* About a thousand exits per second of work here (5,000,000 steps take
 * ~8 ms on the machine of RESULTS.md): a 1 kHz timer tick's worth. */
#define QUIET_QEMU_PERIOD 500000ull
#define QUIET_MAX_VARIANTS 3

struct quiet_variant {
	const char *name;       /* ids: quiet_work_NAME, quiet_pio3_NAME */
	const char *ovh;        /* ids: quiet_work_overhead OVH, ... (vs the first variant) */
	const char *what;
	enum vmm_kind kind;
	bool tool;
};

static const struct quiet_variant kvmi_vm_variants[] = {
	{ "none", NULL, "kvmi-vm, no tool", VMM_KVMI_VM, false },
	{ "tool", "", "kvmi-vm with a KVMI tool attached, nothing enabled", VMM_KVMI_VM, true },
};

static const struct quiet_variant qemu_variants[] = {
	{ "qemu_plain", NULL, "stock QEMU", VMM_QEMU, false },
	{ "qemu_lib", "_qemu_lib", "QEMU through kvmi-qemu, no tool", VMM_KVMI_QEMU, false },
	{ "qemu_tool", "_qemu_tool", "QEMU through kvmi-qemu, a KVMI tool attached, nothing enabled", VMM_KVMI_QEMU,
	  true },
};

/* One variant's samples over all rounds, and its figures per round. */
struct quiet_set {
	double *work, *pio;
	size_t nwork, npio;
	double work_med[QUIET_ROUNDS], pio_med[QUIET_ROUNDS];
	double work_min[QUIET_ROUNDS];
};

static double median_of(const double *v, size_t n)
{
	double *c = xmalloc_d(n), m;
	struct stats s;

	memcpy(c, v, n * sizeof(*c));
	stats_of(c, n, &s);
	m = s.p50;
	free(c);
	return m;
}

static void quiet_run(const struct quiet_variant *var, uint64_t period, struct quiet_set *q, unsigned round)
{
	struct vmm v;
	struct vmm_opts o = opts;
	uint64_t args[4] = { QUIET_STEPS, 2, period };
	size_t n;

	o.nr_vcpus = 1;
	o.kind = var->kind;
	o.introspect = var->tool;
	vmm_start(&v, &o);
	mbox_run(&v, BENCH_CMD_WORK, args, 120000);     /* warm-up, not recorded */
	args[1] = QUIET_REPS;
	mbox_run(&v, BENCH_CMD_WORK, args, 120000);
	n = vcpu_samples_us(&v, 0, q->work + q->nwork, QUIET_REPS);
	q->work_med[round] = median_of(q->work + q->nwork, n);
	q->work_min[round] = q->work[q->nwork];
	for (size_t k = 1; k < n; k++)
		if (q->work[q->nwork + k] < q->work_min[round])
			q->work_min[round] = q->work[q->nwork + k];
	q->nwork += n;
	args[0] = QUIET_PIO;
	args[2] = 0;
	mbox_run(&v, BENCH_CMD_PIO3, args, 120000);
	n = vcpu_samples_us(&v, 0, q->pio + q->npio, QUIET_PIO);
	q->pio_med[round] = median_of(q->pio + q->npio, n);
	q->npio += n;
	vmm_stop(&v);
}

/* Overhead in % of each round (@var vs the first variant of the round). */
static void round_overheads(const char *base, const char *sfx, const double *var, const double *first,
			    const char *what, const char *vs)
{
	double r[QUIET_ROUNDS];
	char list[QUIET_ROUNDS * 10] = "", id[80];
	size_t len = 0;

	for (unsigned p = 0; p < QUIET_ROUNDS; p++) {
		r[p] = (var[p] / first[p] - 1) * 100;
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%+.1f", p ? " " : "", r[p]);
	}
	snprintf(id, sizeof(id), "%s%s", base, sfx);
	result_samples(id, "%", r, QUIET_ROUNDS, "%s (%s): overhead of each back-to-back round of VMs, in %%: %s",
		       what, vs, list);
}

static void quiet_report(const struct quiet_variant *vars, unsigned nv, struct quiet_set *q, uint64_t period)
{
	char id[80], what[200];

	for (unsigned k = 0; k < nv; k++) {
		snprintf(id, sizeof(id), "quiet_work_%s", vars[k].name);
		result_samples(id, "us", q[k].work, q[k].nwork,
			       "ring-3 workload (%llu LCG steps + adds over 256 KiB%s), %s, %u VMs", QUIET_STEPS,
			       period ? ", an OUT every 500,000 steps" : "", vars[k].what, QUIET_ROUNDS);
		snprintf(id, sizeof(id), "quiet_pio3_%s", vars[k].name);
		result_samples(id, "us", q[k].pio, q[k].npio, "ring-3 port-I/O exit, %s", vars[k].what);
	}
	for (unsigned k = 1; k < nv; k++) {
		snprintf(what, sizeof(what), "%s vs %s", vars[k].what, vars[0].what);
		round_overheads("quiet_work_overhead", vars[k].ovh, q[k].work_med, q[0].work_med,
				"ring-3 workload, median repetition", what);
		round_overheads("quiet_work_overhead_min", vars[k].ovh, q[k].work_min, q[0].work_min,
				"ring-3 workload, fastest repetition (noise only adds time)", what);
		round_overheads("quiet_pio3_overhead", vars[k].ovh, q[k].pio_med, q[0].pio_med, "ring-3 port-I/O exit",
				what);
	}
}

void bench_quiet(void)
{
	bool qemu = opts.kind != VMM_KVMI_VM;
	const struct quiet_variant *vars = qemu ? qemu_variants : kvmi_vm_variants;
	unsigned nv = qemu ? 3 : 2;
	uint64_t period = qemu ? QUIET_QEMU_PERIOD : 0;
	struct quiet_set q[QUIET_MAX_VARIANTS];

	printf("quiet overhead, %s\n", qemu ? "QEMU" : "kvmi-vm");
	memset(q, 0, sizeof(q));
	for (unsigned k = 0; k < nv; k++) {
		q[k].work = xmalloc_d(QUIET_REPS * QUIET_ROUNDS);
		q[k].pio = xmalloc_d(QUIET_PIO * QUIET_ROUNDS);
	}
	for (unsigned r = 0; r < QUIET_ROUNDS; r++)
		for (unsigned i = 0; i < nv; i++) {
			unsigned k = (r + i) % nv;

			quiet_run(&vars[k], period, &q[k], r);
		}
	quiet_report(vars, nv, q, period);
	for (unsigned k = 0; k < nv; k++) {
		free(q[k].work);
		free(q[k].pio);
	}
}
