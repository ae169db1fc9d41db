/* SPDX-License-Identifier: MIT */
/*
 * table.c - the one table of commands and the one table of events: for
 * every id its names (libkvmi's, the client's short one, the kvmi-v7
 * kernel's alias), scope, and the sizes of its request and reply (events:
 * of the specific part and of the reply's specific part). The server
 * checks requests against it, the client decodes events with it, and logs,
 * the policy parser and the CLI name ids with it.
 */
#include "kvmi-proto.h"

#include <string.h>
#include <strings.h>

#define VM   .scope = KVMI_PROTO_VM
#define VCPU .scope = KVMI_PROTO_VCPU
#define REQ(type)   .req_size = sizeof(struct type)
#define REPLY(type) .reply_size = sizeof(struct type)
#define ALIAS(name) .alias = name
#define WMEM  KVMI_PROTO_WRITES_MEM
#define WREGS KVMI_PROTO_WRITES_REGS

/* pfx is "KVMI_" or "KVMI_VCPU_": the client's short name drops it. */
#define ENTRY(pfx, x, ...) { .id = pfx##x, .name = #pfx #x, .short_name = #x, __VA_ARGS__ }
#define CMD(pfx, x, ...) [pfx##x] = ENTRY(pfx, x, __VA_ARGS__)

static const struct kvmi_proto_cmd commands[KVMI_NUM_MESSAGES] = {
	CMD(KVMI_, EVENT_REPLY, VCPU, REQ(kvmi_event_reply),
	    .flags = KVMI_PROTO_VAR_REQ | KVMI_PROTO_NO_REPLY),
	CMD(KVMI_, EVENT, VM, REQ(kvmi_event), .flags = KVMI_PROTO_VAR_REQ | KVMI_PROTO_NO_REPLY),
	CMD(KVMI_, GET_VERSION, VM, REPLY(kvmi_get_version_reply)),
	CMD(KVMI_, CHECK_COMMAND, VM, REQ(kvmi_check_command), ALIAS("KVMI_VM_CHECK_COMMAND")),
	CMD(KVMI_, CHECK_EVENT, VM, REQ(kvmi_check_event), ALIAS("KVMI_VM_CHECK_EVENT")),
	CMD(KVMI_, GET_GUEST_INFO, VM, REPLY(kvmi_get_guest_info_reply),
	    ALIAS("KVMI_VM_GET_INFO")),
	CMD(KVMI_, GET_VCPU_INFO, VCPU, REPLY(kvmi_get_vcpu_info_reply),
	    ALIAS("KVMI_VCPU_GET_INFO")),
	CMD(KVMI_, PAUSE_VCPU, VCPU, REQ(kvmi_pause_vcpu), ALIAS("KVMI_VCPU_PAUSE")),
	CMD(KVMI_, CONTROL_VM_EVENTS, VM, REQ(kvmi_control_vm_events),
	    ALIAS("KVMI_VM_CONTROL_EVENTS")),
	CMD(KVMI_, CONTROL_EVENTS, VCPU, REQ(kvmi_control_events),
	    ALIAS("KVMI_VCPU_CONTROL_EVENTS")),
	CMD(KVMI_, CONTROL_CR, VCPU, REQ(kvmi_control_cr), ALIAS("KVMI_VCPU_CONTROL_CR")),
	CMD(KVMI_, CONTROL_MSR, VCPU, REQ(kvmi_control_msr), ALIAS("KVMI_VCPU_CONTROL_MSR")),
	CMD(KVMI_, CONTROL_VE, VCPU, .flags = KVMI_PROTO_RESERVED),
	/* + one u32 MSR index per MSR; reply + one kvmi_x86_msr_entry each */
	CMD(KVMI_, GET_REGISTERS, VCPU, REQ(kvmi_get_registers), REPLY(kvmi_get_registers_reply),
	    .flags = KVMI_PROTO_VAR_REQ | KVMI_PROTO_VAR_REPLY, ALIAS("KVMI_VCPU_GET_REGISTERS")),
	CMD(KVMI_, SET_REGISTERS, VCPU, REQ(kvmi_x86_regs), .flags = WREGS,
	    ALIAS("KVMI_VCPU_SET_REGISTERS")),
	CMD(KVMI_, GET_CPUID, VCPU, REQ(kvmi_get_cpuid), REPLY(kvmi_get_cpuid_reply),
	    ALIAS("KVMI_VCPU_GET_CPUID")),
	CMD(KVMI_, GET_XSAVE, VCPU, .reply_size = KVMI_XSAVE_SIZE, ALIAS("KVMI_VCPU_GET_XSAVE")),
	/* the reply is the data read */
	CMD(KVMI_, READ_PHYSICAL, VM, REQ(kvmi_read_physical), .flags = KVMI_PROTO_VAR_REPLY,
	    ALIAS("KVMI_VM_READ_PHYSICAL")),
	/* + the data to write */
	CMD(KVMI_, WRITE_PHYSICAL, VM, REQ(kvmi_write_physical), .flags = KVMI_PROTO_VAR_REQ | WMEM,
	    ALIAS("KVMI_VM_WRITE_PHYSICAL")),
	CMD(KVMI_, INJECT_EXCEPTION, VCPU, REQ(kvmi_inject_exception),
	    ALIAS("KVMI_VCPU_INJECT_EXCEPTION")),
	CMD(KVMI_, GET_PAGE_ACCESS, VM, .flags = KVMI_PROTO_RESERVED),
	/* + count kvmi_page_access_entry */
	CMD(KVMI_, SET_PAGE_ACCESS, VM, REQ(kvmi_set_page_access), .flags = KVMI_PROTO_VAR_REQ,
	    ALIAS("KVMI_VM_SET_PAGE_ACCESS")),
	CMD(KVMI_, GET_MAP_TOKEN, VM, REPLY(kvmi_get_map_token_reply),
	    ALIAS("KVMI_VM_GET_MAP_TOKEN")),
	CMD(KVMI_, GET_MTRR_TYPE, VCPU, REQ(kvmi_get_mtrr_type), REPLY(kvmi_get_mtrr_type_reply),
	    ALIAS("KVMI_VCPU_GET_MTRR_TYPE")),
	CMD(KVMI_, CONTROL_SPP, VM, REQ(kvmi_control_spp), ALIAS("KVMI_VM_CONTROL_SPP")),
	CMD(KVMI_, GET_PAGE_WRITE_BITMAP, VM, .flags = KVMI_PROTO_RESERVED),
	/* + count kvmi_page_write_bitmap_entry */
	CMD(KVMI_, SET_PAGE_WRITE_BITMAP, VM, REQ(kvmi_set_page_write_bitmap),
	    .flags = KVMI_PROTO_VAR_REQ, ALIAS("KVMI_VM_SET_PAGE_WRITE_BITMAP")),
	CMD(KVMI_, CONTROL_CMD_RESPONSE, VM, REQ(kvmi_control_cmd_response),
	    ALIAS("KVMI_VM_CONTROL_CMD_RESPONSE")),
	/* the processor writes #VE information to the page the tool names */
	CMD(KVMI_, SET_VE_INFO_PAGE, VCPU, REQ(kvmi_set_ve_info_page), .flags = WMEM,
	    ALIAS("KVMI_VCPU_SET_VE_INFO")),
	CMD(KVMI_, GET_MAX_GFN, VM, REPLY(kvmi_get_max_gfn_reply), ALIAS("KVMI_VM_GET_MAX_GFN")),
	CMD(KVMI_, SET_PAGE_SVE, VM, REQ(kvmi_set_page_sve), ALIAS("KVMI_VM_SET_PAGE_SVE")),
	CMD(KVMI_, GET_NEXT_AVAILABLE_GFN, VM, REPLY(kvmi_get_next_available_gfn_reply)),
	CMD(KVMI_, SWITCH_EPT_VIEW, VCPU, REQ(kvmi_switch_ept_view),
	    ALIAS("KVMI_VCPU_SET_EPT_VIEW")),
	CMD(KVMI_, DISABLE_VE, VCPU, ALIAS("KVMI_VCPU_DISABLE_VE")),
	CMD(KVMI_, GET_EPT_VIEW, VCPU, REPLY(kvmi_get_ept_view_reply),
	    ALIAS("KVMI_VCPU_GET_EPT_VIEW")),
	CMD(KVMI_VCPU_, TRANSLATE_GVA, VCPU, REQ(kvmi_translate_gva),
	    REPLY(kvmi_translate_gva_reply)),
	CMD(KVMI_, CONTROL_EPT_VIEW, VCPU, REQ(kvmi_control_ept_view),
	    ALIAS("KVMI_VCPU_CONTROL_EPT_VIEW")),
	CMD(KVMI_VCPU_, GET_XCR, VCPU, REQ(kvmi_get_xcr), REPLY(kvmi_get_xcr_reply)),
	/* the XSAVE area itself, up to KVMI_XSAVE_SIZE: FPU, SSE, AVX registers */
	CMD(KVMI_VCPU_, SET_XSAVE, VCPU, .flags = KVMI_PROTO_VAR_REQ | WREGS),
	CMD(KVMI_, QUERY_PHYSICAL, VM, REQ(kvmi_query_physical), REPLY(kvmi_query_physical_reply)),
	CMD(KVMI_VCPU_, ALLOC_GFN, VCPU, REQ(kvmi_alloc_gfn)),
	CMD(KVMI_VCPU_, FREE_GFN, VCPU, REQ(kvmi_free_gfn)),
	CMD(KVMI_, CREATE_EPT_VIEW, VM, REPLY(kvmi_create_ept_view_reply)),
	CMD(KVMI_, DESTROY_EPT_VIEW, VM, REQ(kvmi_destroy_ept_view)),
	/* the kvmi-v7 kernel's 16 bytes, or libkvmi master's 24 with a view;
	 * the guest then sees another page's contents at the gfn */
	CMD(KVMI_VCPU_, CHANGE_GFN, VCPU, REQ(kvmi_change_gfn_v1), .flags = KVMI_PROTO_VAR_REQ | WMEM),
	CMD(KVMI_VCPU_, CONTROL_SINGLESTEP, VCPU, REQ(kvmi_control_singlestep)),
};

/* kvmi extensions: ids outside the KVMI range (kvmi-wire.h). */
static const struct kvmi_proto_cmd x_commands[] = {
	/* the reply also carries a descriptor (SCM_RIGHTS); writable unless
	 * the request asks for KVMI_X_MAP_READONLY */
	ENTRY(KVMI_, X_MAP_MEMORY, VM, REQ(kvmi_x_map_memory), REPLY(kvmi_x_map_memory_reply),
	      .flags = WMEM),
};

#define EV(x, ...) [KVMI_EVENT_##x] = { \
	.id = KVMI_EVENT_##x, .name = "KVMI_EVENT_" #x, .short_name = #x, __VA_ARGS__ }
#define DATA(type)     .data_size = sizeof(struct type)
#define EV_REPLY(type) .reply_size = sizeof(struct type)
#define ON_VM   KVMI_PROTO_EV_VM
#define ON_VCPU KVMI_PROTO_EV_VCPU

static const struct kvmi_proto_event events[KVMI_NUM_EVENTS] = {
	EV(UNHOOK, .flags = ON_VM | KVMI_PROTO_EV_NO_REPLY),
	EV(CR, .flags = ON_VCPU, DATA(kvmi_event_cr), EV_REPLY(kvmi_event_cr_reply)),
	EV(MSR, .flags = ON_VCPU, DATA(kvmi_event_msr), EV_REPLY(kvmi_event_msr_reply)),
	EV(XSETBV, .flags = ON_VCPU),
	EV(BREAKPOINT, .flags = ON_VCPU, DATA(kvmi_event_breakpoint)),
	EV(HYPERCALL, .flags = ON_VCPU),
	EV(PF, .flags = ON_VCPU, DATA(kvmi_event_pf), EV_REPLY(kvmi_event_pf_reply)),
	EV(TRAP, .flags = ON_VCPU, DATA(kvmi_event_trap)),
	EV(DESCRIPTOR, .flags = ON_VCPU, DATA(kvmi_event_descriptor)),
	/* raised by a vCPU, but switched on for the whole VM */
	EV(CREATE_VCPU, .flags = ON_VM),
	EV(PAUSE_VCPU, .flags = ON_VCPU),
	EV(SINGLESTEP, .flags = ON_VCPU, DATA(kvmi_event_singlestep)),
	/* the kernel lists it with both kinds */
	EV(CMD_ERROR, .flags = ON_VM | ON_VCPU | KVMI_PROTO_EV_NO_REPLY, DATA(kvmi_event_cmd_error)),
	EV(CPUID, .flags = ON_VCPU, DATA(kvmi_event_cpuid)),
};

const struct kvmi_proto_cmd *kvmi_proto_command(unsigned id)
{
	if (id < KVMI_NUM_MESSAGES)
		return commands[id].name ? &commands[id] : NULL;
	for (size_t i = 0; i < sizeof(x_commands) / sizeof(x_commands[0]); i++)
		if (x_commands[i].id == id)
			return &x_commands[i];
	return NULL;
}

const struct kvmi_proto_event *kvmi_proto_event(unsigned id)
{
	return id < KVMI_NUM_EVENTS ? &events[id] : NULL;
}

const char *kvmi_proto_command_name(unsigned id)
{
	const struct kvmi_proto_cmd *c = kvmi_proto_command(id);

	return c ? c->name : NULL;
}

const char *kvmi_proto_command_short_name(unsigned id)
{
	const struct kvmi_proto_cmd *c = kvmi_proto_command(id);

	return c ? c->short_name : NULL;
}

const char *kvmi_proto_event_name(unsigned id)
{
	return id < KVMI_NUM_EVENTS ? events[id].name : NULL;
}

const char *kvmi_proto_event_short_name(unsigned id)
{
	return id < KVMI_NUM_EVENTS ? events[id].short_name : NULL;
}

size_t kvmi_proto_event_data_size(unsigned id)
{
	return id < KVMI_NUM_EVENTS ? events[id].data_size : 0;
}

size_t kvmi_proto_event_reply_size(unsigned id)
{
	return id < KVMI_NUM_EVENTS ? events[id].reply_size : 0;
}

bool kvmi_proto_reply_has_data(const struct kvmi_proto_cmd *c)
{
	return c->reply_size || (c->flags & KVMI_PROTO_VAR_REPLY);
}

unsigned kvmi_proto_command_writes(const struct kvmi_proto_cmd *c, const void *req, size_t len)
{
	unsigned writes = c->flags & (KVMI_PROTO_WRITES_MEM | KVMI_PROTO_WRITES_REGS);
	struct kvmi_x_map_memory map;

	if (c->id != KVMI_X_MAP_MEMORY)
		return writes;
	if (!req)
		return 0;
	if (len < sizeof(map))
		return writes;
	memcpy(&map, req, sizeof(map));
	return map.flags & KVMI_X_MAP_READONLY ? 0 : writes;
}

bool kvmi_proto_event_needs_reply(unsigned id)
{
	return id >= KVMI_NUM_EVENTS || !(events[id].flags & KVMI_PROTO_EV_NO_REPLY);
}

/* ---- names as people write them ------------------------------------- */

static const char *skip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);

	return strncasecmp(s, prefix, n) ? s : s + n;
}

static bool same_word(const char *word, const char *name, const char *prefix)
{
	return name && !strcasecmp(word, skip_prefix(name, prefix));
}

int kvmi_proto_command_by_name(const char *word)
{
	word = skip_prefix(word, "KVMI_");
	for (unsigned id = 0; id < KVMI_NUM_MESSAGES; id++) {
		const struct kvmi_proto_cmd *c = &commands[id];

		if (same_word(word, c->name, "KVMI_") || same_word(word, c->short_name, "") ||
		    same_word(word, c->alias, "KVMI_"))
			return (int)id;
	}
	return -1;
}

int kvmi_proto_event_by_name(const char *word)
{
	word = skip_prefix(skip_prefix(word, "KVMI_"), "EVENT_");
	if (!strcasecmp(word, "page_fault"))
		return KVMI_EVENT_PF;
	for (unsigned id = 0; id < KVMI_NUM_EVENTS; id++)
		if (same_word(word, events[id].short_name, ""))
			return (int)id;
	return -1;
}
