/* Client library: names of ids and human-readable errors. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The names are src/proto's table, without their "KVMI_" (and
 * "KVMI_VCPU_" / "KVMI_EVENT_") prefix. */
const char *kvmi_command_name(uint16_t id)
{
	return kvmi_proto_command_short_name(id);
}

const char *kvmi_event_name(uint16_t id)
{
	return kvmi_proto_event_short_name(id);
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

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int kvmi_uuid_parse(const char *str, uint8_t uuid[16])
{
	uint8_t out[16];
	size_t len, pos = 0;
	bool dashes;

	if (!str || !uuid)
		return -EINVAL;
	len = strlen(str);
	if (len != 36 && len != 32)
		return -EINVAL;
	dashes = len == 36;
	for (unsigned int i = 0; i < 16; i++) {
		int hi, lo;

		if (dashes && (i == 4 || i == 6 || i == 8 || i == 10) && str[pos++] != '-')
			return -EINVAL;
		hi = hex_digit(str[pos]);
		lo = hex_digit(str[pos + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
		pos += 2;
	}
	memcpy(uuid, out, sizeof(out));
	return 0;
}
