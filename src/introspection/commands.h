/* SPDX-License-Identifier: MIT */
/*
 * commands.h - validate/handle functions of every command, grouped by the
 * file that implements them. The dispatch table (dispatch.c) is the only
 * user.
 */
#ifndef KVMI_INTROSPECTION_COMMANDS_H
#define KVMI_INTROSPECTION_COMMANDS_H

#include "internal.h"

/* cmd_core.c: always-there protocol commands */
int ks_h_get_version(struct kvmi_cmd *cmd);
int ks_v_check_id(struct kvmi_cmd *cmd);
int ks_h_check_command(struct kvmi_cmd *cmd);
int ks_h_check_event(struct kvmi_cmd *cmd);
int ks_v_control_cmd_response(struct kvmi_cmd *cmd);
int ks_h_control_cmd_response(struct kvmi_cmd *cmd);

/* cmd_vm.c: VM-scoped commands on the introspection thread */
int ks_h_get_guest_info(struct kvmi_cmd *cmd);
int ks_v_control_vm_events(struct kvmi_cmd *cmd);
int ks_h_control_vm_events(struct kvmi_cmd *cmd);
int ks_v_read_physical(struct kvmi_cmd *cmd);
int ks_h_read_physical(struct kvmi_cmd *cmd);
int ks_v_write_physical(struct kvmi_cmd *cmd);
int ks_h_write_physical(struct kvmi_cmd *cmd);
int ks_v_set_page_access(struct kvmi_cmd *cmd);
int ks_h_set_page_access(struct kvmi_cmd *cmd);
int ks_h_get_map_token(struct kvmi_cmd *cmd);
int ks_h_get_max_gfn(struct kvmi_cmd *cmd);
/* kvmi extension KVMI_X_MAP_MEMORY */
int ks_v_x_map_memory(struct kvmi_cmd *cmd);
int ks_h_x_map_memory(struct kvmi_cmd *cmd);

/* cmd_vcpu.c: vCPU-scoped commands (run on the vCPU thread) */
int ks_h_get_vcpu_info(struct kvmi_cmd *cmd);
int ks_v_control_events(struct kvmi_cmd *cmd);
int ks_h_control_events(struct kvmi_cmd *cmd);
int ks_v_control_cr(struct kvmi_cmd *cmd);
int ks_h_control_cr(struct kvmi_cmd *cmd);
int ks_v_control_msr(struct kvmi_cmd *cmd);
int ks_h_control_msr(struct kvmi_cmd *cmd);
int ks_v_get_registers(struct kvmi_cmd *cmd);
int ks_h_get_registers(struct kvmi_cmd *cmd);
int ks_h_set_registers(struct kvmi_cmd *cmd);      /* introspection thread */
int ks_h_get_cpuid(struct kvmi_cmd *cmd);
int ks_h_get_xsave(struct kvmi_cmd *cmd);
int ks_v_set_xsave(struct kvmi_cmd *cmd);
int ks_h_set_xsave(struct kvmi_cmd *cmd);
int ks_v_get_xcr(struct kvmi_cmd *cmd);
int ks_h_get_xcr(struct kvmi_cmd *cmd);
int ks_v_inject_exception(struct kvmi_cmd *cmd);
int ks_h_inject_exception(struct kvmi_cmd *cmd);
int ks_h_get_mtrr_type(struct kvmi_cmd *cmd);
int ks_h_translate_gva(struct kvmi_cmd *cmd);
int ks_v_control_singlestep(struct kvmi_cmd *cmd);
int ks_h_control_singlestep(struct kvmi_cmd *cmd);

/* pause.c: PAUSE_VCPU (introspection thread) */
int ks_v_pause_vcpu(struct kvmi_cmd *cmd);
int ks_h_pause_vcpu(struct kvmi_cmd *cmd);

/* cmd_ept.c: SPP, #VE, EPT views and gfn remapping (hardware features
 * stock KVM does not expose; present for completeness of the dialect) */
int ks_v_control_spp(struct kvmi_cmd *cmd);
int ks_h_control_spp(struct kvmi_cmd *cmd);
int ks_v_set_page_write_bitmap(struct kvmi_cmd *cmd);
int ks_h_set_page_write_bitmap(struct kvmi_cmd *cmd);
int ks_v_set_page_sve(struct kvmi_cmd *cmd);
int ks_h_set_page_sve(struct kvmi_cmd *cmd);
int ks_h_get_next_available_gfn(struct kvmi_cmd *cmd);
int ks_h_query_physical(struct kvmi_cmd *cmd);
int ks_h_create_ept_view(struct kvmi_cmd *cmd);
int ks_v_view_only(struct kvmi_cmd *cmd);
int ks_h_destroy_ept_view(struct kvmi_cmd *cmd);
int ks_v_set_ve_info_page(struct kvmi_cmd *cmd);
int ks_h_set_ve_info_page(struct kvmi_cmd *cmd);
int ks_h_disable_ve(struct kvmi_cmd *cmd);
int ks_v_switch_ept_view(struct kvmi_cmd *cmd);
int ks_h_switch_ept_view(struct kvmi_cmd *cmd);
int ks_h_get_ept_view(struct kvmi_cmd *cmd);
int ks_v_control_ept_view(struct kvmi_cmd *cmd);
int ks_h_control_ept_view(struct kvmi_cmd *cmd);
int ks_h_alloc_gfn(struct kvmi_cmd *cmd);
int ks_h_free_gfn(struct kvmi_cmd *cmd);
int ks_v_change_gfn(struct kvmi_cmd *cmd);
int ks_h_change_gfn(struct kvmi_cmd *cmd);

#endif
