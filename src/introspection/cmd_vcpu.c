/* SPDX-License-Identifier: MIT */
/*
 * cmd_vcpu.c - vCPU-scoped commands. validate() runs on the introspection
 * thread; handle() runs on the vCPU's thread (kvmi_vcpu_job_run), except
 * SET_REGISTERS, which only stashes the registers for the pending event.
 */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#define B(cmd) ((cmd)->srv->b)
#define OPS(cmd) ((cmd)->srv->ops)

static int reply(struct kvmi_cmd *cmd, const void *data, size_t len)
{
	return ks_reply(cmd->srv, &cmd->rctx, 0, data, len);
}

int ks_h_get_vcpu_info(struct kvmi_cmd *cmd)
{
	struct kvmi_get_vcpu_info_reply rpl = { 0 };
	int err = OPS(cmd)->get_tsc_speed(B(cmd), cmd->vcpu, &rpl.tsc_speed);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

int ks_v_control_events(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_events *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;

	if (req->padding1 || req->padding2 || req->enable > 1)
		return -KVM_EINVAL;
	if (req->event_id >= KVMI_NUM_EVENTS || !ks_is_vcpu_event(req->event_id))
		return -KVM_EINVAL;
	if (!kvmi_policy_event_allowed(&srv->policy, req->event_id))
		return -KVM_EPERM;
	/* Disabling something this host cannot deliver is harmless. */
	if (req->enable)
		return ks_event_supported(srv, req->event_id);
	return 0;
}

int ks_h_control_events(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_events *req = cmd->req;
	struct kvmi_vcpu_state *v = &cmd->srv->vcpus[cmd->vcpu];
	uint64_t bit = 1ull << req->event_id;
	int err;

	if (OPS(cmd)->control_events) {
		err = OPS(cmd)->control_events(B(cmd), cmd->vcpu, req->event_id, req->enable);
		if (err)
			return err;
	}
	if (req->enable)
		atomic_fetch_or(&v->events, bit);
	else
		atomic_fetch_and(&v->events, ~bit);
	return reply(cmd, NULL, 0);
}

int ks_v_control_cr(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_cr *req = cmd->req;

	if (req->padding1 || req->padding2 || req->enable > 1)
		return -KVM_EINVAL;
	if (req->cr != 0 && req->cr != 3 && req->cr != 4)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_control_cr(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_cr *req = cmd->req;
	int err = OPS(cmd)->control_cr(B(cmd), cmd->vcpu, req->cr, req->enable);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_v_control_msr(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_msr *req = cmd->req;

	if (req->padding1 || req->padding2 || req->enable > 1)
		return -KVM_EINVAL;
	/* The two ranges the MSR bitmaps cover (the doc's inclusive bounds;
	 * the kernel's code checks a subset). */
	if (req->msr > 0x1fff && (req->msr < 0xc0000000u || req->msr > 0xc0001fffu))
		return -KVM_EINVAL;
	return 0;
}

int ks_h_control_msr(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_msr *req = cmd->req;
	int err = OPS(cmd)->control_msr(B(cmd), cmd->vcpu, req->msr, req->enable);

	return err ? err : reply(cmd, NULL, 0);
}

static size_t registers_reply_size(unsigned nmsrs)
{
	return sizeof(struct kvmi_get_registers_reply) + nmsrs * sizeof(struct kvmi_x86_msr_entry);
}

int ks_v_get_registers(struct kvmi_cmd *cmd)
{
	const struct kvmi_get_registers *req = cmd->req;

	if (cmd->req_size < sizeof(*req) || req->padding1 || req->padding2)
		return -KVM_EINVAL;
	if (cmd->req_size != sizeof(*req) + (size_t)req->nmsrs * sizeof(uint32_t))
		return -KVM_EINVAL;
	if (sizeof(struct kvmi_error_code) + registers_reply_size(req->nmsrs) > KVMI_MSG_SIZE)
		return -KVM_ENOMEM;
	return 0;
}

int ks_h_get_registers(struct kvmi_cmd *cmd)
{
	const struct kvmi_get_registers *req = cmd->req;
	const uint32_t *idx = (const uint32_t *)(req + 1);
	size_t size = registers_reply_size(req->nmsrs);
	struct kvmi_get_registers_reply *rpl;
	struct kvmi_x86_msr_entry *msrs;
	unsigned i;
	int err;

	rpl = calloc(1, size);
	if (!rpl)
		return -KVM_ENOMEM;
	msrs = (struct kvmi_x86_msr_entry *)(rpl + 1);
	for (i = 0; i < req->nmsrs; i++)
		msrs[i].index = idx[i];
	err = OPS(cmd)->get_registers(B(cmd), cmd->vcpu, &rpl->mode, &rpl->regs, &rpl->sregs,
				      msrs, req->nmsrs);
	if (!err) {
		rpl->padding = 0;
		rpl->msrs.nmsrs = req->nmsrs;
		rpl->msrs.pad = 0;
		for (i = 0; i < req->nmsrs; i++) {
			msrs[i].index = idx[i];
			msrs[i].reserved = 0;
		}
		err = reply(cmd, rpl, size);
	}
	free(rpl);
	return err;
}

/* Introspection thread: valid only while the vCPU waits for an event
 * reply; the registers are applied when that reply arrives. */
int ks_h_set_registers(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_vcpu_state *v = &srv->vcpus[cmd->vcpu];
	int err = 0;

	kvmi_mutex_lock(&srv->lock);
	if (!v->waiting || v->replied || v->aborted) {
		err = -KVM_EOPNOTSUPP;
	} else {
		memcpy(&v->regs, cmd->req, sizeof(v->regs));
		v->regs_pending = true;
	}
	kvmi_mutex_unlock(&srv->lock);
	return err ? err : reply(cmd, NULL, 0);
}

int ks_h_get_cpuid(struct kvmi_cmd *cmd)
{
	const struct kvmi_get_cpuid *req = cmd->req;
	struct kvmi_get_cpuid_reply rpl = { 0 };
	int err = OPS(cmd)->get_cpuid(B(cmd), cmd->vcpu, req->function, req->index, &rpl);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

int ks_h_get_xsave(struct kvmi_cmd *cmd)
{
	uint8_t *buf = calloc(1, KVMI_XSAVE_SIZE);
	int err;

	if (!buf)
		return -KVM_ENOMEM;
	err = OPS(cmd)->get_xsave(B(cmd), cmd->vcpu, buf, KVMI_XSAVE_SIZE);
	if (!err)
		err = reply(cmd, buf, KVMI_XSAVE_SIZE);
	free(buf);
	return err;
}

int ks_v_set_xsave(struct kvmi_cmd *cmd)
{
	return cmd->req_size > KVMI_XSAVE_SIZE ? -KVM_EINVAL : 0;
}

int ks_h_set_xsave(struct kvmi_cmd *cmd)
{
	int err = OPS(cmd)->set_xsave(B(cmd), cmd->vcpu, cmd->req, cmd->req_size);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_v_get_xcr(struct kvmi_cmd *cmd)
{
	const struct kvmi_get_xcr *req = cmd->req;

	if (req->padding1 || req->padding2 || req->padding3 || req->xcr != 0)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_get_xcr(struct kvmi_cmd *cmd)
{
	const struct kvmi_get_xcr *req = cmd->req;
	struct kvmi_get_xcr_reply rpl = { 0 };
	int err = OPS(cmd)->get_xcr(B(cmd), cmd->vcpu, req->xcr, &rpl.value);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

int ks_v_inject_exception(struct kvmi_cmd *cmd)
{
	const struct kvmi_inject_exception *req = cmd->req;

	if (req->padding1 || req->padding2)
		return -KVM_EINVAL;
	/* Architectural exception vectors only. */
	if (req->nr >= 32)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_inject_exception(struct kvmi_cmd *cmd)
{
	const struct kvmi_inject_exception *req = cmd->req;
	int err = OPS(cmd)->inject_exception(B(cmd), cmd->vcpu, req->nr, req->error_code,
					     req->address);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_h_get_mtrr_type(struct kvmi_cmd *cmd)
{
	const struct kvmi_get_mtrr_type *req = cmd->req;
	struct kvmi_get_mtrr_type_reply rpl = { 0 };
	int err = OPS(cmd)->get_mtrr_type(B(cmd), cmd->vcpu, req->gpa, &rpl.type);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

int ks_h_translate_gva(struct kvmi_cmd *cmd)
{
	const struct kvmi_translate_gva *req = cmd->req;
	struct kvmi_translate_gva_reply rpl = { 0 };
	int err = OPS(cmd)->translate_gva(B(cmd), cmd->vcpu, req->gva, &rpl.gpa);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

int ks_v_control_singlestep(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_singlestep *req = cmd->req;

	if (req->padding1 || req->padding2 || req->padding3 || req->enable > 1)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_control_singlestep(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_singlestep *req = cmd->req;
	int err = OPS(cmd)->control_singlestep(B(cmd), cmd->vcpu, req->enable);

	return err ? err : reply(cmd, NULL, 0);
}
