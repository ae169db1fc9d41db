/* SPDX-License-Identifier: MIT */
/*
 * raise.c - the one path that raises an event and turns the tool's answer
 * into a typed outcome.  CRASH and a vanished tool are handled here and
 * nowhere else: a CRASH stops the VM, a tool that is not there (or left
 * while the vCPU waited) is KVMI_NO_TOOL, which every caller treats as
 * "go on as if nobody watched".
 *
 * Also the events that are raised before an entry rather than on an exit:
 * CREATE_VCPU, the TRAP of an injected exception, PAUSE_VCPU.
 */
#include "kvm_ioctl.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "bpf_events.h"
#include "regs.h"
#include "util.h"

bool eng_event_wanted(struct kvmi_engine_vcpu *v, unsigned event)
{
	return kvmi_server_live(v->e->srv) && kvmi_vcpu_event_enabled(v->e->srv, v->idx, event);
}

static enum kvmi_outcome outcome_of(struct kvmi_engine_vcpu *v, unsigned event,
				    const struct kvmi_event_result *res)
{
	if (!res->delivered)
		return KVMI_NO_TOOL;
	switch (res->action) {
	case KVMI_EVENT_ACTION_RETRY:
		return KVMI_RETRY;
	case KVMI_EVENT_ACTION_CRASH:
		pr_err("vcpu %u: the introspection tool answered %s with CRASH; stopping the guest", v->idx,
		       kvmi_srv_event_name(event));
		eng_request_stop(v->e, KVMI_STOP_CRASH);
		return KVMI_CRASH;
	default:
		return KVMI_CONTINUE;
	}
}

struct kvmi_raised eng_raise(struct kvmi_engine_vcpu *v, unsigned event, const struct kvmi_event_arch *arch,
			     const void *data, size_t len, void *rpl, size_t rpl_len)
{
	struct kvmi_event_result res;
	struct kvmi_raised out = { KVMI_NO_TOOL, false };

	int err;

	/* The exit that raised it is being handled again after the thread
	 * went back to the frontend: wait on for the same reply. */
	if (v->suspended && v->suspended_event == event) {
		v->suspended = false;
		err = kvmi_vcpu_event_resume(v->e->srv, v->idx, rpl, rpl_len, &res);
	} else {
		err = kvmi_vcpu_event_arch(v->e->srv, v->idx, event, arch, data, len, rpl, rpl_len, &res);
	}

	if (err == -EINTR) {
		v->suspended = true;
		v->suspended_event = event;
		out.outcome = KVMI_SUSPENDED;
		return out;
	}
	if (err)
		return out;
	out.outcome = outcome_of(v, event, &res);
	out.regs_applied = res.regs_applied;
	return out;
}

/* ---- TRAP ---------------------------------------------------------------- */

int eng_inject_exception(struct kvmi_engine_vcpu *v, uint8_t vector, uint32_t error_code, uint64_t address)
{
	int err;

	if (v->trap_pending)
		return -KVM_EBUSY; /* its TRAP event has not been sent yet */
	err = kvmi_vcpu_inject_exception(v, vector, error_code, address);
	if (!err)
		v->trap_pending = true;
	return err;
}

/* The TRAP event for an exception injected by INJECT_EXCEPTION: what KVM
 * really holds for the next entry (another event may have replaced it). */
static void send_trap(struct kvmi_engine_vcpu *v)
{
	struct kvmi_event_trap trap;
	struct kvm_vcpu_events ev;

	v->trap_pending = false;
	memset(&trap, 0, sizeof(trap));
	if (kvm_ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) == 0 && (ev.exception.pending || ev.exception.injected)) {
		trap.vector = ev.exception.nr;
		trap.error_code = ev.exception.has_error_code ? ev.exception.error_code : 0;
		if (ev.exception.nr == 14) {
			struct kvm_sregs s;

			if (ev.exception_has_payload)
				trap.cr2 = ev.exception_payload;
			else if (eng_get_sregs(v, &s) == 0)
				trap.cr2 = s.cr2;
		}
	} else {
		trap.vector = 0xff; /* nothing pending any more */
	}
	eng_raise(v, KVMI_EVENT_TRAP, NULL, &trap, sizeof(trap), NULL, 0);
}

/* ---- CREATE_VCPU ------------------------------------------------------- */

/* --introspector-wait: may this vCPU run its first instruction? */
static bool first_entry_allowed(void *ctx)
{
	struct kvmi_engine_vcpu *v = ctx;
	struct kvmi_engine *e = v->e;

	if (atomic_load(&e->in_session))
		return kvmi_vcpu_event_enabled(e->srv, 0, KVMI_EVENT_CREATE_VCPU);
	/* a tool came and went without asking for CREATE_VCPU: run */
	return atomic_load(&e->sessions) > 0;
}

/*
 * Before the first instruction of a vCPU: with --introspector-wait, wait
 * for the tool (serving its vCPU commands meanwhile); then raise
 * CREATE_VCPU if the tool enabled it.  The vCPU stays here until the tool
 * replies, which is how a tool keeps a new vCPU stopped.
 */
static void vcpu_created(struct kvmi_engine_vcpu *v)
{
	if (v->e->cfg.wait_for_tool) {
		pr_debug("vcpu %u: waiting for an introspection tool (--introspector-wait)", v->idx);
		if (!eng_wait(v, first_entry_allowed, v) && v->yielded)
			return;         /* waits again at the next pre_run */
	}
	v->created = true;
	eng_raise(v, KVMI_EVENT_CREATE_VCPU, NULL, NULL, 0, NULL, 0);
}

/* ---- PAUSE_VCPU ---------------------------------------------------------- */

/* One PAUSE_VCPU event per pending request, each waited for; a CRASH ends
 * the series. */
static void send_pauses(struct kvmi_engine_vcpu *v)
{
	while (kvmi_vcpu_take_pause(v->e->srv, v->idx)) {
		enum kvmi_outcome o = eng_raise(v, KVMI_EVENT_PAUSE_VCPU, NULL, NULL, 0, NULL, 0).outcome;

		if (o == KVMI_CRASH || o == KVMI_SUSPENDED)
			return;
	}
}

/* Before every entry, in priority order: CREATE_VCPU, the BPF hooks'
 * stops, TRAP, and PAUSE_VCPU last (after jobs and other events). */
void eng_raise_pending(struct kvmi_engine_vcpu *v)
{
	if (!v->created) {
		v->may_yield = true;
		vcpu_created(v);
		v->may_yield = false;
		if (atomic_load(&v->e->stopping) || v->yielded || v->suspended)
			return;
	}
	/* CR/XSETBV/HYPERCALL replies carry data: they never yield */
	bpf_events_prerun(v->e->bpf, v);
	v->may_yield = true;
	if (v->trap_pending)
		send_trap(v);
	if (!v->suspended)
		send_pauses(v);
	v->may_yield = false;
}

bool eng_resume_suspended(struct kvmi_engine_vcpu *v)
{
	struct kvmi_event_result res;
	int err;

	if (!v->suspended || v->suspended_exit)
		return false;
	v->may_yield = true;
	err = kvmi_vcpu_event_resume(v->e->srv, v->idx, NULL, 0, &res);
	v->may_yield = false;
	if (err == -EINTR)
		return true;
	v->suspended = false;
	if (!err)
		outcome_of(v, v->suspended_event, &res);     /* CRASH stops the VM */
	v->yielded = false;
	return false;
}
