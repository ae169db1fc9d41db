/* SPDX-License-Identifier: MIT */
/*
 * bench-kvmi events: event round trips (PAUSE_VCPU, PF read / write /
 * exec, MSR write, single-step, breakpoint), timed in the guest, next to
 * the bare exit of the same kind in the same VM, under kvmi-vm or QEMU
 * through kvmi-qemu; and, under kvmi-vm, the census of the KVM ioctls each
 * event's path issues and what they cost there.  A new event plugs into
 * event_benches[].
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kvmi/kvmi.h>

#include "bench_kvmi.h"

/* Per-phase time budgets keep the whole `make bench` within minutes. */
#define EVENT_BUDGET_NS   (12ull * 1000000000ull)

/* ================================================================= floor */

/* Port-I/O exit round trips, timed in the guest around each OUT, on every
 * vCPU at once. */
static void floor_pio(struct vmm *v, bool ring0, uint64_t n)
{
	uint64_t args[4] = { n };
	size_t total = 0;
	double *all = xmalloc_d(n * v->nr_vcpus);
	char id[64];

	mbox_run(v, ring0 ? BENCH_CMD_PIO0 : BENCH_CMD_PIO3, args, 120000);
	for (unsigned i = 0; i < v->nr_vcpus; i++)
		total += vcpu_samples_us(v, i, all + total, n);
	snprintf(id, sizeof(id), "floor_pio%d_%uv", ring0 ? 0 : 3, v->nr_vcpus);
	result_samples(id, "us", all, total, "bare port-I/O exit round trip, ring %d guest, %u vCPU(s) at once",
		       ring0 ? 0 : 3, v->nr_vcpus);
	free(all);
}

/* ================================================================= events */

struct event_bench {
	const char *id;         /* result id prefix */
	const char *name;
	uint16_t event;         /* for CHECK_EVENT */
	/* NULL: no benchmark for it; else the number of events it handled. */
	uint64_t (*run)(struct vmm *v, const struct event_bench *e);
	const char *missing;    /* why run is NULL */
	unsigned variant;       /* run_pf: which access; bare_exits: the command */
};

/*
 * The census (census_events()) runs each benchmark twice with census_n
 * events and writes no figures: it only counts what the VMM logs.
 */
static unsigned census_n;

/* How many events a benchmark raises with 1, 2 or 4 vCPUs (census: census_n). */
static unsigned how_many(const struct vmm *v, unsigned one, unsigned two, unsigned four)
{
	if (census_n)
		return census_n;
	return v->nr_vcpus == 1 ? one : v->nr_vcpus == 2 ? two : four;
}

/* After CONTINUE: back in the guest, every vCPU's counter moves again. */
static void wait_running(struct vmm *v, const uint64_t *c_paused)
{
	uint64_t c[BENCH_MAX_VCPUS];

	for (unsigned k = 0;; k++) {
		unsigned moving = 0;

		sleep_us(30);
		read_counts(v, c);
		for (unsigned i = 0; i < v->nr_vcpus; i++)
			moving += c[i] != c_paused[i];
		if (moving == v->nr_vcpus)
			return;
		if (k > 100000)
			die("guest does not run after CONTINUE (log: %s)", v->log);
	}
}

/* Each vCPU's longest gap of each of @done rounds (tags 1..done), in us,
 * into @gaps; rounds without a gap counted in *missing. */
static size_t pause_gaps(struct vmm *v, unsigned done, double *gaps, unsigned *missing)
{
	size_t ngaps = 0;

	for (unsigned i = 0; i < v->nr_vcpus; i++) {
		uint64_t cnt = gmem_read64(v, VCPU_FIELD(i, nsamples));
		struct bench_gap *g = malloc(cnt * sizeof(*g) + 1);
		double *best = calloc(done + 1, sizeof(double));

		if (!g || !best)
			die("out of memory");
		gmem_read(v, BENCH_SAMPLES_GPA + i * BENCH_SAMPLES_SIZE, g, cnt * sizeof(*g));
		for (uint64_t k = 0; k < cnt; k++)
			if (g[k].tag >= 1 && g[k].tag <= done && g[k].cycles > best[g[k].tag])
				best[g[k].tag] = (double)g[k].cycles;
		for (unsigned r = 1; r <= done; r++) {
			if (best[r] > 0)
				gaps[ngaps++] = cycles_to_us(v, best[r]);
			else
				(*missing)++;
		}
		free(g);
		free(best);
	}
	return ngaps;
}

/*
 * PAUSE_VCPU: the guest spins in ring 3 reading rdtsc and records every gap
 * (time out of guest mode), tagged with the round number the tool wrote
 * before pausing.  One round: PAUSE_VCPU (@all: the batched pause-all
 * libkvmi sends, one PAUSE_VCPU with wait per vCPU; else one command
 * without wait), an event per vCPU, CONTINUE to each, then the tool waits
 * until every vCPU counts again.  The round trip of a vCPU is its longest
 * gap of that round: kick -> exit -> event -> reply -> guest entry, as the
 * guest saw it.
 */
static uint64_t pause_rounds(struct vmm *v, const char *prefix, const char *name, bool all)
{
	unsigned n = v->nr_vcpus, rounds = how_many(v, all ? 1500 : 3000, 1500, 800), done = 0, missing = 0;
	uint64_t args[4] = { (uint64_t)(v->tsc_hz * 2e-6) }, seq, c_paused[BENCH_MAX_VCPUS];
	uint64_t start = now_ns();
	double *deliver = xmalloc_d(rounds), *first = xmalloc_d(rounds), *acked = xmalloc_d(rounds);
	double *gaps = xmalloc_d((size_t)rounds * n);
	size_t ngaps = 0;
	char id[64];

	seq = mbox_post(v, BENCH_CMD_SPIN, args);
	sleep_us(20000);
	for (unsigned r = 1; r <= rounds && now_ns() - start < EVENT_BUDGET_NS; r++) {
		struct kvmi_event_msg *evs[BENCH_MAX_VCPUS];
		unsigned got = 0;
		uint64_t t0;
		int ret;

		gmem_write64(v, MBOX_FIELD(tag), r);
		t0 = now_ns();
		ret = all ? kvmi_dom_pause_vcpus(v->dom, n) : kvmi_dom_pause_vcpu(v->dom, 0, false);
		if (ret)
			die("PAUSE_VCPU: %s", kvmi_strerror(ret));
		acked[done] = (double)(now_ns() - t0) / 1e3;
		while (got < n) {
			struct kvmi_event_msg *ev = next_event(v, 5000);

			if (!ev)
				die("no PAUSE_VCPU event within 5 s (round %u, log: %s)", r, v->log);
			if (ev->event != KVMI_EVENT_PAUSE_VCPU) {
				reply_continue(v, ev);
				continue;
			}
			if (!got)
				first[done] = (double)(now_ns() - t0) / 1e3;
			evs[got++] = ev;
		}
		deliver[done] = (double)(now_ns() - t0) / 1e3;
		read_counts(v, c_paused);
		for (unsigned i = 0; i < n; i++)
			reply_continue(v, evs[i]);
		wait_running(v, c_paused);
		/* Let it run a little, with some jitter against phase locking. */
		sleep_us(50 + (r * 37) % 150);
		done++;
	}
	gmem_write64(v, MBOX_FIELD(stop), seq);
	if (!mbox_done(v, seq, 10000))
		die("guest did not stop spinning (log: %s)", v->log);
	if (census_n)
		goto out;

	ngaps = pause_gaps(v, done, gaps, &missing);
	snprintf(id, sizeof(id), "%s_%uv", prefix, n);
	result_samples(id, "us", gaps, ngaps,
		       "%s round trip seen by the guest (out of guest mode), %u vCPU(s) paused at once, %u rounds%s",
		       name, n, done, missing ? " (some rounds without a gap)" : "");
	snprintf(id, sizeof(id), "%s_%uv_tool", prefix, n);
	result_samples(id, "us", deliver, done, "tool side: %s of %u vCPU(s) sent -> the last event received", name, n);
	snprintf(id, sizeof(id), "%s_%uv_first", prefix, n);
	result_samples(id, "us", first, done, "tool side: %s of %u vCPU(s) sent -> the first event received", name, n);
	snprintf(id, sizeof(id), "%s_%uv_acked", prefix, n);
	result_samples(id, "us", acked, done, "tool side: %s of %u vCPU(s) sent -> every reply received", name, n);
out:
	free(deliver);
	free(first);
	free(acked);
	free(gaps);
	return (uint64_t)done * n;
}

/* CONTINUE to every event until the guest acknowledged command @seq;
 * returns how many of them were @event. */
static uint64_t continue_until_done(struct vmm *v, uint64_t seq, unsigned event)
{
	uint64_t events = 0;

	for (;;) {
		struct kvmi_event_msg *ev = next_event(v, 50);

		if (ev) {
			events += ev->event == event;
			reply_continue(v, ev);
			continue;
		}
		if (mbox_done(v, seq, 0))
			return events;
	}
}

/* One vCPU: one PAUSE_VCPU without wait (issue 5's figure), then the
 * pause-all a tool sends to pause a VM (event_pauseall_1v, what issue 15
 * compares the pause-all of several vCPUs with); several: the pause-all. */
static uint64_t run_pause(struct vmm *v, const struct event_bench *e)
{
	if (v->nr_vcpus > 1)
		return pause_rounds(v, e->id, "pause-all (PAUSE_VCPU with wait, batched)", true);
	return pause_rounds(v, e->id, e->name, false) +
	       pause_rounds(v, "event_pauseall", "pause-all (PAUSE_VCPU with wait, batched)", true);
}

/*
 * PF events: a page protected with SET_PAGE_ACCESS; every vCPU accesses it
 * in ring 3, timing each access with rdtsc; the tool answers each PF event
 * with CONTINUE.  The round trip is the access's time: exit -> event ->
 * reply -> access completed -> guest entry.
 *   write: stores to BENCH_PF_PAGE_GPA, protected r-x (the VMM completes
 *          the write);
 *   read:  loads from it, protected -wx (the VMM completes the load);
 *   exec:  calls of the function at BENCH_EXEC_PAGE_GPA, protected rw-
 *          (the engine runs the fetch as a one-instruction step with the
 *          page mapped back).
 */
enum { PF_WRITE, PF_READ, PF_EXEC };

static const struct pf_kind {
	uint64_t gpa;
	uint8_t rights;         /* what stays granted */
	uint64_t cmd;
	const char *access;
} pf_kinds[] = {
	[PF_WRITE] = { BENCH_PF_PAGE_GPA, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X, BENCH_CMD_STORES, "a timed store" },
	[PF_READ] = { BENCH_PF_PAGE_GPA, KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X, BENCH_CMD_LOADS, "a timed load" },
	[PF_EXEC] = { BENCH_EXEC_PAGE_GPA, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W, BENCH_CMD_CALLS,
		      "a timed call of a one-instruction function (ret) in the page" },
};

static uint64_t run_pf(struct vmm *v, const struct event_bench *e)
{
	const struct pf_kind *k = &pf_kinds[e->variant];
	unsigned n = v->nr_vcpus;
	uint64_t count = how_many(v, 3000, 1500, 800), args[4] = { count }, seq, events, gpa = k->gpa;
	uint8_t rights = k->rights, rwx = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X;
	double *all = xmalloc_d(count * n);
	size_t total = 0;
	char id[64];
	int ret;

	for (unsigned i = 0; i < n; i++) {
		ret = kvmi_dom_control_events(v->dom, (uint16_t)i, KVMI_EVENT_PF, true);
		if (ret)
			die("CONTROL_EVENTS PF: %s", kvmi_strerror(ret));
	}
	ret = kvmi_dom_set_page_access(v->dom, &gpa, &rights, 1, 0);
	if (ret)
		die("SET_PAGE_ACCESS: %s", kvmi_strerror(ret));
	seq = mbox_post(v, k->cmd, args);
	events = continue_until_done(v, seq, KVMI_EVENT_PF);
	ret = kvmi_dom_set_page_access(v->dom, &gpa, &rwx, 1, 0);
	for (unsigned i = 0; i < n && !ret; i++)
		ret = kvmi_dom_control_events(v->dom, (uint16_t)i, KVMI_EVENT_PF, false);
	if (ret)
		die("undoing the PF set-up: %s", kvmi_strerror(ret));
	if (events != count * n)
		die("%s: %llu PF events for %llu accesses", e->name, (unsigned long long)events,
		    (unsigned long long)(count * n));
	if (census_n)
		goto out;
	for (unsigned i = 0; i < n; i++)
		total += vcpu_samples_us(v, i, all + total, count);
	snprintf(id, sizeof(id), "%s_%uv", e->id, n);
	result_samples(id, "us", all, total, "%s round trip seen by the guest (%s), %u vCPU(s) at once, %llu PF events",
		       e->name, k->access, n, (unsigned long long)events);
out:
	free(all);
	return events;
}

/*
 * Register writes: every vCPU writes a watched register in ring 0, each
 * write timed with rdtsc, and the tool answers each event with CONTINUE
 * and the value the guest wrote (reply_continue).
 *   MSR: WRMSR of MSR 0x175 (SYSENTER_ESP), watched with CONTROL_MSR; the
 *        same loop unwatched is measured first (an in-kernel WRMSR, no exit).
 *   CR:  MOV to CR4 of its own value, watched with CONTROL_CR(4); CR events
 *        come from the BPF hook on KVM's CR-write functions (the real-KVM
 *        box; CHECK_EVENT refuses them elsewhere).
 */
#define BENCH_MSR 0x175

struct reg_write {
	uint64_t cmd;                      /* the guest's timed loop */
	unsigned event;                    /* KVMI_EVENT_MSR or _CR */
	const char *insn;                  /* for the report */
	int (*control)(struct kvmi_dom *dom, uint16_t vcpu, bool on);
};

static int control_msr(struct kvmi_dom *dom, uint16_t vcpu, bool on)
{
	return kvmi_dom_control_msr(dom, vcpu, BENCH_MSR, on);
}

static int control_cr4(struct kvmi_dom *dom, uint16_t vcpu, bool on)
{
	return kvmi_dom_control_cr(dom, vcpu, 4, on);
}

static uint64_t run_reg_write(struct vmm *v, const struct event_bench *e, const struct reg_write *w)
{
	unsigned n = v->nr_vcpus;
	uint64_t writes = how_many(v, 2000, 1000, 500), args[4] = { writes, BENCH_MSR }, seq, events;
	double *all = xmalloc_d(writes * n);
	size_t total = 0;
	char id[64];
	int ret = 0;

	for (unsigned i = 0; i < n && !ret; i++) {
		ret = kvmi_dom_control_events(v->dom, (uint16_t)i, w->event, true);
		if (!ret)
			ret = w->control(v->dom, (uint16_t)i, true);
	}
	if (ret)
		die("%s: CONTROL_EVENTS and its register control: %s", e->name, kvmi_strerror(ret));
	seq = mbox_post(v, w->cmd, args);
	events = continue_until_done(v, seq, w->event);
	for (unsigned i = 0; i < n && !ret; i++) {
		ret = w->control(v->dom, (uint16_t)i, false);
		if (!ret)
			ret = kvmi_dom_control_events(v->dom, (uint16_t)i, w->event, false);
	}
	if (ret)
		die("%s: undoing the set-up: %s", e->name, kvmi_strerror(ret));
	if (!census_n) {
		for (unsigned i = 0; i < n; i++)
			total += vcpu_samples_us(v, i, all + total, writes);
		snprintf(id, sizeof(id), "%s_%uv", e->id, n);
		result_samples(id, "us", all, total, "%s round trip seen by the guest (a timed ring-0 %s), "
			       "%u vCPU(s) at once, %llu events", e->name, w->insn, n, (unsigned long long)events);
	}
	free(all);
	return events;
}

static uint64_t run_msr_write(struct vmm *v, const struct event_bench *e)
{
	static const struct reg_write msr = { BENCH_CMD_WRMSR0, KVMI_EVENT_MSR, "WRMSR", control_msr };
	uint64_t args[4] = { how_many(v, 2000, 1000, 500), BENCH_MSR };
	double *all = xmalloc_d(args[0] * v->nr_vcpus);
	size_t total = 0;
	char id[64];

	if (!census_n) {
		mbox_run(v, BENCH_CMD_WRMSR0, args, 120000);
		for (unsigned i = 0; i < v->nr_vcpus; i++)
			total += vcpu_samples_us(v, i, all + total, args[0]);
		snprintf(id, sizeof(id), "wrmsr0_unwatched_%uv", v->nr_vcpus);
		result_samples(id, "us", all, total,
			       "ring-0 WRMSR of an MSR nobody watches (no exit to userspace), %u vCPU(s)", v->nr_vcpus);
	}
	free(all);
	return run_reg_write(v, e, &msr);
}

static uint64_t run_cr_write(struct vmm *v, const struct event_bench *e)
{
	static const struct reg_write cr4 = { BENCH_CMD_WRCR4_0, KVMI_EVENT_CR, "MOV to CR4", control_cr4 };

	return run_reg_write(v, e, &cr4);
}

/*
 * Single-step: vCPU 0 spins in ring 0 (this host steps ring 0 only); the
 * tool pauses it, turns stepping on during the PAUSE_VCPU event, and then
 * answers SINGLESTEP events.  A step's round trip is the debugger's view,
 * as for gdb's 's': reply sent -> the next SINGLESTEP event received.
 */
static uint64_t run_singlestep(struct vmm *v, const struct event_bench *e)
{
	const unsigned steps = how_many(v, 2000, 0, 0);
	uint64_t seq, t_reply;
	struct kvmi_event_msg *ev;
	double *lat = xmalloc_d(steps);
	unsigned done = 0, other = 0;
	char id[64];
	int ret;

	snprintf(id, sizeof(id), "%s_%uv", e->id, v->nr_vcpus);
	if (v->nr_vcpus != 1) {
		result_na(id, "%s: measured with one vCPU only", e->name);
		return 0;
	}
	seq = mbox_post(v, BENCH_CMD_SPIN0, NULL);
	for (int i = 0; gmem_read64(v, VCPU_FIELD(0, result[0])) != seq; i++) {
		if (i > 10000)
			die("guest did not reach its ring-0 loop (log: %s)", v->log);
		sleep_us(1000);
	}
	ret = kvmi_dom_pause_vcpu(v->dom, 0, true);
	if (ret)
		die("PAUSE_VCPU: %s", kvmi_strerror(ret));
	ev = next_event(v, 5000);
	if (!ev || ev->event != KVMI_EVENT_PAUSE_VCPU)
		die("expected a PAUSE_VCPU event before stepping");
	ret = kvmi_dom_control_events(v->dom, 0, KVMI_EVENT_SINGLESTEP, true);
	if (!ret)
		ret = kvmi_dom_control_singlestep(v->dom, 0, true);
	if (ret)
		die("CONTROL_SINGLESTEP: %s", kvmi_strerror(ret));
	t_reply = now_ns();
	reply_continue(v, ev);
	while (done < steps) {
		uint64_t t;

		ev = next_event(v, 5000);
		t = now_ns();
		if (!ev)
			die("no SINGLESTEP event within 5 s (step %u)", done);
		if (ev->event == KVMI_EVENT_SINGLESTEP) {
			lat[done++] = (double)(t - t_reply) / 1e3;
			if (done == steps) {
				ret = kvmi_dom_control_singlestep(v->dom, 0, false);
				if (ret)
					die("CONTROL_SINGLESTEP off: %s", kvmi_strerror(ret));
			}
		} else {
			other++;
		}
		t_reply = now_ns();
		reply_continue(v, ev);
	}
	while ((ev = next_event(v, 200)))
		reply_continue(v, ev);
	kvmi_dom_control_events(v->dom, 0, KVMI_EVENT_SINGLESTEP, false);
	gmem_write64(v, MBOX_FIELD(stop), seq);
	if (!mbox_done(v, seq, 10000))
		die("guest did not leave its ring-0 loop (log: %s)", v->log);
	if (!census_n)
		result_samples(id, "us", lat, done,
			       "%s round trip seen by the tool (reply sent -> next SINGLESTEP event), ring-0 loop, %u steps%s",
			       e->name, done, other ? " (other events in between)" : "");
	free(lat);
	return done;
}

/*
 * Breakpoint: every vCPU executes int3 in ring 0, timed with rdtsc; each
 * goes through the guest's own #BP handler.  First with the BREAKPOINT
 * event off (the bare exit of the same kind: where the host reports int3
 * to userspace, the VMM reinjects it without asking anyone), then on, the
 * tool answering CONTINUE (the #BP is reinjected after the reply).
 */
static uint64_t run_breakpoint(struct vmm *v, const struct event_bench *e)
{
	unsigned n = v->nr_vcpus;
	uint64_t count = how_many(v, 2000, 1000, 500), args[4] = { count }, seq, events;
	double *all = xmalloc_d(count * n);
	size_t total = 0;
	char id[64];
	int ret = 0;

	if (!census_n) {
		mbox_run(v, BENCH_CMD_INT3_0, args, 120000);
		for (unsigned i = 0; i < n; i++)
			total += vcpu_samples_us(v, i, all + total, count);
		snprintf(id, sizeof(id), "int3_noevent_%uv", n);
		result_samples(id, "us", all, total,
			       "ring-0 int3 through the guest's #BP handler, BREAKPOINT event off, %u vCPU(s)", n);
	}
	for (unsigned i = 0; i < n && !ret; i++)
		ret = kvmi_dom_control_events(v->dom, (uint16_t)i, KVMI_EVENT_BREAKPOINT, true);
	if (ret)
		die("CONTROL_EVENTS BREAKPOINT: %s", kvmi_strerror(ret));
	seq = mbox_post(v, BENCH_CMD_INT3_0, args);
	events = continue_until_done(v, seq, KVMI_EVENT_BREAKPOINT);
	for (unsigned i = 0; i < n && !ret; i++)
		ret = kvmi_dom_control_events(v->dom, (uint16_t)i, KVMI_EVENT_BREAKPOINT, false);
	if (ret)
		die("undoing the BREAKPOINT set-up: %s", kvmi_strerror(ret));
	for (unsigned i = 0; i < n; i++)
		if (gmem_read64(v, VCPU_FIELD(i, result[1])) != count)
			die("breakpoint: vCPU %u's #BP handler ran %llu times for %llu int3", i,
			    (unsigned long long)gmem_read64(v, VCPU_FIELD(i, result[1])), (unsigned long long)count);
	if (!census_n) {
		total = 0;
		for (unsigned i = 0; i < n; i++)
			total += vcpu_samples_us(v, i, all + total, count);
		snprintf(id, sizeof(id), "%s_%uv", e->id, n);
		result_samples(id, "us", all, total,
			       "%s round trip seen by the guest (a timed ring-0 int3, reinjected after CONTINUE), "
			       "%u vCPU(s) at once, %llu BREAKPOINT events", e->name, n, (unsigned long long)events);
	}
	free(all);
	return events;
}

static const struct event_bench event_benches[] = {
	{ "event_pause", "PAUSE_VCPU", KVMI_EVENT_PAUSE_VCPU, run_pause, NULL, 0 },
	{ "event_msr", "MSR write", KVMI_EVENT_MSR, run_msr_write, NULL, 0 },
	{ "event_pf_write", "pre-write PF", KVMI_EVENT_PF, run_pf, NULL, PF_WRITE },
	{ "event_pf_read", "pre-read PF", KVMI_EVENT_PF, run_pf, NULL, PF_READ },
	{ "event_pf_exec", "pre-exec PF", KVMI_EVENT_PF, run_pf, NULL, PF_EXEC },
	{ "event_singlestep", "single-step", KVMI_EVENT_SINGLESTEP, run_singlestep, NULL, 0 },
	/* Where the host reports int3 (CHECK_EVENT says so). */
	{ "event_breakpoint", "breakpoint", KVMI_EVENT_BREAKPOINT, run_breakpoint, NULL, 0 },
	/* CR events come from a BPF hook on KVM's own functions: CHECK_EVENT
	 * says whether this host has it (the real-KVM box does). */
	{ "event_cr", "CR write", KVMI_EVENT_CR, run_cr_write, NULL, 0 },
};

/* ================================================================= census */

/* What kvmi-vm logged at debug level about the engine's ioctls (one line
 * before each entry that followed some: "engine ioctls before this entry:
 * N, T ns"). */
struct tally {
	uint64_t ioctls, ns, lines;
};

/* Adds up the lines from byte @from of @log on; returns the log's size. */
static long log_tally(const char *log, long from, struct tally *t)
{
	static const char key[] = "engine ioctls before this entry: ";
	char line[512];
	long end;
	FILE *f = fopen(log, "r");

	memset(t, 0, sizeof(*t));
	if (!f)
		return from;
	fseek(f, from, SEEK_SET);
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, key);
		unsigned long long n, ns;

		if (p && sscanf(p + sizeof(key) - 1, "%llu, %llu ns", &n, &ns) == 2) {
			t->ioctls += n;
			t->ns += ns;
			t->lines++;
		}
	}
	end = ftell(f);
	fclose(f);
	return end;
}

/*
 * The KVM ioctls of each event's path and what each cost there, counted
 * by kvmi-vm itself (kvm_ioctl.h's per-thread tally, logged at debug level
 * before each entry): a separate VM at debug level, each benchmark run with
 * 20 and with 80 events; the difference divided by the difference in events
 * is what one event adds (set-up and tear-down cancel out).  No time of
 * this VM is reported: its log is written on every event.
 */
static void census_one(struct vmm *v, const struct event_bench *e)
{
	static const unsigned counts[2] = { 20, 80 };
	struct tally t[2];
	uint64_t events[2];
	long off = log_tally(v->log, 0, &t[0]);
	double dev, dio;
	char id[64];

	for (unsigned k = 0; k < 2; k++) {
		census_n = counts[k];
		events[k] = e->run(v, e);
		sleep_us(20000);        /* the last line follows the last entry */
		off = log_tally(v->log, off, &t[k]);
	}
	census_n = 0;
	dev = (double)events[1] - (double)events[0];
	dio = (double)t[1].ioctls - (double)t[0].ioctls;
	snprintf(id, sizeof(id), "ioctls_%s", e->id);
	if (dev <= 0) {
		result_na(id, "%s: the census saw no more events in its longer run", e->name);
		return;
	}
	result_value(id, "ioctls", dio / dev,
		     "%s: KVM ioctls the engine issues per event (kvmi-vm's count, %llu and %llu events: %llu and %llu "
		     "ioctls before %llu and %llu entries)", e->name, (unsigned long long)events[0],
		     (unsigned long long)events[1], (unsigned long long)t[0].ioctls, (unsigned long long)t[1].ioctls,
		     (unsigned long long)t[0].lines, (unsigned long long)t[1].lines);
	snprintf(id, sizeof(id), "ioctl_cost_%s", e->id);
	if (dio > 0)
		result_value(id, "us", ((double)t[1].ns - (double)t[0].ns) / dio / 1e3,
			     "%s: time of one of those ioctls as this event's path pays it (kvmi-vm's clock around "
			     "each, mean)", e->name);
	snprintf(id, sizeof(id), "entries_%s", e->id);
	result_value(id, "entries", ((double)t[1].lines - (double)t[0].lines) / dev,
		     "%s: guest entries preceded by engine ioctls, per event", e->name);
}

/* The bare exits, for the census: what the engine issues without an event. */
static uint64_t bare_exits(struct vmm *v, const struct event_bench *e)
{
	uint64_t args[4] = { census_n };

	mbox_run(v, e->variant, args, 120000);
	return (uint64_t)census_n * v->nr_vcpus;
}

/* Commands a paused vCPU runs, for the census. */
static uint64_t census_commands(struct vmm *v, const struct event_bench *e)
{
	return bench_commands_census(v, e->variant, census_n);
}

static const struct event_bench census_bare[] = {
	{ "floor_pio3", "bare port-I/O exit, ring 3", 0, bare_exits, NULL, BENCH_CMD_PIO3 },
	{ "floor_pio0", "bare port-I/O exit, ring 0", 0, bare_exits, NULL, BENCH_CMD_PIO0 },
	{ "int3_noevent", "int3, BREAKPOINT off", KVMI_EVENT_BREAKPOINT, bare_exits, NULL, BENCH_CMD_INT3_0 },
	{ "cmd_get_registers", "GET_REGISTERS", 0, census_commands, NULL, 0 },
	{ "cmd_translate_gva", "TRANSLATE_GVA", 0, census_commands, NULL, 1 },
};

static void census_events(void)
{
	struct vmm v;
	struct vmm_opts o = opts;

	o.nr_vcpus = 1;
	o.introspect = true;
	o.verbose = true;
	printf("events, census of the engine's ioctls (%s at debug level)\n", vmm_kind_name(o.kind));
	vmm_start(&v, &o);
	for (size_t k = 0; k < sizeof(census_bare) / sizeof(census_bare[0]); k++)
		if (!census_bare[k].event || kvmi_dom_check_event(v.dom, census_bare[k].event) == 0)
			census_one(&v, &census_bare[k]);
	for (size_t k = 0; k < sizeof(event_benches) / sizeof(event_benches[0]); k++) {
		const struct event_bench *e = &event_benches[k];

		if (e->run && kvmi_dom_check_event(v.dom, e->event) == 0)
			census_one(&v, e);
	}
	vmm_stop(&v);
}

static void events_config(unsigned nr_vcpus)
{
	struct vmm v;
	struct vmm_opts o = opts;
	uint64_t hz = 0;

	o.nr_vcpus = nr_vcpus;
	o.introspect = true;
	printf("events, %s, %u vCPU(s)\n", vmm_kind_name(o.kind), nr_vcpus);
	vmm_start(&v, &o);
	if (nr_vcpus == 1) {
		kvmi_dom_get_vcpu_info(v.dom, 0, &hz);
		result_value("guest_tsc_mhz", "MHz", v.tsc_hz / 1e6,
			     "guest TSC calibrated against CLOCK_MONOTONIC (GET_VCPU_INFO says %.1f MHz)",
			     (double)hz / 1e6);
	}
	floor_pio(&v, false, nr_vcpus == 1 ? 20000 : 6000);
	floor_pio(&v, true, nr_vcpus == 1 ? 3000 : 1000);
	for (size_t k = 0; k < sizeof(event_benches) / sizeof(event_benches[0]); k++) {
		const struct event_bench *e = &event_benches[k];
		int ret = kvmi_dom_check_event(v.dom, e->event);
		char id[64];

		snprintf(id, sizeof(id), "%s_%uv", e->id, nr_vcpus);
		if (ret)
			result_na(id, "%s event: CHECK_EVENT answers \"%s\"", e->name, kvmi_strerror(ret));
		else if (!e->run)
			result_na(id, "%s: %s", e->name, e->missing);
		else
			e->run(&v, e);
	}
	vmm_stop(&v);
}

/* The floors without a VM once (with kvmi-vm), then each vCPU count. */
void bench_events(void)
{
	/* BENCH_EVENT_VCPUS: which configurations (default "1 2 4"). */
	const char *which = getenv("BENCH_EVENT_VCPUS");

	const char *sfx = getenv("BENCH_ID_SUFFIX");

	if (opts.kind == VMM_KVMI_VM)
		bench_baselines();
	/* kvmi-vm counts its ioctls; once per run (not again with a suffix) */
	if (opts.kind == VMM_KVMI_VM && !(sfx && *sfx))
		census_events();
	if (!which || !*which)
		which = "1 2 4";
	for (const char *c = which; *c; c++)
		if (*c >= '1' && *c <= '4')
			events_config((unsigned)(*c - '0'));
}
