/* SPDX-License-Identifier: MIT */
/*
 * kvmi-soak: the fault-injection soak of `make soak` (issue #13, item 3).
 *
 * For --minutes, runs rounds against kvmi-vm on the "soak" guest payload
 * (2-4 vCPUs, chosen per VM lifetime of 5-15 rounds): each round a tool
 * process runs a random session and cuts it (chaos.c), then a fresh session
 * checks that nothing the tool did survived and that the guest runs
 * (check.c).  The PRNG's seed is printed; --seed S replays the same rounds
 * (the guest's timing differs, so a replay is likely, not certain, to fail
 * the same way).  A failure prints what failed, the round, the seed, the
 * round's trace and the tail of kvmi-vm's log; the run goes on with a new
 * VM.  The last line is the summary; the exit status is 1 on any failure.
 *
 * --vsock: the tool side listens on vsock:any:PORT and kvmi-vm connects to
 * vsock:1:PORT (AF_VSOCK over the loopback transport, vsock_loopback; a
 * port per VM lifetime) instead of a unix socket in the run's directory.
 * --tap: TAP output (the real-KVM box, `make soak-box`): one "ok N - round
 * N: ..." or "not ok N - round N: ..." per round (a VM that does not stop
 * cleanly fails the last round it ran), the plan at the end, and every
 * other line, the summary with the seed too, as a "# soak: " comment.
 *
 * usage: kvmi-soak [--minutes M] [--seed S] [--rounds N] [--keep] [--vsock] [--tap]
 *                  KVMI_VM GUEST_DIR
 */
#include "soak.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FAILURES 20         /* stop after this many */

struct soak_run {
	const char *vmm;
	char elf[512], dir[64];
	double minutes;
	uint64_t seed;
	unsigned max_rounds, rounds, failures, vms;
	bool keep, vsock, tap;
	/* --tap: the verdict of the latest round, printed once the round's
	 * VM (when this was its last round) has stopped */
	bool pending, round_failed;
	unsigned pending_round;
	char round_msg[SOAK_MSG + 64];
	struct rng rng;
	struct soak_vm vm;
	unsigned vm_rounds_left;
};

static void on_signal(int sig)
{
	soak_kill_children();
	signal(sig, SIG_DFL);
	raise(sig);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t default_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

/* The thread stacks of a live kvmi-vm (gdb, when installed) into a file. */
static void dump_stacks(struct soak_run *r, unsigned round)
{
	char cmd[512];
	int st;

	if (r->vm.pid <= 0 || !soak_vm_alive(&r->vm, &st) || access("/usr/bin/gdb", X_OK))
		return;
	snprintf(cmd, sizeof(cmd), "gdb -p %d -batch -ex 'thread apply all bt' > %s/round%u.stacks 2>&1",
		 (int)r->vm.pid, r->dir, round);
	if (system(cmd) == 0)
		soak_say("kvmi-vm's thread stacks: %s/round%u.stacks\n", r->dir, round);
}

static void report(struct soak_run *r, unsigned round, const struct soak_result *res, const char *trace)
{
	r->failures++;
	if (r->pending && !r->round_failed) {
		r->round_failed = true;
		snprintf(r->round_msg, sizeof(r->round_msg), "%s", res->what);
	}
	dump_stacks(r, round);
	soak_say("FAIL round %u (seed %llu, VM %u with %u vCPUs): %s\n", round, (unsigned long long)r->seed,
	       r->vm.index, r->vm.vcpus, res->what);
	if (trace) {
		soak_say("the round's session (%s), last operations:\n", res->desc);
		soak_tail(trace, 15, "  tool: ");
	}
	soak_say("kvmi-vm log (%s), last lines:\n", r->vm.log);
	soak_tail(r->vm.log, 20, "  vmm: ");
	soak_say("replay with: --seed %llu\n", (unsigned long long)r->seed);
	fflush(stdout);
}

/* The current VM ends (SIGTERM: it must stop cleanly); a new one starts
 * when there are rounds left. */
static void end_vm(struct soak_run *r, unsigned round)
{
	struct soak_result res = { 0 };
	int st;

	if (!r->vm.pid)
		return;
	st = soak_vm_stop(&r->vm, 20);
	if (st != 128 + SIGTERM) {
		soak_fail(&res, "kvmi-vm did not stop cleanly on SIGTERM (exit status %d)", st);
		report(r, round, &res, NULL);
	}
}

static int new_vm(struct soak_run *r, unsigned round)
{
	struct soak_result res = { 0 };
	int err;

	r->vm.index = r->vms++;
	r->vm.vsock = r->vsock;
	r->vm.vcpus = 2 + rng_below(&r->rng, 3);
	r->vm_rounds_left = 5 + rng_below(&r->rng, 11);
	err = soak_vm_start(&r->vm, r->vmm, r->elf, r->dir, (unsigned)(r->minutes * 60) + 600);
	if (err) {
		soak_fail(&res, "cannot start kvmi-vm: %s", strerror(-err));
		report(r, round, &res, NULL);
		return err;
	}
	soak_say("VM %u: %u vCPUs, %u rounds\n", r->vm.index, r->vm.vcpus, r->vm_rounds_left);
	soak_check(&r->vm, true, &res);
	if (res.failures) {
		report(r, round, &res, NULL);
		soak_vm_kill(&r->vm);
		return -1;
	}
	soak_say("VM %u: MSR events %s, single-step %s, BREAKPOINT %s\n", r->vm.index,
	       r->vm.caps.msr ? "yes" : "no", r->vm.caps.singlestep ? "yes" : "no",
	       r->vm.caps.breakpoint ? "yes" : "no");
	return 0;
}

static void one_round(struct soak_run *r, unsigned round)
{
	struct soak_result res = { 0 };
	char trace[128];
	int st;

	snprintf(trace, sizeof(trace), "%s/round%u.trace", r->dir, round);
	soak_chaos_round(&r->vm, rng_next(&r->rng), trace, &res);
	if (!soak_vm_alive(&r->vm, &st))
		soak_fail(&res, "kvmi-vm exited during the round (status %d)", st);
	else
		soak_check(&r->vm, false, &res);
	if (res.failures) {
		report(r, round, &res, trace);
		soak_vm_kill(&r->vm);
	} else {
		if (r->tap)
			snprintf(r->round_msg, sizeof(r->round_msg), "%s (VM %u, %u vCPUs)", res.desc,
				 r->vm.index, r->vm.vcpus);
		else
			printf("soak: round %u: %s: ok\n", round, res.desc);
		unlink(trace);
	}
	fflush(stdout);
}

/* --tap: the pending round's test line. */
static void tap_flush(struct soak_run *r)
{
	if (!r->pending)
		return;
	printf("%s %u - round %u: %s\n", r->round_failed ? "not ok" : "ok", r->pending_round,
	       r->pending_round, r->round_msg);
	fflush(stdout);
	r->pending = false;
}

static void tap_begin(struct soak_run *r, unsigned round)
{
	if (!r->tap)
		return;
	r->pending = true;
	r->round_failed = false;
	r->pending_round = round;
	snprintf(r->round_msg, sizeof(r->round_msg), "no verdict");
}

static void run(struct soak_run *r)
{
	double end = now_s() + r->minutes * 60;

	while (now_s() < end && r->failures < MAX_FAILURES && (!r->max_rounds || r->rounds < r->max_rounds)) {
		unsigned round = ++r->rounds;

		/* A failed stop counts against the previous round, still pending. */
		if (r->vm.pid && !r->vm_rounds_left)
			end_vm(r, round);
		tap_flush(r);
		tap_begin(r, round);
		if (!r->vm.pid && new_vm(r, round))
			continue;
		r->vm_rounds_left--;
		one_round(r, round);
	}
	end_vm(r, r->rounds);
	tap_flush(r);
}

static int parse(struct soak_run *r, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "minutes", required_argument, NULL, 'm' }, { "seed", required_argument, NULL, 's' },
		{ "rounds", required_argument, NULL, 'r' },  { "keep", no_argument, NULL, 'k' },
		{ "vsock", no_argument, NULL, 'v' },         { "tap", no_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	r->minutes = 3;
	r->seed = default_seed();
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'm')
			r->minutes = atof(optarg);
		else if (o == 's')
			r->seed = strtoull(optarg, NULL, 0);
		else if (o == 'r')
			r->max_rounds = (unsigned)atoi(optarg);
		else if (o == 'k')
			r->keep = true;
		else if (o == 'v')
			r->vsock = true;
		else if (o == 't')
			r->tap = true;
		else
			return -1;
	}
	if (argc - optind != 2 || r->minutes <= 0)
		return -1;
	r->vmm = argv[optind];
	snprintf(r->elf, sizeof(r->elf), "%s/soak.elf", argv[optind + 1]);
	return 0;
}

static void cleanup_dir(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "soak: could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
	static struct soak_run r;

	if (parse(&r, argc, argv)) {
		fprintf(stderr,
			"usage: %s [--minutes M] [--seed S] [--rounds N] [--keep] [--vsock] [--tap] KVMI_VM GUEST_DIR\n",
			argv[0]);
		return 2;
	}
	if (r.tap)
		soak_prefix = "# soak: ";
	if (access("/dev/kvm", R_OK | W_OK) || access(r.elf, R_OK)) {
		const char *why = access(r.elf, R_OK) ? "no soak.elf" : "no usable /dev/kvm";

		if (r.tap)
			printf("1..0 # SKIP %s\n", why);
		else
			printf("soak: skipped: %s\n", why);
		return 0;
	}
	r.rng.s = r.seed;
	snprintf(r.dir, sizeof(r.dir), "/tmp/kvmi-soak-XXXXXX");
	if (!mkdtemp(r.dir)) {
		perror("mkdtemp");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	atexit(soak_kill_children);
	soak_say("seed %llu, %g minutes, files in %s%s\n", (unsigned long long)r.seed, r.minutes, r.dir,
		 r.vsock ? ", over vsock" : "");
	fflush(stdout);
	run(&r);
	if (r.tap)
		printf("1..%u\n", r.rounds);
	soak_say("%u rounds, %u failures, seed %llu, %g minutes, %u VMs\n", r.rounds, r.failures,
		 (unsigned long long)r.seed, r.minutes, r.vms);
	if (r.failures || r.keep)
		soak_say("files kept in %s\n", r.dir);
	else
		cleanup_dir(r.dir);
	return r.failures ? 1 : 0;
}
