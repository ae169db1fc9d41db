/* SPDX-License-Identifier: MIT */
/* Introspection options -> engine configuration (see intro_config.h). */
#include "intro_config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "util.h"

enum {
	OPT_INTROSPECTOR = INTRO_OPT_BASE, OPT_NAME, OPT_UUID, OPT_KEY, OPT_ALLOW_COMMANDS, OPT_ALLOW_EVENTS,
	OPT_POLICY, OPT_HANDSHAKE_TIMEOUT, OPT_UNHOOK_TIMEOUT, OPT_WAIT,
};

const struct option intro_longopts[INTRO_NR_LONGOPTS] = {
	{ "introspector", required_argument, NULL, OPT_INTROSPECTOR },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "uuid", required_argument, NULL, OPT_UUID },
	{ "introspector-key", required_argument, NULL, OPT_KEY },
	{ "allow-commands", required_argument, NULL, OPT_ALLOW_COMMANDS },
	{ "allow-events", required_argument, NULL, OPT_ALLOW_EVENTS },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
	{ "unhook-timeout", required_argument, NULL, OPT_UNHOOK_TIMEOUT },
	{ "introspector-wait", no_argument, NULL, OPT_WAIT },
};

/* Seconds, at most an hour, as milliseconds. */
static int timeout_ms(const char *arg, const char *name, int *out)
{
	uint64_t v;

	if (parse_uint(arg, 3600, &v)) {
		pr_err("%s: '%s' is not a number of seconds (at most 3600)", name, arg);
		return -EINVAL;
	}
	*out = (int)v * 1000;
	return 0;
}

int intro_option(int c, const char *arg, const char *name, struct intro_options *o)
{
	switch (c) {
	case OPT_INTROSPECTOR: o->address = arg; break;
	case OPT_NAME: o->name = arg; break;
	case OPT_UUID:
		if (intro_parse_uuid(arg, o->uuid)) {
			pr_err("--uuid: '%s' is not a UUID", arg);
			return -EINVAL;
		}
		o->have_uuid = true;
		break;
	case OPT_KEY: o->key_file = arg; break;
	case OPT_ALLOW_COMMANDS: o->allow_commands = arg; break;
	case OPT_ALLOW_EVENTS: o->allow_events = arg; break;
	case OPT_POLICY: o->policy_file = arg; break;
	case OPT_WAIT: o->wait_for_tool = true; break;
	case OPT_HANDSHAKE_TIMEOUT: return timeout_ms(arg, name, &o->handshake_timeout_ms);
	case OPT_UNHOOK_TIMEOUT: return timeout_ms(arg, name, &o->unhook_timeout_ms);
	default: return -ENOENT;
	}
	return 0;
}

int intro_options_check(const struct intro_options *o)
{
	if (!o->address && (o->key_file || o->allow_commands || o->allow_events || o->policy_file || o->name ||
			    o->have_uuid)) {
		pr_err("introspection options need --introspector ADDR");
		return -EINVAL;
	}
	return 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int intro_parse_uuid(const char *s, uint8_t uuid[16])
{
	unsigned n = 0;

	for (const char *p = s; *p; p++) {
		int hi, lo;

		if (*p == '-')
			continue;
		if (n == 16 || !p[1])
			return -EINVAL;
		hi = hex_digit(p[0]);
		lo = hex_digit(p[1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		uuid[n++] = (uint8_t)(hi << 4 | lo);
		p++;
	}
	return n == 16 ? 0 : -EINVAL;
}

/* Version-4 UUID from the kernel's random pool. */
static void random_uuid(uint8_t uuid[16])
{
	FILE *f = fopen("/dev/urandom", "rb");

	if (!f || fread(uuid, 1, 16, f) != 16)
		memset(uuid, 0, 16);
	if (f)
		fclose(f);
	uuid[6] = (uuid[6] & 0x0f) | 0x40;
	uuid[8] = (uuid[8] & 0x3f) | 0x80;
}

/* The policy file first, then the lists on the command line. */
static int load_policy(const struct intro_options *o, struct kvmi_policy *p)
{
	char err[256];
	int ret;

	kvmi_policy_allow_all(p);
	if (o->policy_file) {
		ret = kvmi_policy_load_file(o->policy_file, p, err, sizeof(err));
		if (ret) {
			pr_err("--policy: %s", err);
			return ret;
		}
	}
	if (o->allow_commands) {
		ret = kvmi_policy_parse_commands(o->allow_commands, &p->commands, err, sizeof(err));
		if (ret) {
			pr_err("--allow-commands: %s", err);
			return ret;
		}
	}
	if (o->allow_events) {
		ret = kvmi_policy_parse_events(o->allow_events, &p->events, err, sizeof(err));
		if (ret) {
			pr_err("--allow-events: %s", err);
			return ret;
		}
	}
	return 0;
}

static int load_key(const char *path, struct kvmi_engine_config *cfg)
{
	uint8_t *key;
	size_t len;
	int err = read_file(path, &key, &len);

	if (err) {
		pr_err("--introspector-key %s: %s", path, strerror(-err));
		return err;
	}
	if (!len) {
		pr_err("--introspector-key %s: the key file is empty", path);
		free(key);
		return -EINVAL;
	}
	cfg->key = key;
	cfg->key_len = len;
	return 0;
}

/* KVMI_PTWALK=off|unguarded: a test or diagnosis knob, not an option
 * (docs/limitations.md, "Page tables under nested paging"). */
static int ptwalk_mode(struct kvmi_engine_config *cfg)
{
	const char *env = getenv("KVMI_PTWALK");

	cfg->ptwalk = KVMI_PTWALK_AUTO;
	if (!env || !*env || !strcmp(env, "auto"))
		return 0;
	if (!strcmp(env, "off")) {
		cfg->ptwalk = KVMI_PTWALK_NO_HOOK;
	} else if (!strcmp(env, "unguarded")) {
		cfg->ptwalk = KVMI_PTWALK_UNGUARDED;
	} else {
		pr_err("KVMI_PTWALK=%s: expected auto, off or unguarded", env);
		return -EINVAL;
	}
	pr_warn("introspection: KVMI_PTWALK=%s: page walks through write-protected pages are not reported%s",
		env, cfg->ptwalk == KVMI_PTWALK_UNGUARDED ? " and protecting page tables is not refused" : "");
	return 0;
}

int intro_config_build(const struct intro_options *o, const char *default_name, struct kvmi_engine_config *cfg)
{
	int err;

	if (!o->address || kvmi_srv_addr_parse(o->address, &cfg->addr)) {
		pr_err("--introspector: '%s' is not unix:PATH or vsock:CID:PORT", o->address ? o->address : "");
		return -EINVAL;
	}
	err = load_policy(o, &cfg->policy);
	if (err)
		return err;
	if (o->key_file) {
		err = load_key(o->key_file, cfg);
		if (err)
			return err;
	}
	if (o->have_uuid)
		memcpy(cfg->uuid, o->uuid, sizeof(cfg->uuid));
	else
		random_uuid(cfg->uuid);
	snprintf(cfg->name, sizeof(cfg->name), "%s", o->name ? o->name : default_name);
	cfg->handshake_timeout_ms = o->handshake_timeout_ms;
	cfg->unhook_timeout_ms = o->unhook_timeout_ms;
	cfg->wait_for_tool = o->wait_for_tool;
	return ptwalk_mode(cfg);
}

void intro_config_release(struct kvmi_engine_config *cfg)
{
	free((void *)cfg->key);
	cfg->key = NULL;
	cfg->key_len = 0;
}
