/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - how this server runs each command: the backend op it
 * needs, its validate/handle functions and where it runs; the generic
 * checks every command goes through (unknown id, policy, backend support,
 * vCPU header, size from the src/proto table) and the routing to the
 * introspection thread or a vCPU job. Also the "can this VMM do it"
 * answers that CHECK_COMMAND, CHECK_EVENT and dispatch share.
 */
#include "commands.h"

#include <stdlib.h>
#include <string.h>

#define ALWAYS  KVMI_CMD_ALWAYS_ALLOWED
#define INTRO   KVMI_CMD_ON_INTRO

/* KVMI_EVENT_REPLY (0) is routed before the table; KVMI_EVENT (1) is
 * VMM->tool only. Ids without an entry answer -KVM_ENOSYS. */
static const struct kvmi_cmd_desc cmd_table[KVMI_NUM_MESSAGES] = {
	[KVMI_GET_VERSION] = { .flags = ALWAYS, .handle = ks_h_get_version },
	[KVMI_CHECK_COMMAND] = { .flags = ALWAYS,
		.validate = ks_v_check_id, .handle = ks_h_check_command },
	[KVMI_CHECK_EVENT] = { .flags = ALWAYS,
		.validate = ks_v_check_id, .handle = ks_h_check_event },
	[KVMI_GET_GUEST_INFO] = { .handle = ks_h_get_guest_info },
	[KVMI_GET_VCPU_INFO] = { .op = KVMI_OP(get_tsc_speed), .handle = ks_h_get_vcpu_info },
	[KVMI_PAUSE_VCPU] = { .flags = INTRO, .op = KVMI_OP(pause_vcpu),
		.validate = ks_v_pause_vcpu, .handle = ks_h_pause_vcpu },
	[KVMI_CONTROL_VM_EVENTS] = {
		.validate = ks_v_control_vm_events, .handle = ks_h_control_vm_events },
	[KVMI_CONTROL_EVENTS] = { .validate = ks_v_control_events, .handle = ks_h_control_events },
	[KVMI_CONTROL_CR] = { .op = KVMI_OP(control_cr),
		.validate = ks_v_control_cr, .handle = ks_h_control_cr },
	[KVMI_CONTROL_MSR] = { .op = KVMI_OP(control_msr),
		.validate = ks_v_control_msr, .handle = ks_h_control_msr },
	[KVMI_GET_REGISTERS] = { .op = KVMI_OP(get_registers),
		.validate = ks_v_get_registers, .handle = ks_h_get_registers },
	[KVMI_SET_REGISTERS] = { .flags = INTRO, .op = KVMI_OP(set_registers),
		.handle = ks_h_set_registers },
	[KVMI_GET_CPUID] = { .op = KVMI_OP(get_cpuid), .handle = ks_h_get_cpuid },
	[KVMI_GET_XSAVE] = { .op = KVMI_OP(get_xsave), .handle = ks_h_get_xsave },
	[KVMI_READ_PHYSICAL] = { .op = KVMI_OP(read_physical),
		.validate = ks_v_read_physical, .handle = ks_h_read_physical },
	[KVMI_WRITE_PHYSICAL] = { .op = KVMI_OP(write_physical),
		.validate = ks_v_write_physical, .handle = ks_h_write_physical },
	[KVMI_INJECT_EXCEPTION] = { .op = KVMI_OP(inject_exception),
		.validate = ks_v_inject_exception, .handle = ks_h_inject_exception },
	[KVMI_SET_PAGE_ACCESS] = { .op = KVMI_OP(set_page_access),
		.validate = ks_v_set_page_access, .handle = ks_h_set_page_access },
	[KVMI_GET_MAP_TOKEN] = { .op = KVMI_OP(get_map_token), .handle = ks_h_get_map_token },
	[KVMI_GET_MTRR_TYPE] = { .op = KVMI_OP(get_mtrr_type), .handle = ks_h_get_mtrr_type },
	[KVMI_CONTROL_SPP] = { .op = KVMI_OP(control_spp),
		.validate = ks_v_control_spp, .handle = ks_h_control_spp },
	[KVMI_SET_PAGE_WRITE_BITMAP] = { .op = KVMI_OP(set_page_write_bitmap),
		.validate = ks_v_set_page_write_bitmap, .handle = ks_h_set_page_write_bitmap },
	[KVMI_CONTROL_CMD_RESPONSE] = {
		.validate = ks_v_control_cmd_response, .handle = ks_h_control_cmd_response },
	[KVMI_SET_VE_INFO_PAGE] = { .op = KVMI_OP(set_ve_info_page),
		.validate = ks_v_set_ve_info_page, .handle = ks_h_set_ve_info_page },
	[KVMI_GET_MAX_GFN] = { .op = KVMI_OP(get_max_gfn), .handle = ks_h_get_max_gfn },
	[KVMI_SET_PAGE_SVE] = { .op = KVMI_OP(set_page_sve),
		.validate = ks_v_set_page_sve, .handle = ks_h_set_page_sve },
	[KVMI_GET_NEXT_AVAILABLE_GFN] = { .op = KVMI_OP(get_next_available_gfn),
		.handle = ks_h_get_next_available_gfn },
	[KVMI_SWITCH_EPT_VIEW] = { .op = KVMI_OP(switch_ept_view),
		.validate = ks_v_switch_ept_view, .handle = ks_h_switch_ept_view },
	[KVMI_DISABLE_VE] = { .op = KVMI_OP(disable_ve), .handle = ks_h_disable_ve },
	[KVMI_GET_EPT_VIEW] = { .op = KVMI_OP(get_ept_view), .handle = ks_h_get_ept_view },
	[KVMI_VCPU_TRANSLATE_GVA] = { .op = KVMI_OP(translate_gva), .handle = ks_h_translate_gva },
	[KVMI_CONTROL_EPT_VIEW] = { .op = KVMI_OP(control_ept_view),
		.validate = ks_v_control_ept_view, .handle = ks_h_control_ept_view },
	[KVMI_VCPU_GET_XCR] = { .op = KVMI_OP(get_xcr),
		.validate = ks_v_get_xcr, .handle = ks_h_get_xcr },
	[KVMI_VCPU_SET_XSAVE] = { .op = KVMI_OP(set_xsave),
		.validate = ks_v_set_xsave, .handle = ks_h_set_xsave },
	[KVMI_QUERY_PHYSICAL] = { .op = KVMI_OP(query_physical), .handle = ks_h_query_physical },
	[KVMI_VCPU_ALLOC_GFN] = { .op = KVMI_OP(alloc_gfn), .handle = ks_h_alloc_gfn },
	[KVMI_VCPU_FREE_GFN] = { .op = KVMI_OP(free_gfn), .handle = ks_h_free_gfn },
	[KVMI_CREATE_EPT_VIEW] = { .op = KVMI_OP(create_ept_view),
		.handle = ks_h_create_ept_view },
	[KVMI_DESTROY_EPT_VIEW] = { .op = KVMI_OP(destroy_ept_view),
		.validate = ks_v_view_only, .handle = ks_h_destroy_ept_view },
	[KVMI_VCPU_CHANGE_GFN] = { .op = KVMI_OP(change_gfn),
		.validate = ks_v_change_gfn, .handle = ks_h_change_gfn },
	[KVMI_VCPU_CONTROL_SINGLESTEP] = { .op = KVMI_OP(control_singlestep),
		.validate = ks_v_control_singlestep, .handle = ks_h_control_singlestep },
};

/* kvmi extensions: ids outside the KVMI range (kvmi-wire.h). The
 * descriptor names map_memory; ks_cmd_supported() adds what else it needs. */
static const struct kvmi_cmd_desc x_map_memory_desc = {
	.op = KVMI_OP(map_memory),
	.validate = ks_v_x_map_memory, .handle = ks_h_x_map_memory,
};

const struct kvmi_cmd_desc *ks_cmd_lookup(unsigned id)
{
	if (id == KVMI_X_MAP_MEMORY)
		return &x_map_memory_desc;
	if (id >= KVMI_NUM_MESSAGES || !cmd_table[id].handle)
		return NULL;
	return &cmd_table[id];
}

bool ks_backend_has_op(const struct kvmi_backend_ops *ops, uint16_t op)
{
	void (*fn)(void);

	if (!op)
		return true;
	/* Every member of kvmi_backend_ops is a function pointer. */
	memcpy(&fn, (const char *)ops + (op - 1), sizeof(fn));
	return fn != NULL;
}

int ks_cmd_supported(struct kvmi_server *srv, unsigned id)
{
	const struct kvmi_cmd_desc *d;
	int err;

	if (id == KVMI_EVENT_REPLY)
		return 0;
	d = ks_cmd_lookup(id);
	if (!d || !ks_backend_has_op(srv->ops, d->op))
		return -KVM_ENOSYS;
	if (id == KVMI_X_MAP_MEMORY) {
		/* Tokens come from GET_MAP_TOKEN; descriptors only cross a
		 * unix socket. */
		if (!srv->ops->get_map_token)
			return -KVM_ENOSYS;
		if (!ks_conn_is_unix(srv))
			return -KVM_EOPNOTSUPP;
	}
	if (d->op && srv->ops->check_command) {
		err = srv->ops->check_command(srv->b, id);
		if (err)
			return kvmi_srv_errno_to_wire(err);
	}
	return 0;
}

bool ks_is_known_id(unsigned id)
{
	return id < KVMI_NUM_MESSAGES || kvmi_proto_command(id);
}

static bool event_has(unsigned id, unsigned flag)
{
	const struct kvmi_proto_event *e = kvmi_proto_event(id);

	return e && (e->flags & flag);
}

bool ks_is_vm_event(unsigned id)
{
	return event_has(id, KVMI_PROTO_EV_VM);
}

bool ks_is_vcpu_event(unsigned id)
{
	return event_has(id, KVMI_PROTO_EV_VCPU);
}

int ks_event_supported(struct kvmi_server *srv, unsigned id)
{
	const struct kvmi_backend_ops *o = srv->ops;

	if (id >= KVMI_NUM_EVENTS)
		return -KVM_EINVAL;
	/* Produced by the server itself. */
	if (id == KVMI_EVENT_CMD_ERROR)
		return 0;
	/* vCPU events carry the vCPU state the backend must provide. */
	if (id != KVMI_EVENT_UNHOOK && !o->get_event_arch)
		return -KVM_EOPNOTSUPP;
	/* These need a backend op besides the host's ability. */
	if (id == KVMI_EVENT_PAUSE_VCPU && !o->pause_vcpu)
		return -KVM_EOPNOTSUPP;
	if (id == KVMI_EVENT_TRAP && !o->inject_exception)
		return -KVM_EOPNOTSUPP;
	if (id == KVMI_EVENT_SINGLESTEP && !o->control_singlestep)
		return -KVM_EOPNOTSUPP;
	if (o->check_event)
		return kvmi_srv_errno_to_wire(o->check_event(srv->b, id));
	if (id == KVMI_EVENT_PAUSE_VCPU || id == KVMI_EVENT_TRAP || id == KVMI_EVENT_UNHOOK)
		return 0;
	return -KVM_EOPNOTSUPP;
}

/* ---- vCPU jobs ------------------------------------------------------ */

struct kvmi_vcpu_job {
	struct kvmi_cmd cmd;
	size_t size;
	uint8_t req[];
};

static void run_handler(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	int err = cmd->desc->handle(cmd);

	if (err == KVMI_CLOSE) {
		ks_drop_connection(srv, cmd->rctx.session);
		return;
	}
	if (err)
		ks_reply(srv, &cmd->rctx, kvmi_srv_errno_to_wire(err), NULL, 0);
	if (cmd->close_after)
		ks_drop_connection(srv, cmd->rctx.session);
}

void kvmi_vcpu_job_run(struct kvmi_vcpu_job *job)
{
	struct kvmi_server *srv = job->cmd.srv;
	uint64_t session = job->cmd.rctx.session;
	bool current;

	kvmi_mutex_lock(&srv->lock);
	current = ks_session_live_locked(srv, session);
	srv->jobs_running += current;
	kvmi_mutex_unlock(&srv->lock);
	/* A command from a tool that is gone must not touch the guest. */
	if (current) {
		run_handler(&job->cmd);
		kvmi_mutex_lock(&srv->lock);
		if (!--srv->jobs_running)
			pthread_cond_broadcast(&srv->cond);
		kvmi_mutex_unlock(&srv->lock);
	}
	ks_job_done(srv, job->cmd.vcpu, session);
	free(job);
}

void kvmi_vcpu_job_cancel(struct kvmi_vcpu_job *job)
{
	ks_job_done(job->cmd.srv, job->cmd.vcpu, job->cmd.rctx.session);
	free(job);
}

static int queue_job(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_vcpu_job *job;
	int err;

	job = malloc(sizeof(*job) + cmd->req_size);
	if (!job)
		return -KVM_ENOMEM;
	job->cmd = *cmd;
	job->size = cmd->req_size;
	memcpy(job->req, cmd->req, cmd->req_size);
	job->cmd.req = job->req;

	kvmi_mutex_lock(&srv->lock);
	srv->vcpus[cmd->vcpu].jobs++;
	kvmi_mutex_unlock(&srv->lock);

	if (!srv->ops->queue_vcpu_job) {
		kvmi_vcpu_job_run(job);
		return 0;
	}
	err = srv->ops->queue_vcpu_job(srv->b, cmd->vcpu, job);
	if (err) {
		kvmi_vcpu_job_cancel(job);
		return err;
	}
	return 0;
}

/* ---- dispatch ------------------------------------------------------- */

/* Answer err to a command that failed its checks or its handler. */
static int fail(struct kvmi_cmd *cmd, int err)
{
	int ret = ks_reply(cmd->srv, &cmd->rctx, kvmi_srv_errno_to_wire(err), NULL, 0);

	if (cmd->close_after)
		return KVMI_CLOSE;
	return ret;
}

/* Unknown, disallowed or unsupported: with replies off the kernel closes
 * the connection for commands it cannot run at all, and so do we. */
static int refuse(struct kvmi_cmd *cmd, int err)
{
	if (!cmd->rctx.enabled && !cmd->rctx.error_event) {
		ks_log(cmd->srv, KVMI_SRV_LOG_WARN,
			 "command %u refused (%d) while replies are off; closing",
			 cmd->rctx.id, err);
		return KVMI_CLOSE;
	}
	return fail(cmd, err);
}

/* vCPU-scoped: the header picks the vCPU, the request follows it.
 * 0, -KVM_EINVAL or KVMI_CLOSE. */
static int take_vcpu_hdr(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	const struct kvmi_vcpu_hdr *vh = cmd->req;

	if (cmd->req_size < sizeof(*vh))
		return -KVM_EINVAL;
	if (vh->padding1 || vh->padding2) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "non-zero vCPU header padding; closing");
		return KVMI_CLOSE;
	}
	if (vh->vcpu >= srv->cfg.max_vcpus || vh->vcpu >= srv->ops->vcpu_count(srv->b))
		return -KVM_EINVAL;
	cmd->vcpu = vh->vcpu;
	cmd->req = vh + 1;
	cmd->req_size -= sizeof(*vh);
	return 0;
}

/* May this command run at all? 0, the error to refuse it with (unknown,
 * disallowed, unsupported), or KVMI_CLOSE when it needs a reply while
 * replies are off. */
static int admit(struct kvmi_cmd *cmd, const struct kvmi_proto_cmd *meta)
{
	struct kvmi_server *srv = cmd->srv;
	unsigned id = cmd->rctx.id;
	int err;

	if (!cmd->desc || !meta) {
		ks_log(srv, KVMI_SRV_LOG_DEBUG, "unknown command id %u", id);
		return -KVM_ENOSYS;
	}
	if (!kvmi_policy_request_allowed(&srv->policy, id, cmd->req, cmd->req_size))
		return -KVM_EPERM;
	err = ks_cmd_supported(srv, id);
	if (err)
		return err;
	if (!cmd->rctx.enabled && kvmi_proto_reply_has_data(meta)) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "%s needs a reply but replies are off; closing",
		       meta->name);
		return KVMI_CLOSE;
	}
	return 0;
}

int ks_dispatch(struct kvmi_server *srv, const struct kvmi_msg_hdr *hdr, const uint8_t *payload)
{
	struct kvmi_cmd cmd = {
		.srv = srv,
		.desc = ks_cmd_lookup(hdr->id),
		.req = payload,
		.req_size = hdr->size,
		.rctx = {
			.id = hdr->id,
			.seq = hdr->seq,
			.session = srv->session,
			.enabled = srv->replies_enabled,
			.error_event = !srv->replies_enabled && srv->error_events,
		},
	};
	const struct kvmi_proto_cmd *meta = kvmi_proto_command(hdr->id);
	int err;

	if (hdr->id == KVMI_EVENT_REPLY)
		return ks_handle_event_reply(srv, hdr, payload);
	if (hdr->id == KVMI_EVENT) {
		/* Only the VMM sends events.  Any answer would carry id 1 and
		 * read as an event on the tool's side: the tool and the VMM are
		 * out of step, as after a framing lie. */
		ks_log(srv, KVMI_SRV_LOG_WARN, "the tool sent a message with the event id (1); closing");
		return KVMI_CLOSE;
	}
	err = admit(&cmd, meta);
	if (err)
		return err == KVMI_CLOSE ? KVMI_CLOSE : refuse(&cmd, err);
	if (meta->scope == KVMI_PROTO_VCPU) {
		err = take_vcpu_hdr(&cmd);
		if (err)
			return err == KVMI_CLOSE ? KVMI_CLOSE : fail(&cmd, err);
	}
	if (!(meta->flags & KVMI_PROTO_VAR_REQ) && cmd.req_size != meta->req_size)
		return fail(&cmd, -KVM_EINVAL);
	if (cmd.desc->validate) {
		err = cmd.desc->validate(&cmd);
		if (err)
			return err == KVMI_CLOSE ? KVMI_CLOSE : fail(&cmd, err);
	}
	if (meta->scope == KVMI_PROTO_VCPU && !(cmd.desc->flags & KVMI_CMD_ON_INTRO)) {
		err = queue_job(&cmd);
		return err ? fail(&cmd, err) : 0;
	}
	err = cmd.desc->handle(&cmd);
	if (err)
		return err == KVMI_CLOSE ? KVMI_CLOSE : fail(&cmd, err);
	return cmd.close_after ? KVMI_CLOSE : 0;
}
