/* SPDX-License-Identifier: MIT */
/*
 * One round's tool session, in a forked process so that it can die the
 * hard way: it takes the VMM's next connection, runs a random sequence of
 * operations (ops.c) while a second thread answers events (CONTINUE or
 * RETRY, sometimes after a delay), optionally writes one vCPU command
 * whose reply it never reads, and ends the session by
 *   close       the library's shutdown + close (FIN);
 *   RST         SO_LINGER 0 and exit: the kernel resets the connection;
 *   kill        SIGKILL to itself right after its last operation;
 *   kill-async  the soak SIGKILLs it after a random delay, mid-operation.
 * Everything the round does follows from its seed; the trace file lists it.
 * Exit status: 0, 2 (a command timed out: the VMM hung), 3 (no session).
 */
#include "soak.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define TOOL_ALARM_S   90       /* a tool process alive longer hung */
#define TOOL_WAIT_MS   120000

static const char *const cut_names[CUT_MAX] = { "close", "RST", "kill", "kill-async" };

struct answerer {
	struct chaos *c;
	struct rng rng;
	atomic_bool stop;
	unsigned answered;
};

/* Answers every event: mostly CONTINUE, some RETRY, some after a delay. */
static void *answer_events(void *arg)
{
	struct answerer *a = arg;

	while (!atomic_load(&a->stop)) {
		struct kvmi_event_msg *ev;
		int err = kvmi_dom_next_event(a->c->dom, 20, &ev);

		if (err == -ETIMEDOUT)
			continue;
		if (err)
			break;
		if (rng_pct(&a->rng, 10))
			usleep(1000 * rng_below(&a->rng, 50));
		if (!atomic_load(&a->stop)) {
			soak_reply(a->c->dom, ev, rng_pct(&a->rng, 20) ? KVMI_EVENT_ACTION_RETRY :
					KVMI_EVENT_ACTION_CONTINUE);
			a->answered++;
		}
		kvmi_event_free(ev);
	}
	return NULL;
}

struct plan {
	enum soak_cut cut;
	unsigned nops;
	bool raw;               /* a vCPU command written just before the cut */
	unsigned async_ms;      /* kill-async: the delay */
};

static void cut_session(struct chaos *c, struct answerer *a, pthread_t t, enum soak_cut cut)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	switch (cut) {
	case CUT_RST:
		setsockopt(kvmi_dom_fd(c->dom), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		_exit(c->timeouts ? 2 : 0);
	case CUT_KILL:
		raise(SIGKILL);
		break;
	default:
		kvmi_dom_shutdown(c->dom);
		atomic_store(&a->stop, true);
		pthread_join(t, NULL);
		chaos_trace(c, "closed; %u events answered", a->answered);
		kvmi_dom_close(c->dom);
		break;
	}
}

static int run_tool(struct soak_vm *vm, struct rng rng, const struct plan *p, const char *trace)
{
	struct chaos c = { .vm = vm, .rng = rng };
	struct answerer a = { .c = &c, .rng = { rng.s ^ 0x5eedull } };
	pthread_t t;
	int err;

	c.trace = fopen(trace, "w");
	err = soak_accept(vm, 20000, &c.dom);
	if (err) {
		chaos_trace(&c, "no session: %s", kvmi_strerror(err));
		return 3;
	}
	chaos_trace(&c, "session; %u operations, cut by %s%s", p->nops, cut_names[p->cut],
		    p->raw ? " after a raw vCPU command" : "");
	atomic_init(&a.stop, false);
	if (pthread_create(&t, NULL, answer_events, &a))
		return 3;
	for (unsigned i = 0; i < p->nops || p->cut == CUT_KILL_ASYNC; i++)
		chaos_op(&c);
	if (p->raw)
		chaos_raw_vcpu_command(&c);
	cut_session(&c, &a, t, p->cut);
	return c.timeouts ? 2 : 0;
}

static void describe(const struct plan *p, struct soak_result *res)
{
	if (p->cut == CUT_KILL_ASYNC)
		snprintf(res->desc, sizeof(res->desc), "operations until killed after %u ms", p->async_ms);
	else
		snprintf(res->desc, sizeof(res->desc), "%u operations, cut by %s%s", p->nops, cut_names[p->cut],
			 p->raw ? " after a raw vCPU command" : "");
}

static void judge(const struct plan *p, int st, struct soak_result *res)
{
	bool killed = p->cut == CUT_KILL || p->cut == CUT_KILL_ASYNC;

	if (st == 0 || (killed && st == 128 + SIGKILL))
		return;
	if (st == 2)
		soak_fail(res, "tool session: a command timed out (the VMM did not answer)");
	else if (st == 3)
		soak_fail(res, "tool session: no connection from the VMM");
	else if (st == 128 + SIGALRM || st < 0)
		soak_fail(res, "tool session: hung");
	else
		soak_fail(res, "tool session: the tool process ended with status %d", st);
}

void soak_chaos_round(struct soak_vm *vm, uint64_t round_seed, const char *trace_path,
		      struct soak_result *res)
{
	struct rng rng = { round_seed };
	struct plan p;
	pid_t parent = getpid(), pid;
	int st;

	p.cut = (enum soak_cut)rng_below(&rng, CUT_MAX);
	p.nops = 1 + rng_below(&rng, 40);
	p.raw = p.cut != CUT_KILL_ASYNC && rng_pct(&rng, 50);
	p.async_ms = 50 + rng_below(&rng, 3000);
	describe(&p, res);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		soak_fail(res, "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		alarm(TOOL_ALARM_S);
		_exit(run_tool(vm, rng, &p, trace_path));
	}
	soak_register_child(pid);
	st = -1;
	if (p.cut == CUT_KILL_ASYNC && (st = soak_wait_pid(pid, (int)p.async_ms)) < 0)
		kill(pid, SIGKILL);
	if (st < 0)
		st = soak_wait_pid(pid, TOOL_WAIT_MS);
	if (st < 0) {
		kill(pid, SIGKILL);
		soak_wait_pid(pid, 10000);
	}
	soak_forget_child(pid);
	judge(&p, st, res);
}
