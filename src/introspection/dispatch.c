/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - the command table: for every message id its scope, exact
 * request size, whether a successful reply carries data, the backend op it
 * needs, and its validate/handle functions. Also the "can this VMM do it"
 * answers that CHECK_COMMAND, CHECK_EVENT and dispatch share.
 */
#include "commands.h"

#include <string.h>

#define VM      KVMI_SCOPE_VM
#define VCPU    KVMI_SCOPE_VCPU
#define RECV    KVMI_SCOPE_VCPU_RECV
#define ALWAYS  KVMI_CMD_ALWAYS_ALLOWED
#define DATA    KVMI_CMD_REPLY_DATA
#define VAR     KVMI_CMD_VAR_SIZE

/* KVMI_EVENT_REPLY (0) is routed before the table; KVMI_EVENT (1) is
 * VMM->tool only. Ids without an entry answer -KVM_ENOSYS. */
static const struct kvmi_cmd_desc cmd_table[KVMI_NUM_MESSAGES] = {
	[KVMI_GET_VERSION] = {
		.scope = VM, .flags = ALWAYS | DATA, .size = 0,
		.handle = ks_h_get_version },
	[KVMI_CHECK_COMMAND] = {
		.scope = VM, .flags = ALWAYS, .size = sizeof(struct kvmi_check_command),
		.validate = ks_v_check_id, .handle = ks_h_check_command },
	[KVMI_CHECK_EVENT] = {
		.scope = VM, .flags = ALWAYS, .size = sizeof(struct kvmi_check_event),
		.validate = ks_v_check_id, .handle = ks_h_check_event },
	[KVMI_GET_GUEST_INFO] = {
		.scope = VM, .flags = DATA, .size = 0,
		.handle = ks_h_get_guest_info },
	[KVMI_GET_VCPU_INFO] = {
		.scope = VCPU, .flags = DATA, .size = 0, .op = KVMI_OP(get_tsc_speed),
		.handle = ks_h_get_vcpu_info },
	[KVMI_PAUSE_VCPU] = {
		.scope = RECV, .size = sizeof(struct kvmi_pause_vcpu), .op = KVMI_OP(pause_vcpu),
		.validate = ks_v_pause_vcpu, .handle = ks_h_pause_vcpu },
	[KVMI_CONTROL_VM_EVENTS] = {
		.scope = VM, .size = sizeof(struct kvmi_control_vm_events),
		.validate = ks_v_control_vm_events, .handle = ks_h_control_vm_events },
	[KVMI_CONTROL_EVENTS] = {
		.scope = VCPU, .size = sizeof(struct kvmi_control_events),
		.validate = ks_v_control_events, .handle = ks_h_control_events },
	[KVMI_CONTROL_CR] = {
		.scope = VCPU, .size = sizeof(struct kvmi_control_cr), .op = KVMI_OP(control_cr),
		.validate = ks_v_control_cr, .handle = ks_h_control_cr },
	[KVMI_CONTROL_MSR] = {
		.scope = VCPU, .size = sizeof(struct kvmi_control_msr), .op = KVMI_OP(control_msr),
		.validate = ks_v_control_msr, .handle = ks_h_control_msr },
	[KVMI_GET_REGISTERS] = {
		.scope = VCPU, .flags = DATA | VAR, .op = KVMI_OP(get_registers),
		.validate = ks_v_get_registers, .handle = ks_h_get_registers },
	[KVMI_SET_REGISTERS] = {
		.scope = RECV, .size = sizeof(struct kvmi_x86_regs), .op = KVMI_OP(set_registers),
		.handle = ks_h_set_registers },
	[KVMI_GET_CPUID] = {
		.scope = VCPU, .flags = DATA, .size = sizeof(struct kvmi_get_cpuid),
		.op = KVMI_OP(get_cpuid), .handle = ks_h_get_cpuid },
	[KVMI_GET_XSAVE] = {
		.scope = VCPU, .flags = DATA, .size = 0, .op = KVMI_OP(get_xsave),
		.handle = ks_h_get_xsave },
	[KVMI_READ_PHYSICAL] = {
		.scope = VM, .flags = DATA, .size = sizeof(struct kvmi_read_physical),
		.op = KVMI_OP(read_physical),
		.validate = ks_v_read_physical, .handle = ks_h_read_physical },
	[KVMI_WRITE_PHYSICAL] = {
		.scope = VM, .flags = VAR, .op = KVMI_OP(write_physical),
		.validate = ks_v_write_physical, .handle = ks_h_write_physical },
	[KVMI_INJECT_EXCEPTION] = {
		.scope = VCPU, .size = sizeof(struct kvmi_inject_exception),
		.op = KVMI_OP(inject_exception),
		.validate = ks_v_inject_exception, .handle = ks_h_inject_exception },
	[KVMI_SET_PAGE_ACCESS] = {
		.scope = VM, .flags = VAR, .op = KVMI_OP(set_page_access),
		.validate = ks_v_set_page_access, .handle = ks_h_set_page_access },
	[KVMI_GET_MAP_TOKEN] = {
		.scope = VM, .flags = DATA, .size = 0, .op = KVMI_OP(get_map_token),
		.handle = ks_h_get_map_token },
	[KVMI_GET_MTRR_TYPE] = {
		.scope = VCPU, .flags = DATA, .size = sizeof(struct kvmi_get_mtrr_type),
		.op = KVMI_OP(get_mtrr_type), .handle = ks_h_get_mtrr_type },
	[KVMI_CONTROL_SPP] = {
		.scope = VM, .size = sizeof(struct kvmi_control_spp), .op = KVMI_OP(control_spp),
		.validate = ks_v_control_spp, .handle = ks_h_control_spp },
	[KVMI_SET_PAGE_WRITE_BITMAP] = {
		.scope = VM, .flags = VAR, .op = KVMI_OP(set_page_write_bitmap),
		.validate = ks_v_set_page_write_bitmap, .handle = ks_h_set_page_write_bitmap },
	[KVMI_CONTROL_CMD_RESPONSE] = {
		.scope = VM, .size = sizeof(struct kvmi_control_cmd_response),
		.validate = ks_v_control_cmd_response, .handle = ks_h_control_cmd_response },
	[KVMI_SET_VE_INFO_PAGE] = {
		.scope = VCPU, .size = sizeof(struct kvmi_set_ve_info_page),
		.op = KVMI_OP(set_ve_info_page),
		.validate = ks_v_set_ve_info_page, .handle = ks_h_set_ve_info_page },
	[KVMI_GET_MAX_GFN] = {
		.scope = VM, .flags = DATA, .size = 0, .op = KVMI_OP(get_max_gfn),
		.handle = ks_h_get_max_gfn },
	[KVMI_SET_PAGE_SVE] = {
		.scope = VM, .size = sizeof(struct kvmi_set_page_sve), .op = KVMI_OP(set_page_sve),
		.validate = ks_v_set_page_sve, .handle = ks_h_set_page_sve },
	[KVMI_GET_NEXT_AVAILABLE_GFN] = {
		.scope = VM, .flags = DATA, .size = 0, .op = KVMI_OP(get_next_available_gfn),
		.handle = ks_h_get_next_available_gfn },
	[KVMI_SWITCH_EPT_VIEW] = {
		.scope = VCPU, .size = sizeof(struct kvmi_switch_ept_view),
		.op = KVMI_OP(switch_ept_view),
		.validate = ks_v_switch_ept_view, .handle = ks_h_switch_ept_view },
	[KVMI_DISABLE_VE] = {
		.scope = VCPU, .size = 0, .op = KVMI_OP(disable_ve),
		.handle = ks_h_disable_ve },
	[KVMI_GET_EPT_VIEW] = {
		.scope = VCPU, .flags = DATA, .size = 0, .op = KVMI_OP(get_ept_view),
		.handle = ks_h_get_ept_view },
	[KVMI_VCPU_TRANSLATE_GVA] = {
		.scope = VCPU, .flags = DATA, .size = sizeof(struct kvmi_translate_gva),
		.op = KVMI_OP(translate_gva), .handle = ks_h_translate_gva },
	[KVMI_CONTROL_EPT_VIEW] = {
		.scope = VCPU, .size = sizeof(struct kvmi_control_ept_view),
		.op = KVMI_OP(control_ept_view),
		.validate = ks_v_control_ept_view, .handle = ks_h_control_ept_view },
	[KVMI_VCPU_GET_XCR] = {
		.scope = VCPU, .flags = DATA, .size = sizeof(struct kvmi_get_xcr),
		.op = KVMI_OP(get_xcr),
		.validate = ks_v_get_xcr, .handle = ks_h_get_xcr },
	[KVMI_VCPU_SET_XSAVE] = {
		.scope = VCPU, .flags = VAR, .op = KVMI_OP(set_xsave),
		.validate = ks_v_set_xsave, .handle = ks_h_set_xsave },
	[KVMI_QUERY_PHYSICAL] = {
		.scope = VM, .flags = DATA, .size = sizeof(struct kvmi_query_physical),
		.op = KVMI_OP(query_physical), .handle = ks_h_query_physical },
	[KVMI_VCPU_ALLOC_GFN] = {
		.scope = VCPU, .size = sizeof(struct kvmi_alloc_gfn), .op = KVMI_OP(alloc_gfn),
		.handle = ks_h_alloc_gfn },
	[KVMI_VCPU_FREE_GFN] = {
		.scope = VCPU, .size = sizeof(struct kvmi_free_gfn), .op = KVMI_OP(free_gfn),
		.handle = ks_h_free_gfn },
	[KVMI_CREATE_EPT_VIEW] = {
		.scope = VM, .flags = DATA, .size = 0, .op = KVMI_OP(create_ept_view),
		.handle = ks_h_create_ept_view },
	[KVMI_DESTROY_EPT_VIEW] = {
		.scope = VM, .size = sizeof(struct kvmi_destroy_ept_view),
		.op = KVMI_OP(destroy_ept_view),
		.validate = ks_v_view_only, .handle = ks_h_destroy_ept_view },
	[KVMI_VCPU_CHANGE_GFN] = {
		.scope = VCPU, .flags = VAR, .op = KVMI_OP(change_gfn),
		.validate = ks_v_change_gfn, .handle = ks_h_change_gfn },
	[KVMI_VCPU_CONTROL_SINGLESTEP] = {
		.scope = VCPU, .size = sizeof(struct kvmi_control_singlestep),
		.op = KVMI_OP(control_singlestep),
		.validate = ks_v_control_singlestep, .handle = ks_h_control_singlestep },
};

/* kvmi extensions: ids outside the KVMI range (kvmi-wire.h). The
 * descriptor names map_memory; ks_cmd_supported() adds what else it needs. */
static const struct kvmi_cmd_desc x_map_memory_desc = {
	.scope = VM, .flags = DATA, .size = sizeof(struct kvmi_x_map_memory),
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
	return id < KVMI_NUM_MESSAGES || id == KVMI_X_MAP_MEMORY;
}

bool ks_is_vm_event(unsigned id)
{
	return id == KVMI_EVENT_UNHOOK || id == KVMI_EVENT_CREATE_VCPU ||
	       id == KVMI_EVENT_CMD_ERROR;
}

bool ks_is_vcpu_event(unsigned id)
{
	/* The kernel lists CMD_ERROR in both sets. */
	return id < KVMI_NUM_EVENTS && id != KVMI_EVENT_UNHOOK &&
	       id != KVMI_EVENT_CREATE_VCPU;
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
