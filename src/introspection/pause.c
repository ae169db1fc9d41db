/* SPDX-License-Identifier: MIT */
/*
 * pause.c - PAUSE_VCPU. The command is handled on the introspection thread
 * (so "pause the VM" is N commands, complete when the last reply is out):
 * it counts a request and asks the backend to kick the vCPU. The vCPU
 * thread later sends one PAUSE_VCPU event per request through
 * kvmi_vcpu_handle_pauses(), after its other work.  With wait and a
 * backend that can start a wait (ops->pause_wait), the replies are held
 * until ks_pause_flush(): every vCPU of a pipelined pause-all is kicked
 * before the first one is waited for.
 */
#include "commands.h"

#include <errno.h>

/* Bad padding or a disallowed PAUSE_VCPU event also close the connection
 * (kvmi-v7 behaviour): the tool cannot know which vCPUs will stop. */
int ks_v_pause_vcpu(struct kvmi_cmd *cmd)
{
	const struct kvmi_pause_vcpu *req = cmd->req;

	if (req->padding1 || req->padding2 || req->padding3) {
		cmd->close_after = true;
		return -KVM_EINVAL;
	}
	if (!kvmi_policy_event_allowed(&cmd->srv->policy, KVMI_EVENT_PAUSE_VCPU)) {
		cmd->close_after = true;
		return -KVM_EPERM;
	}
	if (req->wait > 1)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_pause_vcpu(struct kvmi_cmd *cmd)
{
	const struct kvmi_pause_vcpu *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_vcpu_state *v = &srv->vcpus[cmd->vcpu];
	/* without wait too while others are held: the replies keep their order */
	bool hold_reply = srv->ops->pause_wait && (req->wait || srv->nr_pause_replies);
	int err = 0;

	if (hold_reply && srv->nr_pause_replies == KS_PAUSE_BATCH) {
		err = ks_pause_flush(srv);
		if (err)
			return err;
	}
	kvmi_mutex_lock(&srv->lock);
	if (v->pauses >= KVMI_MAX_PAUSE_REQUESTS)
		err = -KVM_EBUSY;
	else
		v->pauses++;
	kvmi_mutex_unlock(&srv->lock);
	if (err)
		return err;

	err = srv->ops->pause_vcpu(srv->b, cmd->vcpu, req->wait);
	if (err) {
		kvmi_mutex_lock(&srv->lock);
		if (v->pauses)
			v->pauses--;
		kvmi_mutex_unlock(&srv->lock);
		return err;
	}
	if (hold_reply) {
		srv->pause_replies[srv->nr_pause_replies++] = cmd->rctx;
		return 0;
	}
	return ks_reply(srv, &cmd->rctx, 0, NULL, 0);
}

int ks_pause_flush(struct kvmi_server *srv)
{
	int err = 0;

	if (!srv->nr_pause_replies)
		return 0;
	srv->ops->pause_wait(srv->b);
	for (unsigned i = 0; i < srv->nr_pause_replies; i++) {
		int e = ks_reply(srv, &srv->pause_replies[i], 0, NULL, 0);

		if (!err)
			err = e;
	}
	srv->nr_pause_replies = 0;
	return err;
}

unsigned kvmi_vcpu_pending_pauses(struct kvmi_server *srv, unsigned vcpu)
{
	unsigned n;

	if (vcpu >= srv->cfg.max_vcpus)
		return 0;
	kvmi_mutex_lock(&srv->lock);
	n = srv->connected ? srv->vcpus[vcpu].pauses : 0;
	kvmi_mutex_unlock(&srv->lock);
	return n;
}

bool kvmi_vcpu_take_pause(struct kvmi_server *srv, unsigned vcpu)
{
	struct kvmi_vcpu_state *v;
	bool taken;

	if (vcpu >= srv->cfg.max_vcpus)
		return false;
	v = &srv->vcpus[vcpu];
	kvmi_mutex_lock(&srv->lock);
	taken = srv->connected && v->pauses;
	if (taken)
		v->pauses--;
	kvmi_mutex_unlock(&srv->lock);
	return taken;
}

int kvmi_vcpu_handle_pauses(struct kvmi_server *srv, unsigned vcpu, struct kvmi_event_result *res)
{
	int err = 0;

	res->action = KVMI_EVENT_ACTION_CONTINUE;
	res->delivered = false;
	res->regs_applied = false;
	if (vcpu >= srv->cfg.max_vcpus)
		return -EINVAL;
	while (kvmi_vcpu_take_pause(srv, vcpu)) {
		err = kvmi_vcpu_event(srv, vcpu, KVMI_EVENT_PAUSE_VCPU, NULL, 0, NULL, 0, res);
		if (err || res->action == KVMI_EVENT_ACTION_CRASH)
			break;
	}
	return err;
}
