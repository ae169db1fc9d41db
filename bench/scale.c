/* SPDX-License-Identifier: MIT */
/*
 * bench-kvmi scale: one tool thread, on our client library, serving many
 * kvmi-vm guests at once (issue 15, item 4).
 *
 * SCALE_GUESTS guests of one vCPU and SCALE_MEMORY of RAM start once.  The
 * idle benchmark guest spins on its mailbox and would take a CPU, so each
 * one is parked by a PAUSE_VCPU event the tool holds unanswered.  A round
 * releases N of them into a loop of stores to their write-protected page
 * (BENCH_CMD_STORES) and answers every pre-write PF event with CONTINUE,
 * from one thread that waits on all the domains' event descriptors
 * (kvmi_dom_event_fd) with epoll.  Per round, over a fixed window: the
 * events answered per second, the stores' round trips timed in the guests
 * (only the stores whose events fell in the window), the CPU time of the
 * tool and of every kvmi-vm (÷ wall time: how many of the CPUs were busy)
 * and the tool's RSS.  N = 1 runs on three different guests: their median
 * is the rate of a guest alone.
 *
 * Memory: kvmi-vm's RSS without guest RAM (RssAnon + RssFile of
 * /proc/PID/status; the RAM is a memfd, counted in RssShmem) for VMs
 * without --introspector and for the guests above, which a tool served.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

#include "bench_kvmi.h"

#define SCALE_GUESTS    32
#define SCALE_MEMORY    "64M"           /* the PF page is at 48 MiB */
#define SCALE_NONE_VMS  4               /* VMs without a tool, for their RSS */
#define SCALE_WARMUP_NS (200ull * 1000000ull)
#define SCALE_WINDOW_NS (1500ull * 1000000ull)
#define SCALE_STORES    (BENCH_SAMPLES_SIZE / 8)

struct sguest {
	struct vmm v;
	struct kvmi_event_msg *held;    /* the PAUSE_VCPU event that parks it */
	uint64_t events;                /* PF events answered this round */
	uint64_t seq;                   /* its STORES command */
	uint64_t ev0, ev1;              /* events at the window's start and end */
};

static struct sguest guests[SCALE_GUESTS];
static int ep = -1;

/* CPU seconds of all our processes, and of the machine, at one moment. */
struct cpu_snap {
	uint64_t t_ns;
	double tool_s, vms_s;
	double mach_busy_s, mach_all_s;
};

/* ================================================================= /proc */

/* utime + stime of a process (all its threads), in seconds. */
static double proc_cpu_s(pid_t pid)
{
	unsigned long long ut = 0, st = 0;
	char path[64], buf[1024], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	/* After the name: state (field 3) ... utime (14), stime (15). */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		die("cannot parse %s", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The machine's busy and total CPU time (the first line of /proc/stat). */
static void machine_cpu_s(double *busy, double *all)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	double hz = (double)sysconf(_SC_CLK_TCK), sum = 0;

	if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
			 &v[5], &v[6], &v[7]) != 8)
		die("cannot read /proc/stat");
	fclose(f);
	for (int i = 0; i < 8; i++)
		sum += (double)v[i];
	*all = sum / hz;
	*busy = (sum - (double)v[3] - (double)v[4]) / hz;        /* less idle and iowait */
}

/* RssAnon + RssFile of /proc/PID/status ("self" for @pid 0), in KiB: the
 * resident memory without shared memory, which holds kvmi-vm's guest RAM. */
static double rss_kib(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kib, sum = 0;
	FILE *f;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/status");
	f = fopen(path, "r");
	if (!f)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %llu", &kib) == 1 || sscanf(line, "RssFile: %llu", &kib) == 1)
			sum += kib;
	fclose(f);
	return (double)sum;
}

static void snap(struct cpu_snap *s)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	s->tool_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		    (double)ru.ru_stime.tv_usec / 1e6;
	s->vms_s = 0;
	for (unsigned i = 0; i < SCALE_GUESTS; i++)
		s->vms_s += proc_cpu_s(guests[i].v.pid);
	machine_cpu_s(&s->mach_busy_s, &s->mach_all_s);
	s->t_ns = now_ns();
}

/* ================================================================= guests */

/* Holds the guest's vCPU in a PAUSE_VCPU event (answering what comes first). */
static void park(struct sguest *g)
{
	int ret = kvmi_dom_pause_vcpu(g->v.dom, 0, false);

	if (ret)
		die("PAUSE_VCPU: %s", kvmi_strerror(ret));
	for (;;) {
		struct kvmi_event_msg *ev = next_event(&g->v, 5000);

		if (!ev)
			die("no PAUSE_VCPU event within 5 s (log: %s)", g->v.log);
		if (ev->event == KVMI_EVENT_PAUSE_VCPU) {
			g->held = ev;
			return;
		}
		reply_continue(&g->v, ev);
	}
}

static void set_access(struct sguest *g, uint8_t access)
{
	uint64_t gpa = BENCH_PF_PAGE_GPA;
	int ret = kvmi_dom_set_page_access(g->v.dom, &gpa, &access, 1, 0);

	if (ret)
		die("SET_PAGE_ACCESS: %s (log: %s)", kvmi_strerror(ret), g->v.log);
}

static void start_guests(void)
{
	struct vmm_opts o = opts;
	struct epoll_event e = { .events = EPOLLIN };
	uint64_t t0 = now_ns();

	o.nr_vcpus = 1;
	o.introspect = true;
	o.memory = SCALE_MEMORY;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	for (unsigned i = 0; i < SCALE_GUESTS; i++) {
		struct sguest *g = &guests[i];
		int ret, fd;

		o.tsc_hz = i ? guests[0].v.tsc_hz : 0;
		vmm_start(&g->v, &o);
		ret = kvmi_dom_control_events(g->v.dom, 0, KVMI_EVENT_PF, true);
		if (ret)
			die("CONTROL_EVENTS PF: %s", kvmi_strerror(ret));
		park(g);
		fd = kvmi_dom_event_fd(g->v.dom);
		if (fd < 0)
			die("kvmi_dom_event_fd: %s", kvmi_strerror(fd));
		e.data.u32 = i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e))
			die("epoll_ctl: %s", strerror(errno));
	}
	note("%u guests started and parked in %.1f s", SCALE_GUESTS, (double)(now_ns() - t0) / 1e9);
}

static void stop_guests(void)
{
	for (unsigned i = 0; i < SCALE_GUESTS; i++) {
		vmm_stop_begin(&guests[i].v);
		reply_continue(&guests[i].v, guests[i].held);
		guests[i].held = NULL;
	}
	for (unsigned i = 0; i < SCALE_GUESTS; i++)
		vmm_stop(&guests[i].v);
	close(ep);
}

/* ================================================================= serving */

/* One event of a guest whose descriptor is up: CONTINUE. */
static void serve_one(struct sguest *g)
{
	struct kvmi_event_msg *ev = NULL;
	int ret = kvmi_dom_pop_event(g->v.dom, &ev);

	if (ret == -EAGAIN)
		ret = kvmi_dom_next_event(g->v.dom, 0, &ev);   /* says why it is up */
	if (ret == -ETIMEDOUT)
		return;
	if (ret)
		die("guest %ld: %s (log: %s)", (long)(g - guests), kvmi_strerror(ret), g->v.log);
	g->events += ev->event == KVMI_EVENT_PF;
	reply_continue(&g->v, ev);
}

/* Answers events until @until (CLOCK_MONOTONIC ns). */
static void serve(uint64_t until)
{
	struct epoll_event evs[SCALE_GUESTS];
	uint64_t t;

	while ((t = now_ns()) < until) {
		int n = epoll_wait(ep, evs, SCALE_GUESTS, (int)((until - t + 999999) / 1000000));

		if (n < 0 && errno != EINTR)
			die("epoll_wait: %s", strerror(errno));
		for (int k = 0; k < n; k++)
			serve_one(&guests[evs[k].data.u32]);
	}
}

/* Lifts the protection, answers what is still in flight until every
 * guest of the round finished its stores, and parks them again. */
static void finish_round(unsigned first, unsigned n)
{
	uint64_t give_up = now_ns() + 30ull * 1000000000ull;
	unsigned done = 0;

	for (unsigned i = first; i < first + n; i++)
		set_access(&guests[i], KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X);
	while (done < n) {
		if (now_ns() > give_up)
			die("guests still storing 30 s after the protection was lifted");
		serve(now_ns() + 1000000);
		done = 0;
		for (unsigned i = first; i < first + n; i++)
			done += mbox_done(&guests[i].v, guests[i].seq, 0);
	}
	for (unsigned i = first; i < first + n; i++)
		park(&guests[i]);
}

/* The stores of the round whose events fell in the window, in us. */
static size_t window_samples(unsigned first, unsigned n, double **out)
{
	double *all = xmalloc_d((size_t)n * SCALE_STORES), *one = xmalloc_d(SCALE_STORES);
	size_t total = 0;

	for (unsigned i = first; i < first + n; i++) {
		struct sguest *g = &guests[i];
		size_t got = vcpu_samples_us(&g->v, 0, one, SCALE_STORES);

		for (uint64_t k = g->ev0; k < g->ev1 && k < got; k++)
			all[total++] = one[k];
	}
	free(one);
	*out = all;
	return total;
}

/*
 * One round: guests first..first+n-1 store to their protected page, the
 * tool answers for SCALE_WARMUP_NS and then for SCALE_WINDOW_NS, measured.
 * Returns the events per second of the window.
 */
static double scale_round(const char *tag, unsigned first, unsigned n)
{
	uint64_t args[4] = { SCALE_STORES }, total = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct cpu_snap a, b;
	double wall, rate, tool, vms, *lat;
	size_t nlat;
	char id[64];

	for (unsigned i = first; i < first + n; i++) {
		struct sguest *g = &guests[i];

		set_access(g, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X);
		g->events = 0;
		g->seq = mbox_post(&g->v, BENCH_CMD_STORES, args);
		reply_continue(&g->v, g->held);
		g->held = NULL;
	}
	serve(now_ns() + SCALE_WARMUP_NS);
	snap(&a);
	for (unsigned i = first; i < first + n; i++)
		guests[i].ev0 = guests[i].events;
	serve(a.t_ns + SCALE_WINDOW_NS);
	snap(&b);
	for (unsigned i = first; i < first + n; i++) {
		guests[i].ev1 = guests[i].events;
		total += guests[i].ev1 - guests[i].ev0;
	}
	finish_round(first, n);

	wall = (double)(b.t_ns - a.t_ns) / 1e9;
	rate = (double)total / wall;
	tool = (b.tool_s - a.tool_s) / wall;
	vms = (b.vms_s - a.vms_s) / wall;
	snprintf(id, sizeof(id), "scale_rate_%s", tag);
	result_value(id, "ev/s", rate, "%u guest(s) at once, one tool thread: %llu PF events in %.2f s", n,
		     (unsigned long long)total, wall);
	nlat = window_samples(first, n, &lat);
	snprintf(id, sizeof(id), "scale_lat_%s", tag);
	result_samples(id, "us", lat, nlat,
		       "pre-write PF round trip seen by the guests (a timed store), %u guest(s) at once", n);
	free(lat);
	snprintf(id, sizeof(id), "scale_cpu_%s", tag);
	result_value(id, "CPUs", tool + vms,
		     "CPU time of the tool (%.2f) and of all %u kvmi-vm (%.2f) per wall second, of %ld CPUs", tool,
		     SCALE_GUESTS, vms, ncpu);
	snprintf(id, sizeof(id), "scale_mcpu_%s", tag);
	result_value(id, "CPUs", (b.mach_busy_s - a.mach_busy_s) / (b.mach_all_s - a.mach_all_s) * (double)ncpu,
		     "the whole machine's busy CPUs (/proc/stat), of %ld", ncpu);
	snprintf(id, sizeof(id), "scale_tcpu_%s", tag);
	result_value(id, "CPUs", tool, "the tool's CPU time per wall second");
	snprintf(id, sizeof(id), "scale_tus_%s", tag);
	result_value(id, "us", total ? (b.tool_s - a.tool_s) * 1e6 / (double)total : 0.0,
		     "the tool's CPU time per event answered");
	snprintf(id, sizeof(id), "scale_trss_%s", tag);
	result_value(id, "KiB", rss_kib(0), "the tool's RssAnon + RssFile after the round");
	return rate;
}

/* ================================================================= memory */

/* RSS figures of several VMs (sorted in place): median, min, max, n. */
static void rss_result(const char *id, double *v, size_t n, const char *what)
{
	struct stats st;

	stats_of(v, n, &st);
	result_add(id, "KiB", &st, "%s: RssAnon + RssFile, median of %zu VMs (%.0f … %.0f KiB)", what, n, st.min,
		   st.max);
}

/* kvmi-vm without a tool: the same guest and RAM, one store loop run. */
static void rss_without_tool(void)
{
	double rss[SCALE_NONE_VMS];
	uint64_t args[4] = { 1000 };
	struct vmm_opts o = opts;
	struct vmm v;

	o.nr_vcpus = 1;
	o.introspect = false;
	o.memory = SCALE_MEMORY;
	o.tsc_hz = 1;           /* no samples are converted */
	for (unsigned i = 0; i < SCALE_NONE_VMS; i++) {
		vmm_start(&v, &o);
		mbox_run(&v, BENCH_CMD_STORES, args, 10000);
		rss[i] = rss_kib(v.pid);
		vmm_stop(&v);
	}
	rss_result("scale_vm_rss_none", rss, SCALE_NONE_VMS,
		   "kvmi-vm without --introspector, 1 vCPU, " SCALE_MEMORY " RAM, after the same store loop");
}

static void rss_with_tool(double tool_rss0)
{
	double rss[SCALE_GUESTS];

	for (unsigned i = 0; i < SCALE_GUESTS; i++)
		rss[i] = rss_kib(guests[i].v.pid);
	rss_result("scale_vm_rss_tool", rss, SCALE_GUESTS,
		   "kvmi-vm with a tool that served its PF events (page write-protected, PF enabled, a PAUSE_VCPU event held)");
	result_value("scale_tool_rss_per_guest", "KiB", (rss_kib(0) - tool_rss0) / SCALE_GUESTS,
		     "the tool's RssAnon + RssFile with %u guests served, less the same before the first guest, per guest",
		     SCALE_GUESTS);
}

/* ================================================================= the phase */

void bench_scale(void)
{
	static const unsigned ns[] = { 2, 4, 8, 16, 32 };
	double alone[3], tool_rss0;
	char tag[8];

	if (opts.kind != VMM_KVMI_VM)
		die("the scale phase runs kvmi-vm guests");
	printf("scale, kvmi-vm, %u guests of 1 vCPU and %s RAM, one tool thread\n", SCALE_GUESTS, SCALE_MEMORY);
	rss_without_tool();
	tool_rss0 = rss_kib(0);
	start_guests();
	for (unsigned k = 0; k < 3; k++) {
		snprintf(tag, sizeof(tag), "1%c", 'a' + k);
		alone[k] = scale_round(tag, k, 1);
	}
	result_samples("scale_alone", "ev/s", alone, 3, "one guest alone, three runs on three guests");
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
		snprintf(tag, sizeof(tag), "%u", ns[k]);
		scale_round(tag, 0, ns[k]);
	}
	rss_with_tool(tool_rss0);
	stop_guests();
}
