/* Client library: names of ids and human-readable errors. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const command_names[KVMI_NUM_MESSAGES] = {
	[KVMI_EVENT_REPLY]             = "EVENT_REPLY",
	[KVMI_EVENT]                   = "EVENT",
	[KVMI_GET_VERSION]             = "GET_VERSION",
	[KVMI_CHECK_COMMAND]           = "CHECK_COMMAND",
	[KVMI_CHECK_EVENT]             = "CHECK_EVENT",
	[KVMI_GET_GUEST_INFO]          = "GET_GUEST_INFO",
	[KVMI_GET_VCPU_INFO]           = "GET_VCPU_INFO",
	[KVMI_PAUSE_VCPU]              = "PAUSE_VCPU",
	[KVMI_CONTROL_VM_EVENTS]       = "CONTROL_VM_EVENTS",
	[KVMI_CONTROL_EVENTS]          = "CONTROL_EVENTS",
	[KVMI_CONTROL_CR]              = "CONTROL_CR",
	[KVMI_CONTROL_MSR]             = "CONTROL_MSR",
	[KVMI_CONTROL_VE]              = "CONTROL_VE",
	[KVMI_GET_REGISTERS]           = "GET_REGISTERS",
	[KVMI_SET_REGISTERS]           = "SET_REGISTERS",
	[KVMI_GET_CPUID]               = "GET_CPUID",
	[KVMI_GET_XSAVE]               = "GET_XSAVE",
	[KVMI_READ_PHYSICAL]           = "READ_PHYSICAL",
	[KVMI_WRITE_PHYSICAL]          = "WRITE_PHYSICAL",
	[KVMI_INJECT_EXCEPTION]        = "INJECT_EXCEPTION",
	[KVMI_GET_PAGE_ACCESS]         = "GET_PAGE_ACCESS",
	[KVMI_SET_PAGE_ACCESS]         = "SET_PAGE_ACCESS",
	[KVMI_GET_MAP_TOKEN]           = "GET_MAP_TOKEN",
	[KVMI_GET_MTRR_TYPE]           = "GET_MTRR_TYPE",
	[KVMI_CONTROL_SPP]             = "CONTROL_SPP",
	[KVMI_GET_PAGE_WRITE_BITMAP]   = "GET_PAGE_WRITE_BITMAP",
	[KVMI_SET_PAGE_WRITE_BITMAP]   = "SET_PAGE_WRITE_BITMAP",
	[KVMI_CONTROL_CMD_RESPONSE]    = "CONTROL_CMD_RESPONSE",
	[KVMI_SET_VE_INFO_PAGE]        = "SET_VE_INFO_PAGE",
	[KVMI_GET_MAX_GFN]             = "GET_MAX_GFN",
	[KVMI_SET_PAGE_SVE]            = "SET_PAGE_SVE",
	[KVMI_GET_NEXT_AVAILABLE_GFN]  = "GET_NEXT_AVAILABLE_GFN",
	[KVMI_SWITCH_EPT_VIEW]         = "SWITCH_EPT_VIEW",
	[KVMI_DISABLE_VE]              = "DISABLE_VE",
	[KVMI_GET_EPT_VIEW]            = "GET_EPT_VIEW",
	[KVMI_VCPU_TRANSLATE_GVA]      = "TRANSLATE_GVA",
	[KVMI_CONTROL_EPT_VIEW]        = "CONTROL_EPT_VIEW",
	[KVMI_VCPU_GET_XCR]            = "GET_XCR",
	[KVMI_VCPU_SET_XSAVE]          = "SET_XSAVE",
	[KVMI_QUERY_PHYSICAL]          = "QUERY_PHYSICAL",
	[KVMI_VCPU_ALLOC_GFN]          = "ALLOC_GFN",
	[KVMI_VCPU_FREE_GFN]           = "FREE_GFN",
	[KVMI_CREATE_EPT_VIEW]         = "CREATE_EPT_VIEW",
	[KVMI_DESTROY_EPT_VIEW]        = "DESTROY_EPT_VIEW",
	[KVMI_VCPU_CHANGE_GFN]         = "CHANGE_GFN",
	[KVMI_VCPU_CONTROL_SINGLESTEP] = "CONTROL_SINGLESTEP",
};

static const char *const event_names[KVMI_NUM_EVENTS] = {
	[KVMI_EVENT_UNHOOK]      = "UNHOOK",
	[KVMI_EVENT_CR]          = "CR",
	[KVMI_EVENT_MSR]         = "MSR",
	[KVMI_EVENT_XSETBV]      = "XSETBV",
	[KVMI_EVENT_BREAKPOINT]  = "BREAKPOINT",
	[KVMI_EVENT_HYPERCALL]   = "HYPERCALL",
	[KVMI_EVENT_PF]          = "PF",
	[KVMI_EVENT_TRAP]        = "TRAP",
	[KVMI_EVENT_DESCRIPTOR]  = "DESCRIPTOR",
	[KVMI_EVENT_CREATE_VCPU] = "CREATE_VCPU",
	[KVMI_EVENT_PAUSE_VCPU]  = "PAUSE_VCPU",
	[KVMI_EVENT_SINGLESTEP]  = "SINGLESTEP",
	[KVMI_EVENT_CMD_ERROR]   = "CMD_ERROR",
	[KVMI_EVENT_CPUID]       = "CPUID",
};

const char *kvmi_command_name(uint16_t id)
{
	if (id == KVMI_X_MAP_MEMORY)
		return "X_MAP_MEMORY";
	return id < KVMI_NUM_MESSAGES ? command_names[id] : NULL;
}

const char *kvmi_event_name(uint16_t id)
{
	return id < KVMI_NUM_EVENTS ? event_names[id] : NULL;
}

const char *kvmi_strerror(int err)
{
	switch (-err) {
	case 0:            return "success";
	case EPERM:        return "not allowed by the VMM's introspection policy";
	case ENOSYS:       return "not implemented by this VMM";
	case EOPNOTSUPP:   return "not supported on this host";
	case EINVAL:       return "invalid argument";
	case ENOENT:       return "no such page, leaf or entry";
	case EAGAIN:       return "the vCPU is not ready yet, try again";
	case EBUSY:        return "busy: an earlier request is still pending";
	case EFAULT:       return "the VMM could not access guest memory";
	case E2BIG:        return "request or reply too large";
	case ENOMEM:       return "out of memory";
	case ETIMEDOUT:    return "timed out waiting for the VMM";
	case ECONNRESET:   return "the VMM closed the connection";
	case ENOTCONN:     return "not connected to the VMM";
	case ECONNREFUSED: return "connection refused during the handshake";
	case ENOMSG:       return "the VMM answered with an unexpected message";
	case ENODATA:      return "the VMM's reply was truncated";
	case EPROTO:       return "the VMM's reply did not follow the protocol";
	case EBADMSG:      return "the VMM sent a malformed event";
	case EMSGSIZE:     return "message too large";
	default:           return strerror(-err);
	}
}

void kvmi_uuid_str(const uint8_t uuid[16], char out[37])
{
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 uuid[0], uuid[1], uuid[2], uuid[3], uuid[4], uuid[5], uuid[6], uuid[7],
		 uuid[8], uuid[9], uuid[10], uuid[11], uuid[12], uuid[13], uuid[14], uuid[15]);
}
