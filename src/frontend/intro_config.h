/* SPDX-License-Identifier: MIT */
/*
 * intro_config.h - the introspection options every frontend offers
 * (--introspector, --introspector-key, --policy, --allow-*, --uuid, ...)
 * and their translation into the engine's configuration: address parsing,
 * the policy file and lists, the key file.  The engine itself never reads
 * a file or parses an option.
 */
#ifndef KVMI_FRONTEND_INTRO_CONFIG_H
#define KVMI_FRONTEND_INTRO_CONFIG_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

struct kvmi_engine_config;

struct intro_options {
	const char *address;        /* unix:PATH or vsock:CID:PORT; NULL = off */
	const char *name;           /* VM name in the handshake; NULL: the default */
	uint8_t uuid[16];
	bool have_uuid;             /* else a random one */
	const char *key_file;       /* cookie key; NULL = tools are not authenticated */
	const char *allow_commands; /* comma lists (see docs/policy.md); NULL = all */
	const char *allow_events;
	const char *policy_file;
	int handshake_timeout_ms;   /* <= 0: 10 s */
	int unhook_timeout_ms;      /* <= 0: 5 s */
	bool wait_for_tool;         /* --introspector-wait */
};

/*
 * The options on a command line (getopt_long): intro_longopts has
 * INTRO_NR_LONGOPTS entries with codes from INTRO_OPT_BASE on, for the
 * frontend to append to its own table.  intro_option() takes getopt's
 * answer: 0 when it was an introspection option and is fine, -ENOENT when
 * it is not one, -EINVAL (logged) when its value is bad; `name` is how the
 * user wrote the option.  intro_options_check() refuses options that need
 * --introspector without it.
 */
#define INTRO_OPT_BASE 0x1000
#define INTRO_NR_LONGOPTS 10
extern const struct option intro_longopts[INTRO_NR_LONGOPTS];
int intro_option(int c, const char *arg, const char *name, struct intro_options *o);
int intro_options_check(const struct intro_options *o);

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (dashes anywhere).  0 or -EINVAL. */
int intro_parse_uuid(const char *s, uint8_t uuid[16]);

/*
 * Fills the tool part of cfg (address, policy, key, UUID, name, timeouts,
 * wait) from o; default_name names the VM when o->name is NULL.  0, or
 * -errno with the reason logged (a bad address, policy or key file).
 * intro_config_release() frees what it allocated (the key).
 */
int intro_config_build(const struct intro_options *o, const char *default_name, struct kvmi_engine_config *cfg);
void intro_config_release(struct kvmi_engine_config *cfg);

#endif
