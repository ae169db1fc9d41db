/* Client library: configuration defaults and logging. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kc_config_copy(struct kvmi_config *dst, const struct kvmi_config *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src) {
		/* Tolerant of older/newer callers: copy what both know. */
		size_t n = src->size < sizeof(*dst) ? src->size : sizeof(*dst);

		if (src->size < offsetof(struct kvmi_config, key) + sizeof(src->key))
			return -EINVAL;
		memcpy(dst, src, n);
	}
	dst->size = sizeof(*dst);
	if (dst->handshake_timeout_ms == 0)
		dst->handshake_timeout_ms = KC_DEFAULT_HANDSHAKE_TIMEOUT_MS;
	if (dst->io_timeout_ms == 0)
		dst->io_timeout_ms = KC_DEFAULT_IO_TIMEOUT_MS;
	return 0;
}

int kvmi_config_expect_guest(struct kvmi_config *cfg, const char *name, const char *uuid)
{
	uint8_t id[16] = { 0 };
	unsigned int expect = 0;

	if (!cfg || cfg->size < offsetof(struct kvmi_config, expect_uuid) + sizeof(cfg->expect_uuid))
		return -EINVAL;
	if (name) {
		if (strlen(name) >= sizeof(cfg->expect_name))
			return -EINVAL;
		expect |= KVMI_EXPECT_NAME;
	}
	if (uuid) {
		if (kvmi_uuid_parse(uuid, id))
			return -EINVAL;
		expect |= KVMI_EXPECT_UUID;
	}
	memset(cfg->expect_name, 0, sizeof(cfg->expect_name));
	if (name)
		memcpy(cfg->expect_name, name, strlen(name));
	memcpy(cfg->expect_uuid, id, sizeof(id));
	cfg->expect = expect;
	return 0;
}

void kc_log(const struct kvmi_config *cfg, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (!cfg->log)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cfg->log(level, buf, cfg->ctx);
}
