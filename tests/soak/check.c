/* SPDX-License-Identifier: MIT */
/*
 * The fresh session after each round (and the first one of each VM): the
 * next session comes and works (a VM command and a vCPU command round
 * trip); with PF, MSR and SINGLESTEP events enabled on every vCPU but
 * nothing restricted, no event at all may come while every vCPU's
 * counters advance by a full sweep of its pages and a few ring-0 loops
 * (the barrier: not a sleep); the guest takes no #DB meanwhile.
 */
#include "soak.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ACCEPT_MS   20000
#define BARRIER_MS  30000
#define MAGIC_MS    30000

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int read_mbox(struct kvmi_dom *dom, struct soak_mbox *m)
{
	return kvmi_dom_read_physical(dom, SOAK_MBOX_GPA, m, sizeof(*m));
}

/* Every event in this session is one too many: a restriction, an MSR
 * interception, a single-step or a pause survived the last session. */
static void drain(struct kvmi_dom *dom, int timeout_ms, struct soak_result *res)
{
	struct kvmi_event_msg *ev;

	while (kvmi_dom_next_event(dom, timeout_ms, &ev) == 0) {
		unsigned long long where = 0;

		if (ev->event == KVMI_EVENT_PF)
			where = ev->specific.pf.gpa;
		else if (ev->event == KVMI_EVENT_MSR)
			where = ev->specific.msr.msr;
		else
			where = ev->common.arch.regs.rip;
		soak_fail(res, "fresh session: unexpected %s event on vCPU %u (%s %#llx%s)",
			  kvmi_event_name(ev->event), ev->vcpu,
			  ev->event == KVMI_EVENT_PF ? "gpa" : ev->event == KVMI_EVENT_MSR ? "msr" : "rip",
			  where, ev->event != KVMI_EVENT_PF ? "" : ev->specific.pf.access == KVMI_PAGE_ACCESS_R ?
			  ", read" : ev->specific.pf.access == KVMI_PAGE_ACCESS_W ? ", write" : ", fetch");
		soak_reply(dom, ev, KVMI_EVENT_ACTION_CONTINUE);
		kvmi_event_free(ev);
		timeout_ms = 0;
	}
}

static void probe_caps(struct kvmi_dom *dom, struct soak_caps *caps)
{
	struct kvmi_features f;
	uint32_t ver;

	caps->msr = kvmi_dom_check_event(dom, KVMI_EVENT_MSR) == 0;
	caps->breakpoint = kvmi_dom_check_event(dom, KVMI_EVENT_BREAKPOINT) == 0;
	caps->singlestep = kvmi_dom_get_version(dom, &ver, &f) == 0 && f.singlestep &&
			   kvmi_dom_check_event(dom, KVMI_EVENT_SINGLESTEP) == 0;
}

static int wait_magic(struct kvmi_dom *dom, unsigned vcpus, struct soak_result *res)
{
	struct soak_mbox m;
	long end = now_ms() + MAGIC_MS;
	bool up;

	do {
		up = read_mbox(dom, &m) == 0 && m.magic == SOAK_MAGIC;
		for (unsigned i = 0; up && i < vcpus; i++)
			up = m.vcpu[i].alive == 1;
		if (up)
			return 0;
		usleep(20000);
	} while (now_ms() < end);
	soak_fail(res, "the guest did not start within %d s", MAGIC_MS / 1000);
	return -ETIMEDOUT;
}

/* A VM command and a vCPU command (a job on each vCPU's thread). */
static int round_trips(struct kvmi_dom *dom, struct soak_vm *vm, struct soak_result *res)
{
	struct kvmi_x86_regs regs;
	uint32_t n = 0;
	int err = kvmi_dom_get_guest_info(dom, &n);

	if (err || n != vm->vcpus) {
		soak_fail(res, "fresh session: GET_GUEST_INFO: %s, %u vCPUs (want %u)", kvmi_strerror(err), n,
			  vm->vcpus);
		return -1;
	}
	for (unsigned v = 0; v < vm->vcpus; v++) {
		err = kvmi_dom_get_registers(dom, (uint16_t)v, &regs, NULL, NULL, 0, NULL);
		if (err) {
			soak_fail(res, "fresh session: GET_REGISTERS of vCPU %u: %s", v, kvmi_strerror(err));
			return -1;
		}
	}
	return 0;
}

static int watch_all(struct kvmi_dom *dom, struct soak_vm *vm, struct soak_result *res)
{
	for (unsigned v = 0; v < vm->vcpus; v++) {
		uint16_t ev[3] = { KVMI_EVENT_PF, KVMI_EVENT_MSR, KVMI_EVENT_SINGLESTEP };
		bool on[3] = { true, vm->caps.msr, vm->caps.singlestep };

		for (unsigned i = 0; i < 3; i++) {
			int err = on[i] ? kvmi_dom_control_events(dom, (uint16_t)v, ev[i], true) : 0;

			if (err) {
				soak_fail(res, "fresh session: CONTROL_EVENTS(%s) on vCPU %u: %s",
					  kvmi_event_name(ev[i]), v, kvmi_strerror(err));
				return -1;
			}
		}
	}
	return 0;
}

/* Has every vCPU swept all its pages twice, written its MSRs and taken
 * its int3s since `a`? */
static bool vcpu_advanced(const struct soak_vcpu *x, const struct soak_vcpu *y)
{
	return y->r3_iters >= x->r3_iters + 2 * SOAK_SWEEP_PAGES && y->r0_loops >= x->r0_loops + 4 &&
	       y->msr_writes >= x->msr_writes + 4 && y->bp_count >= x->bp_count + 4;
}

static bool advanced(const struct soak_mbox *a, const struct soak_mbox *b, unsigned vcpus)
{
	for (unsigned i = 0; i < vcpus; i++)
		if (!vcpu_advanced(&a->vcpu[i], &b->vcpu[i]))
			return false;
	return true;
}

static void barrier(struct kvmi_dom *dom, struct soak_vm *vm, struct soak_result *res)
{
	struct soak_mbox a, b;
	long end = now_ms() + BARRIER_MS;

	if (read_mbox(dom, &a)) {
		soak_fail(res, "fresh session: READ_PHYSICAL of the mailbox failed");
		return;
	}
	do {
		drain(dom, 20, res);
		if (read_mbox(dom, &b)) {
			soak_fail(res, "fresh session: READ_PHYSICAL of the mailbox failed");
			return;
		}
		if (advanced(&a, &b, vm->vcpus))
			break;
	} while (now_ms() < end);
	drain(dom, 0, res);
	for (unsigned i = 0; i < vm->vcpus; i++) {
		const struct soak_vcpu *x = &a.vcpu[i], *y = &b.vcpu[i];

		if (!vcpu_advanced(x, y))
			soak_fail(res, "vCPU %u made no progress in %d s: ring 3 %llu -> %llu, ring 0 %llu -> %llu, "
				  "msr %llu -> %llu, int3 %llu -> %llu", i, BARRIER_MS / 1000,
				  (unsigned long long)x->r3_iters, (unsigned long long)y->r3_iters,
				  (unsigned long long)x->r0_loops, (unsigned long long)y->r0_loops,
				  (unsigned long long)x->msr_writes, (unsigned long long)y->msr_writes,
				  (unsigned long long)x->bp_count, (unsigned long long)y->bp_count);
		if (y->db_count != x->db_count)
			soak_fail(res, "vCPU %u took %llu #DB with no single-step enabled", i,
				  (unsigned long long)(y->db_count - x->db_count));
	}
}

void soak_check(struct soak_vm *vm, bool first, struct soak_result *res)
{
	struct kvmi_dom *dom = NULL;
	long end = now_ms() + ACCEPT_MS;
	int err, st;

	do {
		err = soak_accept(vm, 500, &dom);
		if (err == -ETIMEDOUT && !soak_vm_alive(vm, &st)) {
			soak_fail(res, "kvmi-vm exited (status %d)", st);
			return;
		}
	} while (err == -ETIMEDOUT && now_ms() < end);
	if (err) {
		soak_fail(res, "no fresh session within %d s: %s", ACCEPT_MS / 1000, kvmi_strerror(err));
		return;
	}
	drain(dom, 0, res);
	if (first) {
		probe_caps(dom, &vm->caps);
		if (wait_magic(dom, vm->vcpus, res))
			goto out;
	}
	if (round_trips(dom, vm, res) || watch_all(dom, vm, res))
		goto out;
	barrier(dom, vm, res);
out:
	kvmi_dom_close(dom);
}
