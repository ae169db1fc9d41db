/* SPDX-License-Identifier: MIT */
/*
 * cmd_core.c - the commands every KVMI endpoint answers without the
 * guest: GET_VERSION, CHECK_COMMAND, CHECK_EVENT and CONTROL_CMD_RESPONSE
 * (reply suppression, which libkvmi uses for every batch).
 */
#include "commands.h"

int ks_h_get_version(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_get_version_reply rpl = { .version = KVMI_VERSION };

	if (srv->ops->get_features)
		srv->ops->get_features(srv->b, &rpl.features);
	rpl.features.padding1 = 0;
	rpl.features.padding2 = 0;
	return ks_reply(srv, &cmd->rctx, 0, &rpl, sizeof(rpl));
}

/* CHECK_COMMAND and CHECK_EVENT share their layout. */
int ks_v_check_id(struct kvmi_cmd *cmd)
{
	const struct kvmi_check_command *req = cmd->req;

	if (req->padding1 || req->padding2)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_check_command(struct kvmi_cmd *cmd)
{
	const struct kvmi_check_command *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;
	int err;

	if (!ks_is_known_id(req->id))
		err = -KVM_EINVAL;
	else if (!kvmi_policy_command_allowed(&srv->policy, req->id))
		err = -KVM_EPERM;
	else
		err = ks_cmd_supported(srv, req->id);
	return ks_reply(srv, &cmd->rctx, err, NULL, 0);
}

/* The extension KVMI_X_EVENT_PF_PAGE_WALK: a property of PF events. */
static int check_pf_page_walk(struct kvmi_server *srv)
{
	int err;

	if (!kvmi_policy_event_allowed(&srv->policy, KVMI_EVENT_PF))
		return -KVM_EPERM;
	err = ks_event_supported(srv, KVMI_EVENT_PF);
	if (!err)
		err = srv->ops->check_event ?
			kvmi_srv_errno_to_wire(srv->ops->check_event(srv->b, KVMI_X_EVENT_PF_PAGE_WALK)) :
			-KVM_EOPNOTSUPP;
	return err;
}

int ks_h_check_event(struct kvmi_cmd *cmd)
{
	const struct kvmi_check_event *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;
	int err;

	if (req->id == KVMI_X_EVENT_PF_PAGE_WALK)
		err = check_pf_page_walk(srv);
	else if (req->id >= KVMI_NUM_EVENTS)
		err = -KVM_EINVAL;
	else if (!kvmi_policy_event_allowed(&srv->policy, req->id))
		err = -KVM_EPERM;
	else
		err = ks_event_supported(srv, req->id);
	return ks_reply(srv, &cmd->rctx, err, NULL, 0);
}

/*
 * Malformed CONTROL_CMD_RESPONSE closes the connection: after it the tool
 * and the VMM could disagree on which messages get replies.
 */
int ks_v_control_cmd_response(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_cmd_response *req = cmd->req;

	if (req->padding1 || req->padding2 || req->enable > 1 || req->now > 1 ||
	    (req->flags & ~KVMI_CMD_RESPONSE_FLAG_CMD_ERROR_EVENT)) {
		ks_log(cmd->srv, KVMI_SRV_LOG_WARN, "malformed CONTROL_CMD_RESPONSE; closing");
		return KVMI_CLOSE;
	}
	return 0;
}

int ks_h_control_cmd_response(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_cmd_response *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;
	bool enable = req->enable;
	bool error_events = false;

	if (!enable && (req->flags & KVMI_CMD_RESPONSE_FLAG_CMD_ERROR_EVENT)) {
		if (!kvmi_policy_event_allowed(&srv->policy, KVMI_EVENT_CMD_ERROR))
			return ks_reply(srv, &cmd->rctx, -KVM_EPERM, NULL, 0);
		error_events = true;
	}
	/* now=1: this message already follows the new state; now=0: from
	 * the next message on. */
	srv->replies_enabled = enable;
	srv->error_events = error_events;
	if (req->now) {
		cmd->rctx.enabled = enable;
		cmd->rctx.error_event = !enable && error_events;
	}
	return ks_reply(srv, &cmd->rctx, 0, NULL, 0);
}
