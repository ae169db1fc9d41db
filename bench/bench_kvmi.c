/* SPDX-License-Identifier: MIT */
/*
 * kvmi side of the benchmarks (issue 5): kvmi-vm runs bench_guest.elf and
 * this program is the introspection tool, built on our client library.
 *
 *   bench-kvmi events    KVMI_VM GUEST TMPDIR   event round trips vs the port-I/O floor
 *   bench-kvmi memory    KVMI_VM GUEST TMPDIR   READ_PHYSICAL, process_vm_readv, memcpy
 *   bench-kvmi pagetrack KVMI_VM GUEST TMPDIR   SET_PAGE_ACCESS cost per page
 *   bench-kvmi quiet     KVMI_VM GUEST TMPDIR   a ring-3 workload with and without a tool
 *
 * Results are appended to $BENCH_OUT/results.tsv (see bench.h); bench/run.sh
 * turns them into RESULTS.md.  Nothing here asserts a time: a figure that
 * cannot be measured is written down as n/a with its reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kvmi/kvmi.h>

#include "bench.h"

static struct vmm_opts opts;

/* Per-phase time budgets keep the whole `make bench` within minutes. */
#define EVENT_BUDGET_NS   (12ull * 1000000000ull)

static double *xmalloc_d(size_t n)
{
	double *p = malloc((n ? n : 1) * sizeof(double));

	if (!p)
		die("out of memory");
	return p;
}

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
	/* NULL: no benchmark for it yet (the event does not exist yet). */
	void (*run)(struct vmm *v, const struct event_bench *e);
	const char *missing;    /* why run is NULL */
};

static struct kvmi_event_msg *next_event(struct vmm *v, int timeout_ms)
{
	struct kvmi_event_msg *ev = NULL;
	int ret = kvmi_dom_next_event(v->dom, timeout_ms, &ev);

	if (ret == -ETIMEDOUT)
		return NULL;
	if (ret)
		die("waiting for an event: %s (log: %s)", kvmi_strerror(ret), v->log);
	return ev;
}

static void reply_continue(struct vmm *v, struct kvmi_event_msg *ev)
{
	int ret = kvmi_dom_reply_event(v->dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);

	if (ret)
		die("event reply: %s", kvmi_strerror(ret));
	kvmi_event_free(ev);
}

static void read_counts(struct vmm *v, uint64_t *counts)
{
	struct bench_vcpu vc[BENCH_MAX_VCPUS];

	gmem_read(v, VCPU_FIELD(0, ack), vc, sizeof(vc[0]) * v->nr_vcpus);
	for (unsigned i = 0; i < v->nr_vcpus; i++)
		counts[i] = vc[i].count;
}

/*
 * PAUSE_VCPU: the guest spins in ring 3 reading rdtsc and records every gap
 * (time out of guest mode), tagged with the round number the tool wrote
 * before pausing.  One round: PAUSE_VCPU (1 vCPU: one command; more: the
 * batched pause-all libkvmi sends), an event per vCPU, CONTINUE to each,
 * then the tool waits until every vCPU counts again.  The round trip of a
 * vCPU is its longest gap of that round: kick -> exit -> event -> reply ->
 * guest entry, as the guest saw it.
 */
static void run_pause(struct vmm *v, const struct event_bench *e)
{
	unsigned n = v->nr_vcpus, rounds = n == 1 ? 3000 : n == 2 ? 1500 : 800, done = 0, missing = 0;
	uint64_t args[4] = { (uint64_t)(v->tsc_hz * 2e-6) }, seq, c_paused[BENCH_MAX_VCPUS], c[BENCH_MAX_VCPUS];
	uint64_t start = now_ns();
	double *deliver = xmalloc_d(rounds), *gaps = xmalloc_d((size_t)rounds * n);
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
		ret = n == 1 ? kvmi_dom_pause_vcpu(v->dom, 0, false) : kvmi_dom_pause_vcpus(v->dom, n);
		if (ret)
			die("PAUSE_VCPU: %s", kvmi_strerror(ret));
		while (got < n) {
			struct kvmi_event_msg *ev = next_event(v, 5000);

			if (!ev)
				die("no PAUSE_VCPU event within 5 s (round %u, log: %s)", r, v->log);
			if (ev->event != KVMI_EVENT_PAUSE_VCPU) {
				reply_continue(v, ev);
				continue;
			}
			evs[got++] = ev;
		}
		deliver[done] = (double)(now_ns() - t0) / 1e3;
		read_counts(v, c_paused);
		for (unsigned i = 0; i < n; i++)
			reply_continue(v, evs[i]);
		/* Back in the guest: every counter moves again. */
		for (unsigned k = 0;; k++) {
			unsigned moving = 0;

			sleep_us(30);
			read_counts(v, c);
			for (unsigned i = 0; i < n; i++)
				moving += c[i] != c_paused[i];
			if (moving == n)
				break;
			if (k > 100000)
				die("guest does not run after CONTINUE (log: %s)", v->log);
		}
		/* Let it run a little, with some jitter against phase locking. */
		sleep_us(50 + (r * 37) % 150);
		done++;
	}
	gmem_write64(v, MBOX_FIELD(stop), seq);
	if (!mbox_done(v, seq, 10000))
		die("guest did not stop spinning (log: %s)", v->log);

	for (unsigned i = 0; i < n; i++) {
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
				missing++;
		}
		free(g);
		free(best);
	}
	snprintf(id, sizeof(id), "%s_%uv", e->id, n);
	result_samples(id, "us", gaps, ngaps,
		       "%s round trip seen by the guest (out of guest mode), %u vCPU(s) paused at once, %u rounds%s",
		       e->name, n, done, missing ? " (some rounds without a gap)" : "");
	snprintf(id, sizeof(id), "%s_%uv_tool", e->id, n);
	result_samples(id, "us", deliver, done, "tool side: PAUSE_VCPU sent -> %u event(s) received", n);
	free(deliver);
	free(gaps);
}

/*
 * Pre-write PF: the page at BENCH_PF_PAGE_GPA is write-protected with
 * SET_PAGE_ACCESS; every vCPU stores to it in ring 3, timing each store with
 * rdtsc; the tool answers each PF event with CONTINUE (the VMM completes the
 * write).  The round trip is the store's time: exit -> event -> reply ->
 * write completed -> guest entry.
 */
static void run_pf_write(struct vmm *v, const struct event_bench *e)
{
	unsigned n = v->nr_vcpus;
	uint64_t stores = n == 1 ? 3000 : n == 2 ? 1500 : 800, args[4] = { stores }, seq, events = 0;
	uint64_t gpa = BENCH_PF_PAGE_GPA;
	uint8_t ro = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X, rwx = ro | KVMI_PAGE_ACCESS_W;
	double *all = xmalloc_d(stores * n);
	size_t total = 0;
	char id[64];
	int ret;

	for (unsigned i = 0; i < n; i++) {
		ret = kvmi_dom_control_events(v->dom, (uint16_t)i, KVMI_EVENT_PF, true);
		if (ret)
			die("CONTROL_EVENTS PF: %s", kvmi_strerror(ret));
	}
	ret = kvmi_dom_set_page_access(v->dom, &gpa, &ro, 1, 0);
	if (ret)
		die("SET_PAGE_ACCESS: %s", kvmi_strerror(ret));
	seq = mbox_post(v, BENCH_CMD_STORES, args);
	for (;;) {
		struct kvmi_event_msg *ev = next_event(v, 50);

		if (ev) {
			events += ev->event == KVMI_EVENT_PF;
			reply_continue(v, ev);
			continue;
		}
		if (mbox_done(v, seq, 0))
			break;
	}
	ret = kvmi_dom_set_page_access(v->dom, &gpa, &rwx, 1, 0);
	for (unsigned i = 0; i < n && !ret; i++)
		ret = kvmi_dom_control_events(v->dom, (uint16_t)i, KVMI_EVENT_PF, false);
	if (ret)
		die("undoing the PF set-up: %s", kvmi_strerror(ret));
	for (unsigned i = 0; i < n; i++)
		total += vcpu_samples_us(v, i, all + total, stores);
	snprintf(id, sizeof(id), "%s_%uv", e->id, n);
	result_samples(id, "us", all, total,
		       "%s round trip seen by the guest (a timed store), %u vCPU(s) at once, %llu PF events",
		       e->name, n, (unsigned long long)events);
	free(all);
}

/*
 * MSR write: every vCPU executes WRMSR of MSR 0x175 (SYSENTER_ESP) in ring 0,
 * timed with rdtsc; the tool watches that MSR (CONTROL_MSR) and answers each
 * event with CONTINUE and the value the guest wrote.  The same loop without
 * the MSR watched is measured first (an in-kernel WRMSR, no exit).
 */
#define BENCH_MSR 0x175

static void run_msr_write(struct vmm *v, const struct event_bench *e)
{
	unsigned n = v->nr_vcpus;
	uint64_t writes = n == 1 ? 2000 : n == 2 ? 1000 : 500, args[4] = { writes, BENCH_MSR }, seq, events = 0;
	double *all = xmalloc_d(writes * n);
	size_t total = 0;
	char id[64];
	int ret = 0;

	mbox_run(v, BENCH_CMD_WRMSR0, args, 120000);
	for (unsigned i = 0; i < n; i++)
		total += vcpu_samples_us(v, i, all + total, writes);
	snprintf(id, sizeof(id), "wrmsr0_unwatched_%uv", n);
	result_samples(id, "us", all, total, "ring-0 WRMSR of an MSR nobody watches (no exit to userspace), %u vCPU(s)",
		       n);
	for (unsigned i = 0; i < n && !ret; i++) {
		ret = kvmi_dom_control_events(v->dom, (uint16_t)i, KVMI_EVENT_MSR, true);
		if (!ret)
			ret = kvmi_dom_control_msr(v->dom, (uint16_t)i, BENCH_MSR, true);
	}
	if (ret)
		die("CONTROL_EVENTS/CONTROL_MSR: %s", kvmi_strerror(ret));
	seq = mbox_post(v, BENCH_CMD_WRMSR0, args);
	for (;;) {
		struct kvmi_event_msg *ev = next_event(v, 50);

		if (ev) {
			if (ev->event == KVMI_EVENT_MSR) {
				struct kvmi_event_msr_reply rpl = { .new_val = ev->specific.msr.new_value };

				events++;
				ret = kvmi_dom_reply_event(v->dom, ev, KVMI_EVENT_ACTION_CONTINUE, &rpl, sizeof(rpl));
				if (ret)
					die("MSR event reply: %s", kvmi_strerror(ret));
				kvmi_event_free(ev);
			} else {
				reply_continue(v, ev);
			}
			continue;
		}
		if (mbox_done(v, seq, 0))
			break;
	}
	for (unsigned i = 0; i < n && !ret; i++) {
		ret = kvmi_dom_control_msr(v->dom, (uint16_t)i, BENCH_MSR, false);
		if (!ret)
			ret = kvmi_dom_control_events(v->dom, (uint16_t)i, KVMI_EVENT_MSR, false);
	}
	if (ret)
		die("undoing the MSR set-up: %s", kvmi_strerror(ret));
	total = 0;
	for (unsigned i = 0; i < n; i++)
		total += vcpu_samples_us(v, i, all + total, writes);
	snprintf(id, sizeof(id), "%s_%uv", e->id, n);
	result_samples(id, "us", all, total,
		       "%s round trip seen by the guest (a timed ring-0 WRMSR), %u vCPU(s) at once, %llu MSR events",
		       e->name, n, (unsigned long long)events);
	free(all);
}

/*
 * Single-step: vCPU 0 spins in ring 0 (this host steps ring 0 only); the
 * tool pauses it, turns stepping on during the PAUSE_VCPU event, and then
 * answers SINGLESTEP events.  A step's round trip is the debugger's view,
 * as for gdb's 's': reply sent -> the next SINGLESTEP event received.
 */
static void run_singlestep(struct vmm *v, const struct event_bench *e)
{
	const unsigned steps = 2000;
	uint64_t seq, t_reply;
	struct kvmi_event_msg *ev;
	double *lat = xmalloc_d(steps);
	unsigned done = 0, other = 0;
	char id[64];
	int ret;

	snprintf(id, sizeof(id), "%s_%uv", e->id, v->nr_vcpus);
	if (v->nr_vcpus != 1) {
		result_na(id, "%s: measured with one vCPU only", e->name);
		return;
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
	result_samples(id, "us", lat, done,
		       "%s round trip seen by the tool (reply sent -> next SINGLESTEP event), ring-0 loop, %u steps%s",
		       e->name, done, other ? " (other events in between)" : "");
	free(lat);
}

static const struct event_bench event_benches[] = {
	{ "event_pause", "PAUSE_VCPU", KVMI_EVENT_PAUSE_VCPU, run_pause, NULL },
	{ "event_msr", "MSR write", KVMI_EVENT_MSR, run_msr_write, NULL },
	{ "event_pf_write", "pre-write PF", KVMI_EVENT_PF, run_pf_write, NULL },
	{ "event_singlestep", "single-step", KVMI_EVENT_SINGLESTEP, run_singlestep, NULL },
	/* BREAKPOINT is delivered where the host reports int3 (tests cover it);
	 * the bench guest has no int3 loop yet. */
	{ "event_breakpoint", "breakpoint", KVMI_EVENT_BREAKPOINT, NULL,
	  "not benchmarked: the bench guest has no int3 loop (the event itself is tested in test_events)" },
};

static void events_config(unsigned nr_vcpus)
{
	struct vmm v;
	struct vmm_opts o = opts;
	uint64_t hz = 0;

	o.nr_vcpus = nr_vcpus;
	o.introspect = true;
	printf("events, %u vCPU(s)\n", nr_vcpus);
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

/* Reads exactly len bytes; spin: recv(MSG_DONTWAIT) in a loop instead of
 * sleeping in read(). */
static bool ipc_read(int fd, char *buf, size_t len, bool spin)
{
	size_t got = 0;

	while (got < len) {
		ssize_t k = spin ? recv(fd, buf + got, len - got, MSG_DONTWAIT) :
				   read(fd, buf + got, len - got);

		if (k == 0 || (k < 0 && !(spin && (errno == EAGAIN || errno == EINTR))))
			return false;
		if (k > 0)
			got += (size_t)k;
	}
	return true;
}

/*
 * The floor of any socket-based event path on this host: a 64-byte
 * ping-pong between two processes over an AF_UNIX stream socket, as an
 * event and its reply travel; with sleeping reads (spin false), or with
 * both sides polling the socket without sleeping, as kvmi's waits do for
 * their first KVMI_SPIN_US.
 */
static void ipc_baseline(bool spin)
{
	const unsigned n = 20000;
	double *lat = xmalloc_d(n);
	char msg[64] = { 0 };
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		die("socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		while (ipc_read(sv[1], msg, sizeof(msg), spin) &&
		       write(sv[1], msg, sizeof(msg)) == sizeof(msg))
			;
		_exit(0);
	}
	close(sv[1]);
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (write(sv[0], msg, sizeof(msg)) != sizeof(msg))
			die("ipc write: %s", strerror(errno));
		if (!ipc_read(sv[0], msg, sizeof(msg), spin))
			die("ipc read: %s", strerror(errno));
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	close(sv[0]);
	waitpid(pid, NULL, 0);
	if (spin)
		result_samples("ipc_unix_rtt_spin", "us", lat, n,
			       "AF_UNIX 64-byte ping-pong between two processes, both polling without sleeping (no VM)");
	else
		result_samples("ipc_unix_rtt", "us", lat, n,
			       "AF_UNIX 64-byte ping-pong between two processes, blocking reads (no VM)");
	free(lat);
}

/* The other hand-off of the event path: two threads of one process passing
 * a turn through a mutex and condition variable (sleeping waits). */
struct pingpong {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned turn;          /* odd: the echo thread's turn */
	unsigned rounds;
};

static void *pingpong_echo(void *arg)
{
	struct pingpong *p = arg;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->rounds; i++) {
		while (p->turn % 2 == 0)
			pthread_cond_wait(&p->cond, &p->lock);
		p->turn++;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void condvar_baseline(void)
{
	struct pingpong p = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .rounds = 20000 };
	double *lat = xmalloc_d(p.rounds);
	pthread_t t;

	if (pthread_create(&t, NULL, pingpong_echo, &p))
		die("pthread_create failed");
	for (unsigned i = 0; i < p.rounds; i++) {
		uint64_t t0 = now_ns();

		pthread_mutex_lock(&p.lock);
		p.turn++;
		pthread_cond_broadcast(&p.cond);
		while (p.turn % 2 == 1)
			pthread_cond_wait(&p.cond, &p.lock);
		pthread_mutex_unlock(&p.lock);
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	pthread_join(t, NULL);
	result_samples("ipc_condvar_rtt", "us", lat, p.rounds,
		       "two threads passing a turn back and forth with a condition variable (no VM)");
	free(lat);
}

/*
 * What one vCPU ioctl costs on this host: KVM_GET_MSRS of the nine MSRs an
 * event header carries, on a vCPU that never ran (every event pays one).
 */
static void vcpu_ioctl_baseline(void)
{
	static const uint32_t idx[9] = {
		0x174, 0x175, 0x176, 0xc0000080, 0xc0000081, 0xc0000082, 0xc0000083, 0x277, 0xc0000102,
	};
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[9];
	} m;
	const unsigned n = 20000;
	double *lat = xmalloc_d(n);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC), vm = -1, vcpu = -1;

	if (kvm >= 0)
		vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm >= 0)
		vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0) {
		result_na("ioctl_get_msrs", "cannot create a vCPU: %s", strerror(errno));
		goto out;
	}
	memset(&m, 0, sizeof(m));
	m.h.nmsrs = 9;
	for (unsigned i = 0; i < 9; i++)
		m.e[i].index = idx[i];
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		if (ioctl(vcpu, KVM_GET_MSRS, &m) < 0)
			die("KVM_GET_MSRS: %s", strerror(errno));
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	result_samples("ioctl_get_msrs", "us", lat, n,
		       "one KVM_GET_MSRS of the 9 MSRs of an event header, on a vCPU that never ran (no VM running)");
out:
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	if (kvm >= 0)
		close(kvm);
	free(lat);
}

static void bench_events(void)
{
	printf("host IPC baseline\n");
	ipc_baseline(false);
	ipc_baseline(true);
	condvar_baseline();
	vcpu_ioctl_baseline();
	/* BENCH_EVENT_VCPUS: which configurations (default "1 2 4"). */
	const char *which = getenv("BENCH_EVENT_VCPUS");

	if (!which || !*which)
		which = "1 2 4";
	for (const char *c = which; *c; c++)
		if (*c >= '1' && *c <= '4')
			events_config((unsigned)(*c - '0'));
}

/* ================================================================= memory */

static void check_pattern(const void *buf, uint64_t gpa, size_t len, const char *what)
{
	const uint64_t *w = buf;

	for (size_t k = 0; k < len / 8; k++)
		if (w[k] != bench_pattern(gpa + 8 * k))
			die("%s: wrong data at GPA %#llx", what, (unsigned long long)(gpa + 8 * k));
}

/* A page of the data region, spread over all of it. */
static uint64_t data_page(unsigned i)
{
	return BENCH_DATA_GPA + ((uint64_t)i * 7919 % (BENCH_DATA_SIZE / 4096)) * 4096;
}

static void rp(struct vmm *v, uint64_t gpa, void *buf, size_t len)
{
	int ret = kvmi_dom_read_physical(v->dom, gpa, buf, len);

	if (ret)
		die("READ_PHYSICAL %#llx+%zu: %s", (unsigned long long)gpa, len, kvmi_strerror(ret));
}

static void pvr(struct vmm *v, uint64_t gpa, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)(v->ram_hva + gpa), len };

	if (process_vm_readv(v->pid, &l, 1, &r, 1, 0) != (ssize_t)len)
		die("process_vm_readv: %s", strerror(errno));
}

enum reader { BY_KVMI, BY_PVR };

static void read_any(enum reader how, struct vmm *v, uint64_t gpa, void *buf, size_t len)
{
	if (how == BY_KVMI)
		rp(v, gpa, buf, len);
	else
		pvr(v, gpa, buf, len);
}

/* Latency of @n reads of @len bytes at scattered addresses. */
static void read_latency(struct vmm *v, enum reader how, size_t len, unsigned n, const char *id,
			 const char *what)
{
	static uint8_t buf[4096] __attribute__((aligned(64)));
	double *lat = xmalloc_d(n);
	struct stats s;

	for (unsigned i = 0; i < n; i++) {
		uint64_t gpa = data_page(i) + (len < 4096 ? (i * 8u) % 4096 : 0);
		uint64_t t0 = now_ns();

		read_any(how, v, gpa, buf, len);
		lat[i] = (double)(now_ns() - t0) / 1e3;
		if (i % 64 == 0)
			check_pattern(buf, gpa, len, what);
	}
	result_samples(id, "us", lat, n, "%s: %zu bytes per read, one read per call", what, len);
	/* The same figure as throughput, from the median. */
	stats_of(lat, n, &s);
	{
		char tid[80];

		snprintf(tid, sizeof(tid), "%s_mbps", id);
		result_value(tid, "MB/s", (double)len / s.p50, "%s: %zu bytes / median latency", what, len);
	}
	free(lat);
}

/* 64 MiB in @chunk-sized reads, @passes times; throughput per pass. */
static void read_bulk(struct vmm *v, enum reader how, size_t chunk, unsigned passes, uint8_t *dst,
		      const char *id, const char *what)
{
	double *mbps = xmalloc_d(passes);

	for (unsigned p = 0; p < passes; p++) {
		uint64_t t0 = now_ns(), t;

		for (uint64_t off = 0; off < BENCH_DATA_SIZE; off += chunk)
			read_any(how, v, BENCH_DATA_GPA + off, dst + off, chunk);
		t = now_ns() - t0;
		mbps[p] = (double)BENCH_DATA_SIZE / ((double)t / 1e3);
		if (p == 0)
			check_pattern(dst, BENCH_DATA_GPA, BENCH_DATA_SIZE, what);
		memset(dst, 0, 4096);
	}
	result_samples(id, "MB/s", mbps, passes, "%s: 64 MiB in %zu-byte reads (%llu calls per pass), %u passes",
		       what, chunk, (unsigned long long)(BENCH_DATA_SIZE / chunk), passes);
	free(mbps);
}

/* 16,384 scattered 4 KiB copies out of a 64 MiB region based at @base
 * (data_page order), @passes times; MB/s per pass. */
static void copy_4k_passes(const uint8_t *base, unsigned passes, const char *id, const char *what)
{
	static uint8_t buf[4096] __attribute__((aligned(64)));
	const unsigned pages = BENCH_DATA_SIZE / 4096;
	double *mbps = xmalloc_d(passes);

	for (unsigned p = 0; p < passes; p++) {
		uint64_t t0 = now_ns();

		for (unsigned i = 0; i < pages; i++) {
			memcpy(buf, base + (data_page(i) - BENCH_DATA_GPA), 4096);
			__asm__ volatile("" : : "r"(buf) : "memory");
		}
		mbps[p] = (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3);
	}
	result_samples(id, "MB/s", mbps, passes, "%s: 16,384 scattered 4 KiB memcpy calls per pass, %u passes",
		       what, passes);
	free(mbps);
}

/*
 * Zero-copy reads: the 64 MiB data region mapped through GET_MAP_TOKEN +
 * KVMI_X_MAP_MEMORY and read with memcpy, next to the same copies between
 * two host buffers.  The first pass over a fresh mapping also pays the
 * page faults that populate the tool's page tables; it is reported apart.
 */
static void bench_mapped(struct vmm *v, uint8_t *dst, const uint8_t *src)
{
	const unsigned setups = 200;
	double *lat, *mbps;
	uint8_t *map = NULL;
	uint64_t t0;
	int ret;

	ret = kvmi_dom_check_command(v->dom, KVMI_X_MAP_MEMORY);
	if (ret) {
		result_na("mapped_64m", "mapped reads (KVMI_X_MAP_MEMORY): CHECK_COMMAND answers %s",
			  kvmi_strerror(ret));
		return;
	}
	lat = xmalloc_d(setups);
	for (unsigned i = 0; i < setups; i++) {
		void *p;

		t0 = now_ns();
		ret = kvmi_dom_map_physical(v->dom, data_page(i), 4096, PROT_READ, &p);
		if (ret)
			die("map 4 KiB: %s", kvmi_strerror(ret));
		kvmi_dom_unmap_physical(p, 4096);
		lat[i] = (double)(now_ns() - t0) / 1e3;
	}
	result_samples("mapped_setup", "us", lat, setups,
		       "GET_MAP_TOKEN + KVMI_X_MAP_MEMORY + mmap + munmap of one page");
	free(lat);

	ret = kvmi_dom_map_physical(v->dom, BENCH_DATA_GPA, BENCH_DATA_SIZE, PROT_READ, (void **)&map);
	if (ret)
		die("map 64 MiB: %s", kvmi_strerror(ret));
	t0 = now_ns();
	memcpy(dst, map, BENCH_DATA_SIZE);
	__asm__ volatile("" : : "r"(dst) : "memory");
	result_value("mapped_64m_cold", "MB/s", (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3),
		     "first memcpy of 64 MiB out of a fresh mapping (includes its page faults)");
	check_pattern(dst, BENCH_DATA_GPA, BENCH_DATA_SIZE, "mapped read");
	mbps = xmalloc_d(10);
	for (unsigned p = 0; p < 10; p++) {
		t0 = now_ns();
		memcpy(dst, map, BENCH_DATA_SIZE);
		__asm__ volatile("" : : "r"(dst) : "memory");
		mbps[p] = (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3);
	}
	result_samples("mapped_64m", "MB/s", mbps, 10,
		       "memcpy of 64 MiB out of the token mapping of guest RAM, 10 passes");
	free(mbps);
	copy_4k_passes(map, 10, "mapped_4k", "mapped guest RAM");
	copy_4k_passes(src, 10, "memcpy_4k", "host buffer");
	kvmi_dom_unmap_physical(map, BENCH_DATA_SIZE);
}

static void bench_memory(void)
{
	struct vmm v;
	struct vmm_opts o = opts;
	struct kvmi_event_msg *ev;
	uint8_t *dst, *src;
	double *mbps;
	int ret;

	o.nr_vcpus = 1;
	o.introspect = true;
	printf("memory\n");
	vmm_start(&v, &o);
	mbox_run(&v, BENCH_CMD_FILL, NULL, 120000);
	/* Reads happen with the vCPU paused, as a tool usually reads. */
	ret = kvmi_dom_pause_vcpu(v.dom, 0, true);
	if (ret)
		die("PAUSE_VCPU: %s", kvmi_strerror(ret));
	ev = next_event(&v, 5000);
	if (!ev)
		die("no PAUSE_VCPU event");

	dst = mmap(NULL, BENCH_DATA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	src = mmap(NULL, BENCH_DATA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (dst == MAP_FAILED || src == MAP_FAILED)
		die("mmap: %s", strerror(errno));

	read_latency(&v, BY_KVMI, 8, 20000, "read_phys_8b", "READ_PHYSICAL");
	read_latency(&v, BY_KVMI, 4096, 5000, "read_phys_4k", "READ_PHYSICAL");
	read_bulk(&v, BY_KVMI, 4096, 3, dst, "read_phys_64m", "READ_PHYSICAL");
	{
		/* Pipelined: kvmi_dom_read_physical_bulk() keeps up to 64 page
		 * reads on the wire. */
		double *bm = xmalloc_d(5);

		for (unsigned p = 0; p < 5; p++) {
			uint64_t t0 = now_ns();

			ret = kvmi_dom_read_physical_bulk(v.dom, BENCH_DATA_GPA, dst, BENCH_DATA_SIZE);
			if (ret)
				die("READ_PHYSICAL (pipelined): %s", kvmi_strerror(ret));
			bm[p] = (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3);
			if (p == 0)
				check_pattern(dst, BENCH_DATA_GPA, BENCH_DATA_SIZE, "READ_PHYSICAL (pipelined)");
			memset(dst, 0, 4096);
		}
		result_samples("read_phys_64m_batched", "MB/s", bm, 5,
			       "READ_PHYSICAL, pipelined: 64 MiB as 16,384 page reads with up to 64 on the wire "
			       "(kvmi_dom_read_physical_bulk), 5 passes");
		free(bm);
	}

	read_latency(&v, BY_PVR, 8, 20000, "pvr_8b", "process_vm_readv");
	read_latency(&v, BY_PVR, 4096, 20000, "pvr_4k", "process_vm_readv");
	read_bulk(&v, BY_PVR, 4096, 5, dst, "pvr_64m_4k", "process_vm_readv");
	read_bulk(&v, BY_PVR, 2u << 20, 10, dst, "pvr_64m_2m", "process_vm_readv");

	/* The limit: streaming memcpy of 64 MiB between two host buffers. */
	memcpy(src, dst, BENCH_DATA_SIZE);
	mbps = xmalloc_d(10);
	for (unsigned p = 0; p < 10; p++) {
		uint64_t t0 = now_ns();

		memcpy(dst, src, BENCH_DATA_SIZE);
		__asm__ volatile("" : : "r"(dst) : "memory");
		mbps[p] = (double)BENCH_DATA_SIZE / ((double)(now_ns() - t0) / 1e3);
	}
	result_samples("memcpy_64m", "MB/s", mbps, 10, "memcpy of 64 MiB between two host buffers, 10 passes");
	free(mbps);
	bench_mapped(&v, dst, src);
	munmap(dst, BENCH_DATA_SIZE);
	munmap(src, BENCH_DATA_SIZE);

	reply_continue(&v, ev);
	vmm_stop(&v);
}

/* ================================================================= pagetrack */

/*
 * SET_PAGE_ACCESS (write-protect) on N scattered pages (every other page,
 * so each page is its own range), in commands of at most 511 entries sent
 * back to back, then the same pages made rwx again.  Time per page and, from
 * the VMM's own count, the memslots that resulted.
 */
static int kvm_max_memslots(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), n = -1;

	if (fd >= 0) {
		n = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
		close(fd);
	}
	return n;
}

/* Net memslots added so far, from the VMM's debug log (one line per
 * SET_PAGE_ACCESS: "... N slots removed, M added ..."). */
static long log_slot_delta(const char *log)
{
	char line[512];
	long delta = 0;
	FILE *f = fopen(log, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, "SET_PAGE_ACCESS");
		unsigned entries, removed, added;

		if (p && sscanf(p, "SET_PAGE_ACCESS %u entries: %u slots removed, %u added", &entries, &removed,
				&added) == 3)
			delta += (long)added - (long)removed;
	}
	fclose(f);
	return delta;
}

static void bench_pagetrack(void)
{
	static const unsigned sizes[] = { 1, 511, 10000, 100000 };
	struct vmm v;
	struct vmm_opts o = opts;
	uint64_t *gpa;
	uint8_t *acc;
	int ret;

	o.nr_vcpus = 1;
	o.introspect = true;
	o.memory = "1G";
	o.verbose = true;       /* the VMM logs its memslot changes */
	printf("page tracking\n");
	vmm_start(&v, &o);
	ret = kvmi_dom_check_command(v.dom, KVMI_SET_PAGE_ACCESS);
	if (ret) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			char id[64];

			snprintf(id, sizeof(id), "set_page_access_%u", sizes[k]);
			result_na(id, "SET_PAGE_ACCESS: CHECK_COMMAND answers %s", kvmi_strerror(ret));
		}
		vmm_stop(&v);
		return;
	}
	gpa = malloc(100000 * sizeof(*gpa));
	acc = malloc(100000);
	if (!gpa || !acc)
		die("out of memory");
	for (unsigned i = 0; i < 100000; i++)
		gpa[i] = 0x1000000ull + 2ull * 4096 * i;   /* 16 MiB .. ~797 MiB, every other page */
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned n = sizes[k];
		uint64_t t0, t_set, t_clear;
		char id[64];
		int err = 0;
		long slots;

		snprintf(id, sizeof(id), "set_page_access_%u", n);
		memset(acc, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X, n);
		t0 = now_ns();
		for (unsigned i = 0; i < n && !err; i += 511)
			err = kvmi_dom_set_page_access(v.dom, gpa + i, acc + i, n - i < 511 ? n - i : 511, 0);
		t_set = now_ns() - t0;
		sleep_us(100000);       /* the log line follows the reply */
		slots = 1 + log_slot_delta(v.log);   /* 1 GiB of RAM is one slot */
		memset(acc, KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X, n);
		t0 = now_ns();
		for (unsigned i = 0; i < n; i += 511)
			ret = kvmi_dom_set_page_access(v.dom, gpa + i, acc + i, n - i < 511 ? n - i : 511, 0);
		t_clear = now_ns() - t0;
		if (err) {
			result_na(id, "SET_PAGE_ACCESS on %u scattered pages failed: %s after %.1f ms, with %ld "
				  "memslots then (KVM_CAP_NR_MEMSLOTS: %d)", n, kvmi_strerror(err), (double)t_set / 1e6,
				  slots, kvm_max_memslots());
			continue;
		}
		result_value(id, "ms", (double)t_set / 1e6,
			     "SET_PAGE_ACCESS (write-protect) on %u scattered pages, %u command(s): %.2f us per page, "
			     "%ld memslots then; undoing it took %.1f ms%s", n, (n + 510) / 511,
			     (double)t_set / 1e3 / n, slots, (double)t_clear / 1e6, ret ? " (and failed)" : "");
		snprintf(id, sizeof(id), "set_page_access_%u_slots", n);
		result_value(id, "slots", (double)slots, "KVM memslots with %u scattered write-protected pages", n);
	}
	free(gpa);
	free(acc);
	vmm_stop(&v);
}

/* ================================================================= quiet */

#define QUIET_STEPS 5000000ull
#define QUIET_REPS  20
#define QUIET_PIO   2000
#define QUIET_PAIRS 12

struct quiet_set {
	double *work, *pio;
	size_t nwork, npio;
	double work_med[QUIET_PAIRS], pio_med[QUIET_PAIRS];
	double work_min[QUIET_PAIRS];
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

static void quiet_run(bool tool, struct quiet_set *q, unsigned pair)
{
	struct vmm v;
	struct vmm_opts o = opts;
	uint64_t args[4] = { QUIET_STEPS, 2 };
	size_t n;

	o.nr_vcpus = 1;
	o.introspect = tool;
	vmm_start(&v, &o);
	mbox_run(&v, BENCH_CMD_WORK, args, 120000);     /* warm-up, not recorded */
	args[1] = QUIET_REPS;
	mbox_run(&v, BENCH_CMD_WORK, args, 120000);
	n = vcpu_samples_us(&v, 0, q->work + q->nwork, QUIET_REPS);
	q->work_med[pair] = median_of(q->work + q->nwork, n);
	q->work_min[pair] = q->work[q->nwork];
	for (size_t k = 1; k < n; k++)
		if (q->work[q->nwork + k] < q->work_min[pair])
			q->work_min[pair] = q->work[q->nwork + k];
	q->nwork += n;
	args[0] = QUIET_PIO;
	mbox_run(&v, BENCH_CMD_PIO3, args, 120000);
	n = vcpu_samples_us(&v, 0, q->pio + q->npio, QUIET_PIO);
	q->pio_med[pair] = median_of(q->pio + q->npio, n);
	q->npio += n;
	vmm_stop(&v);
}

/* Overhead in % of each pair (tool vs none, run back to back). */
static void pair_overheads(const char *id, const double *tool, const double *none, const char *what)
{
	double r[QUIET_PAIRS];
	char list[QUIET_PAIRS * 10] = "";
	size_t len = 0;

	for (unsigned p = 0; p < QUIET_PAIRS; p++) {
		r[p] = (tool[p] / none[p] - 1) * 100;
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%+.1f", p ? " " : "", r[p]);
	}
	result_samples(id, "%", r, QUIET_PAIRS, "%s: overhead of each back-to-back pair of VMs, in %%: %s", what,
		       list);
}

/*
 * Quiet overhead: the same VM and workload with a tool attached that
 * enabled nothing, and with no --introspector at all.  QUIET_PAIRS pairs
 * of VMs run back to back (alternating which goes first), so slow drift of
 * the host cancels within a pair; the figure is the median of the pairs'
 * overheads.  Two workloads: ring-3 compute over an L2-sized buffer (no
 * exits but the host's timer), and ring-3 port-I/O exits (the per-exit cost
 * of the introspection hooks).
 */
static void bench_quiet(void)
{
	struct quiet_set q[2];

	printf("quiet overhead\n");
	memset(q, 0, sizeof(q));
	for (int t = 0; t < 2; t++) {
		q[t].work = xmalloc_d(QUIET_REPS * QUIET_PAIRS);
		q[t].pio = xmalloc_d(QUIET_PIO * QUIET_PAIRS);
	}
	for (unsigned p = 0; p < QUIET_PAIRS; p++) {
		bool first = p % 2 == 0;        /* tool first in even pairs */

		quiet_run(first, &q[first], p);
		quiet_run(!first, &q[!first], p);
	}
	result_samples("quiet_work_none", "us", q[0].work, q[0].nwork,
		       "ring-3 workload (%llu LCG steps + adds over 256 KiB), no tool, %u VMs", QUIET_STEPS,
		       QUIET_PAIRS);
	result_samples("quiet_work_tool", "us", q[1].work, q[1].nwork,
		       "the same with a KVMI tool attached, nothing enabled, %u VMs", QUIET_PAIRS);
	result_samples("quiet_pio3_none", "us", q[0].pio, q[0].npio, "ring-3 port-I/O exit, no tool");
	result_samples("quiet_pio3_tool", "us", q[1].pio, q[1].npio,
		       "ring-3 port-I/O exit, KVMI tool attached, nothing enabled");
	pair_overheads("quiet_work_overhead", q[1].work_med, q[0].work_med, "ring-3 workload, median repetition");
	pair_overheads("quiet_work_overhead_min", q[1].work_min, q[0].work_min,
		       "ring-3 workload, fastest repetition (noise only adds time)");
	pair_overheads("quiet_pio3_overhead", q[1].pio_med, q[0].pio_med, "ring-3 port-I/O exit");
	for (int t = 0; t < 2; t++) {
		free(q[t].work);
		free(q[t].pio);
	}
}

/* ================================================================= main */

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s events|memory|pagetrack|quiet KVMI_VM GUEST_ELF TMPDIR\n", argv[0]);
		return 2;
	}
	opts.kvmi_vm = argv[2];
	opts.guest = argv[3];
	opts.tmpdir = argv[4];
	setvbuf(stdout, NULL, _IOLBF, 0);
	result_init();
	if (!strcmp(argv[1], "events"))
		bench_events();
	else if (!strcmp(argv[1], "memory"))
		bench_memory();
	else if (!strcmp(argv[1], "pagetrack"))
		bench_pagetrack();
	else if (!strcmp(argv[1], "quiet"))
		bench_quiet();
	else
		die("unknown mode %s", argv[1]);
	return 0;
}
