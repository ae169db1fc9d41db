/* SPDX-License-Identifier: MIT */
/*
 * cmd_ept.c - the hardware-feature family of the dialect: SPP (sub-page
 * write permissions), #VE, EPT views, SVE and gfn remapping, plus the
 * libkvmi-only gfn/physical queries. Stock KVM exposes none of the
 * hardware behind them, so a VMM backend normally leaves these ops NULL
 * and they answer -KVM_ENOSYS; the decoding is here so that a backend that
 * can emulate them gets validated requests.
 */
#include "commands.h"

#define B(cmd) ((cmd)->srv->b)
#define OPS(cmd) ((cmd)->srv->ops)

static int reply(struct kvmi_cmd *cmd, const void *data, size_t len)
{
	return ks_reply(cmd->srv, &cmd->rctx, 0, data, len);
}

/* ---- VM-scoped ------------------------------------------------------ */

int ks_v_control_spp(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_spp *req = cmd->req;

	if (req->padding1 || req->padding2 || req->padding3 || req->enable > 1)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_control_spp(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_spp *req = cmd->req;
	int err = OPS(cmd)->control_spp(B(cmd), req->enable);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_v_set_page_write_bitmap(struct kvmi_cmd *cmd)
{
	const struct kvmi_set_page_write_bitmap *req = cmd->req;
	const struct kvmi_page_write_bitmap_entry *e = (const void *)(req + 1);
	unsigned i;

	if (cmd->req_size < sizeof(*req) || req->padding)
		return -KVM_EINVAL;
	if (cmd->req_size != sizeof(*req) + (size_t)req->count * sizeof(*e))
		return -KVM_EINVAL;
	/* The kernel calls the first field padding1, libkvmi sends a view. */
	if (req->view >= KVMI_MAX_EPT_VIEWS)
		return -KVM_EINVAL;
	for (i = 0; i < req->count; i++)
		if (e[i].padding)
			return -KVM_EINVAL;
	return 0;
}

int ks_h_set_page_write_bitmap(struct kvmi_cmd *cmd)
{
	const struct kvmi_set_page_write_bitmap *req = cmd->req;
	int err = 0;

	if (req->count)
		err = OPS(cmd)->set_page_write_bitmap(B(cmd), req->view, (const void *)(req + 1),
						      req->count);
	return err ? err : reply(cmd, NULL, 0);
}

int ks_v_set_page_sve(struct kvmi_cmd *cmd)
{
	const struct kvmi_set_page_sve *req = cmd->req;

	if (req->padding1 || req->padding2 || req->suppress > 1 || req->view >= KVMI_MAX_EPT_VIEWS)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_set_page_sve(struct kvmi_cmd *cmd)
{
	const struct kvmi_set_page_sve *req = cmd->req;
	int err = OPS(cmd)->set_page_sve(B(cmd), req->view, req->gpa, req->suppress);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_h_get_next_available_gfn(struct kvmi_cmd *cmd)
{
	struct kvmi_get_next_available_gfn_reply rpl = { 0 };
	int err = OPS(cmd)->get_next_available_gfn(B(cmd), &rpl.gfn);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

int ks_h_query_physical(struct kvmi_cmd *cmd)
{
	const struct kvmi_query_physical *req = cmd->req;
	struct kvmi_query_physical_reply rpl = { 0 };
	int err = OPS(cmd)->query_physical(B(cmd), req->gfn, &rpl);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

int ks_h_create_ept_view(struct kvmi_cmd *cmd)
{
	struct kvmi_create_ept_view_reply rpl = { 0 };
	int err = OPS(cmd)->create_ept_view(B(cmd), &rpl.view);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

/* DESTROY_EPT_VIEW: {view; padding}. No kernel defines a view limit for
 * the libkvmi-only view commands, so only the padding is checked. */
int ks_v_view_only(struct kvmi_cmd *cmd)
{
	const struct kvmi_destroy_ept_view *req = cmd->req;

	return req->padding1 || req->padding2 ? -KVM_EINVAL : 0;
}

int ks_h_destroy_ept_view(struct kvmi_cmd *cmd)
{
	const struct kvmi_destroy_ept_view *req = cmd->req;
	int err = OPS(cmd)->destroy_ept_view(B(cmd), req->view);

	return err ? err : reply(cmd, NULL, 0);
}

/* ---- vCPU-scoped ---------------------------------------------------- */

int ks_v_set_ve_info_page(struct kvmi_cmd *cmd)
{
	const struct kvmi_set_ve_info_page *req = cmd->req;

	if (req->padding1 || req->padding2 || req->padding3 || req->trigger_vmexit > 1)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_set_ve_info_page(struct kvmi_cmd *cmd)
{
	const struct kvmi_set_ve_info_page *req = cmd->req;
	int err = OPS(cmd)->set_ve_info_page(B(cmd), cmd->vcpu, req->gpa, req->trigger_vmexit);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_h_disable_ve(struct kvmi_cmd *cmd)
{
	int err = OPS(cmd)->disable_ve(B(cmd), cmd->vcpu);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_v_switch_ept_view(struct kvmi_cmd *cmd)
{
	const struct kvmi_switch_ept_view *req = cmd->req;

	if (req->padding1 || req->padding2 || req->view >= KVMI_MAX_EPT_VIEWS)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_switch_ept_view(struct kvmi_cmd *cmd)
{
	const struct kvmi_switch_ept_view *req = cmd->req;
	int err = OPS(cmd)->switch_ept_view(B(cmd), cmd->vcpu, req->view);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_h_get_ept_view(struct kvmi_cmd *cmd)
{
	struct kvmi_get_ept_view_reply rpl = { 0 };
	int err = OPS(cmd)->get_ept_view(B(cmd), cmd->vcpu, &rpl.view);

	return err ? err : reply(cmd, &rpl, sizeof(rpl));
}

int ks_v_control_ept_view(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_ept_view *req = cmd->req;

	if (req->padding1 || req->padding2 || req->visible > 1 || req->view >= KVMI_MAX_EPT_VIEWS)
		return -KVM_EINVAL;
	return 0;
}

int ks_h_control_ept_view(struct kvmi_cmd *cmd)
{
	const struct kvmi_control_ept_view *req = cmd->req;
	int err = OPS(cmd)->control_ept_view(B(cmd), cmd->vcpu, req->view, req->visible);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_h_alloc_gfn(struct kvmi_cmd *cmd)
{
	const struct kvmi_alloc_gfn *req = cmd->req;
	int err = OPS(cmd)->alloc_gfn(B(cmd), cmd->vcpu, req->gfn);

	return err ? err : reply(cmd, NULL, 0);
}

int ks_h_free_gfn(struct kvmi_cmd *cmd)
{
	const struct kvmi_free_gfn *req = cmd->req;
	int err = OPS(cmd)->free_gfn(B(cmd), cmd->vcpu, req->gfn);

	return err ? err : reply(cmd, NULL, 0);
}

/* libkvmi master sends {view, padding, old, new} (24 B); the K7 kernel and
 * libkvmi <= 1.1 send {old, new} (16 B) for view 0. Both are accepted. */
int ks_v_change_gfn(struct kvmi_cmd *cmd)
{
	if (cmd->req_size == sizeof(struct kvmi_change_gfn)) {
		const struct kvmi_change_gfn *req = cmd->req;

		if (req->padding1 || req->padding2 || req->view >= KVMI_MAX_EPT_VIEWS)
			return -KVM_EINVAL;
		return 0;
	}
	return cmd->req_size == sizeof(struct kvmi_change_gfn_v1) ? 0 : -KVM_EINVAL;
}

int ks_h_change_gfn(struct kvmi_cmd *cmd)
{
	uint64_t old_gfn, new_gfn;
	uint16_t view = 0;
	int err;

	if (cmd->req_size == sizeof(struct kvmi_change_gfn)) {
		const struct kvmi_change_gfn *req = cmd->req;

		view = req->view;
		old_gfn = req->old_gfn;
		new_gfn = req->new_gfn;
	} else {
		const struct kvmi_change_gfn_v1 *req = cmd->req;

		old_gfn = req->old_gfn;
		new_gfn = req->new_gfn;
	}
	/* ~0 is reserved (K7 doc). */
	if (new_gfn == ~(uint64_t)0)
		return -KVM_EPERM;
	err = OPS(cmd)->change_gfn(B(cmd), cmd->vcpu, view, old_gfn, new_gfn);
	return err ? err : reply(cmd, NULL, 0);
}
