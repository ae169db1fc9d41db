/* SPDX-License-Identifier: MIT */
/*
 * The introspection subsystem inside kvmi-vm: connects to the tool, runs
 * the KVMI protocol server (src/introspection) on its own thread, and
 * implements the server's backend on top of struct vm and its vCPUs.
 */
#ifndef KVMI_VM_INTROSPECT_H
#define KVMI_VM_INTROSPECT_H

#include <stdbool.h>
#include <stdint.h>

struct vm;

struct introspect_config {
	const char *address;        /* unix:PATH or vsock:CID:PORT; NULL = off */
	const char *name;           /* VM name in the handshake */
	uint8_t uuid[16];
	const char *key_file;       /* cookie key; NULL = tools are not authenticated */
	const char *allow_commands; /* comma lists (see docs/policy.md); NULL = all */
	const char *allow_events;
	const char *policy_file;
	int handshake_timeout_ms;   /* <= 0: 10 s */
	int unhook_timeout_ms;      /* <= 0: 5 s */
	/* Hold every vCPU before its first instruction until a tool has
	 * enabled CREATE_VCPU (each vCPU then raises it) or has come and gone. */
	bool wait_for_tool;
};

/* Parses a UUID "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".  0 or -EINVAL. */
int introspect_parse_uuid(const char *s, uint8_t uuid[16]);

/* Validates the configuration and attaches to vm (hooks).  0 or -errno,
 * with a message logged. */
int introspect_create(struct vm *vm, const struct introspect_config *cfg);
/* Starts the connection thread (the guest runs whether or not a tool is there). */
int introspect_start(struct vm *vm);
/* VM shutdown: UNHOOK if the tool asked for it (bounded wait), disconnect,
 * join the thread. */
void introspect_stop(struct vm *vm);
void introspect_destroy(struct vm *vm);

#endif
