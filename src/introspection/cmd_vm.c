/* SPDX-License-Identifier: MIT */
/*
 * cmd_vm.c - VM-scoped commands, run on the introspection thread:
 * GET_GUEST_INFO, CONTROL_VM_EVENTS, READ/WRITE_PHYSICAL, SET_PAGE_ACCESS,
 * GET_MAP_TOKEN, GET_MAX_GFN, and the kvmi extension KVMI_X_MAP_MEMORY
 * that redeems a map token for the guest-RAM file descriptor.
 */
#include "commands.h"

#include <stdlib.h>
#include <unistd.h>

int ks_h_get_guest_info(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_get_guest_info_reply rpl = {
		.vcpu_count = srv->ops->vcpu_count(srv->b),
	};

	return ks_reply(srv, &cmd->rctx, 0, &rpl, sizeof(rpl));
}

int ks_v_control_vm_events(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_vm_events *req = cmd->req;

	if (req->padding1 || req->padding2 || req->enable > 1)
		return -KVM_EINVAL;
	if (req->event_id >= KVMI_NUM_EVENTS || !ks_is_vm_event(req->event_id))
		return -KVM_EINVAL;
	return 0;
}

int ks_h_control_vm_events(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_vm_events *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;
	uint64_t bit = 1ull << req->event_id;
	int err;

	if (!kvmi_policy_event_allowed(&srv->policy, req->event_id))
		return -KVM_EPERM;
	if (req->enable) {
		err = ks_event_supported(srv, req->event_id);
		if (err)
			return err;
	}
	/* The bit first: the backend may wake vCPUs that then look at it
	 * (CREATE_VCPU releases vCPUs held for the tool). */
	if (req->enable)
		err = !!(atomic_fetch_or(&srv->vm_events, bit) & bit);
	else
		err = !!(atomic_fetch_and(&srv->vm_events, ~bit) & bit);
	if (srv->ops->control_vm_events) {
		bool was = err;

		err = srv->ops->control_vm_events(srv->b, req->event_id, req->enable);
		if (err) {
			if (was)
				atomic_fetch_or(&srv->vm_events, bit);
			else
				atomic_fetch_and(&srv->vm_events, ~bit);
			return err;
		}
	}
	return ks_reply(srv, &cmd->rctx, 0, NULL, 0);
}

static bool bad_range(uint64_t gpa, uint64_t size)
{
	return size == 0 || size > KVMI_PAGE_SIZE ||
	       (gpa & (KVMI_PAGE_SIZE - 1)) + size > KVMI_PAGE_SIZE;
}

int ks_v_read_physical(struct kvmi_cmd *cmd)
{
	const struct kvmi_read_physical *req = cmd->req;

	return bad_range(req->gpa, req->size) ? -KVM_EINVAL : 0;
}

int ks_h_read_physical(struct kvmi_cmd *cmd)
{
	const struct kvmi_read_physical *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;
	uint8_t buf[KVMI_PAGE_SIZE];
	int err;

	err = srv->ops->read_physical(srv->b, req->gpa, buf, req->size);
	if (err)
		return err;
	return ks_reply(srv, &cmd->rctx, 0, buf, req->size);
}

int ks_v_write_physical(struct kvmi_cmd *cmd)
{
	const struct kvmi_write_physical *req = cmd->req;

	/* The data is not all there: the stream cannot be trusted. */
	if (cmd->req_size < sizeof(*req) || req->size > cmd->req_size - sizeof(*req)) {
		ks_log(cmd->srv, KVMI_SRV_LOG_WARN, "WRITE_PHYSICAL shorter than its data; closing");
		return KVMI_CLOSE;
	}
	if (bad_range(req->gpa, req->size))
		return -KVM_EINVAL;
	if (cmd->req_size != sizeof(*req) + req->size)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_write_physical(struct kvmi_cmd *cmd)
{
	const struct kvmi_write_physical *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;
	int err;

	err = srv->ops->write_physical(srv->b, req->gpa, req + 1, req->size);
	if (err)
		return err;
	return ks_reply(srv, &cmd->rctx, 0, NULL, 0);
}

int ks_v_set_page_access(struct kvmi_cmd *cmd)
{
	const struct kvmi_set_page_access *req = cmd->req;

	if (cmd->req_size < sizeof(*req) || req->padding)
		return -KVM_EINVAL;
	if (cmd->req_size != sizeof(*req) + (size_t)req->count * sizeof(struct kvmi_page_access_entry))
		return -KVM_EINVAL;
	if (req->view >= KVMI_MAX_EPT_VIEWS)
		return -KVM_EINVAL;
	return 0;
}

/*
 * Bad entries are skipped and the first error is returned; the good ones
 * are still applied (the tool handles rollback), as the kernel does.
 */
int ks_h_set_page_access(struct kvmi_cmd *cmd)
{
	const struct kvmi_set_page_access *req = cmd->req;
	const struct kvmi_page_access_entry *in = (const void *)(req + 1);
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_page_access_entry *ok;
	const uint8_t rwx = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X;
	unsigned i, n = 0;
	int first = 0, err;

	if (!req->count)
		return ks_reply(srv, &cmd->rctx, 0, NULL, 0);
	ok = calloc(req->count, sizeof(*ok));
	if (!ok)
		return -KVM_ENOMEM;
	for (i = 0; i < req->count; i++) {
		if ((in[i].access & ~rwx) || in[i].padding1 || in[i].padding2 || in[i].padding3) {
			if (!first)
				first = -KVM_EINVAL;
			continue;
		}
		ok[n++] = in[i];
	}
	err = n ? srv->ops->set_page_access(srv->b, req->view, ok, n) : 0;
	free(ok);
	if (!first)
		first = kvmi_srv_errno_to_wire(err);
	return ks_reply(srv, &cmd->rctx, first, NULL, 0);
}

int ks_h_get_map_token(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_get_map_token_reply rpl = { 0 };
	int err;

	err = srv->ops->get_map_token(srv->b, &rpl.token);
	if (err)
		return err;
	return ks_reply(srv, &cmd->rctx, 0, &rpl, sizeof(rpl));
}

int ks_h_get_max_gfn(struct kvmi_cmd *cmd)
{
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_get_max_gfn_reply rpl = { 0 };
	int err;

	err = srv->ops->get_max_gfn(srv->b, &rpl.gfn);
	if (err)
		return err;
	return ks_reply(srv, &cmd->rctx, 0, &rpl, sizeof(rpl));
}

int ks_v_x_map_memory(struct kvmi_cmd *cmd)
{
	const struct kvmi_x_map_memory *req = cmd->req;

	if (req->padding || (req->flags & ~KVMI_X_MAP_READONLY))
		return -KVM_EINVAL;
	if (!req->length || ((req->gpa | req->length) & (KVMI_PAGE_SIZE - 1)) ||
	    req->gpa + req->length < req->gpa)
		return -KVM_EINVAL;
	return 0;
}

/* Transport (AF_UNIX) and policy were checked by dispatch. */
int ks_h_x_map_memory(struct kvmi_cmd *cmd)
{
	const struct kvmi_x_map_memory *req = cmd->req;
	struct kvmi_server *srv = cmd->srv;
	struct kvmi_x_map_memory_reply rpl = { .length = req->length };
	int fd = -1, err;

	err = srv->ops->map_memory(srv->b, &req->token, req->gpa, req->length,
				   req->flags & KVMI_X_MAP_READONLY, &fd, &rpl.fd_offset);
	if (!err && fd < 0) {
		ks_log(srv, KVMI_SRV_LOG_ERROR, "map_memory gave no descriptor");
		err = -KVM_EINVAL;
	}
	if (err) {
		if (fd >= 0)
			close(fd);
		return err;
	}
	ks_log(srv, KVMI_SRV_LOG_DEBUG, "guest memory %#llx+%#llx mapped by the tool%s",
	       (unsigned long long)req->gpa, (unsigned long long)req->length,
	       req->flags & KVMI_X_MAP_READONLY ? " (read-only)" : "");
	err = ks_reply_fd(srv, &cmd->rctx, &rpl, sizeof(rpl), fd);
	close(fd);
	return err;
}
