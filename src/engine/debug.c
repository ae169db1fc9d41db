/* SPDX-License-Identifier: MIT */
/*
 * debug.c - single-step and breakpoints through KVM_SET_GUEST_DEBUG.  The
 * vCPU's guest-debug state is the union of what the tool asked for
 * (CONTROL_SINGLESTEP, BREAKPOINT events), what an execute step needs
 * (exec.c) and what the frontend wants for itself (a gdbstub); a debug exit
 * the engine did not ask for goes to the frontend.
 */
#include "kvm_ioctl.h"
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "util.h"

#define DB_VECTOR 1
#define BP_VECTOR 3

/* vCPU thread. */
int eng_update_guest_debug(struct kvmi_engine_vcpu *v)
{
	struct kvmi_engine *e = v->e;
	struct kvm_guest_debug dbg = v->host_dbg;

	if (v->singlestep || v->exec_step)
		dbg.control |= KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
	if (v->exec_step && e->have_blockirq)
		dbg.control |= KVM_GUESTDBG_BLOCKIRQ;
	if (v->breakpoints && e->bp_path == KVMI_INT3_DEBUG_EXIT)
		dbg.control |= KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP;
	return kvm_ioctl(v->fd, KVM_SET_GUEST_DEBUG, &dbg) < 0 ? -errno : 0;
}

int kvmi_engine_set_host_guest_debug(struct kvmi_engine_vcpu *v, const struct kvm_guest_debug *d)
{
	struct kvm_guest_debug old = v->host_dbg;
	int err;

	if (d)
		v->host_dbg = *d;
	else
		memset(&v->host_dbg, 0, sizeof(v->host_dbg));
	err = eng_update_guest_debug(v);
	if (err)
		v->host_dbg = old;
	return err;
}

int eng_control_singlestep(struct kvmi_engine_vcpu *v, bool enable)
{
	bool was = v->singlestep;

	if (!v->e->have_singlestep)
		return -KVM_EOPNOTSUPP;
	v->singlestep = enable;
	if (eng_update_guest_debug(v)) {
		v->singlestep = was;
		return -KVM_EINVAL;
	}
	return 0;
}

int eng_control_breakpoints(struct kvmi_engine_vcpu *v, bool enable)
{
	v->breakpoints = enable;
	if (eng_update_guest_debug(v)) {
		v->breakpoints = !enable;
		return -KVM_EOPNOTSUPP;
	}
	return 0;
}

/* The tool left: its single-step and breakpoints go before the next entry. */
void eng_debug_prerun(struct kvmi_engine_vcpu *v)
{
	if (atomic_exchange(&v->tool_left, false) && (v->singlestep || v->breakpoints)) {
		v->singlestep = false;
		v->breakpoints = false;
		eng_update_guest_debug(v);
	}
}

/* Did the frontend ask for this debug exit? */
static bool hosts_exit(struct kvmi_engine_vcpu *v, unsigned vector)
{
	uint32_t c = v->host_dbg.control;

	if (!(c & KVM_GUESTDBG_ENABLE))
		return false;
	if (vector == BP_VECTOR)
		return c & KVM_GUESTDBG_USE_SW_BP;
	return c & (KVM_GUESTDBG_SINGLESTEP | KVM_GUESTDBG_USE_HW_BP);
}

/* One instruction done under CONTROL_SINGLESTEP: the SINGLESTEP event (if
 * the tool enabled it); stepping goes on until the tool turns it off. */
enum kvmi_exit_owner eng_debug_exit(struct kvmi_engine_vcpu *v)
{
	struct kvm_debug_exit_arch *d = &v->run->debug.arch;
	struct kvmi_event_singlestep ev = { .failed = 0 };
	bool host = hosts_exit(v, d->exception);

	if (d->exception == BP_VECTOR) {
		if (host && !v->breakpoints)
			return KVMI_EXIT_FRONTEND;
		if (v->breakpoints || v->e->bp_path == KVMI_INT3_DEBUG_EXIT)
			eng_handle_int3(v, d->pc);
		return KVMI_EXIT_ENGINE;
	}
	if (v->exec_step)
		eng_exec_step_end(v);
	else if (!v->singlestep)
		return host ? KVMI_EXIT_FRONTEND : KVMI_EXIT_ENGINE;
	if (v->singlestep)
		eng_raise(v, KVMI_EVENT_SINGLESTEP, NULL, &ev, sizeof(ev), NULL, 0);
	return host ? KVMI_EXIT_FRONTEND : KVMI_EXIT_ENGINE;
}
