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
