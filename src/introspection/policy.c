/* SPDX-License-Identifier: MIT */
/*
 * policy.c - the administrator's allow-lists: which commands the tool may
 * send and which events it may enable for this guest.
 *
 * List syntax (--allow-commands / --allow-events, and the policy file):
 *     LIST  := ITEM { "," ITEM }
 *     ITEM  := "all" | "none" | NAME | NUMBER | "-" NAME | "-" NUMBER
 * evaluated left to right starting from the empty set; "-X" removes X.
 * Names are case-insensitive, with or without the "KVMI_" prefix (events
 * also without "EVENT_"; libkvmi's KVMI_VCPU_* names also without "VCPU_"):
 * libkvmi names (get_registers, translate_gva, pf), kvmi-v7 kernel names
 * (vcpu_get_registers, vm_read_physical) and numbers (13, 0xd) are
 * accepted; the names are src/proto's tables. Examples:
 * "all,-write_physical", "pause_vcpu,trap".
 *
 * Policy file: one "KEY = LIST" per line, '#' starts a comment, blank
 * lines are ignored. KEY is "commands" (or "allow-commands") or "events"
 * (or "allow-events"). A key that does not appear allows everything; a key
 * that appears on several lines continues from the previous line's set.
 * The policy never fails open: a text with neither key, and a file that
 * is empty, unreadable, not a regular file on disk (a directory, a
 * device, a FIFO, a procfs or sysfs file), over 1 MiB or with a NUL byte
 * is refused with the reason.
 *
 * GET_VERSION, CHECK_COMMAND, CHECK_EVENT and EVENT_REPLY are always
 * allowed, whatever the list says. docs/policy.md has the user's view.
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALL_COMMANDS (~0ull)
#define ALL_EVENTS   ((1ull << KVMI_NUM_EVENTS) - 1)

static const uint64_t always_allowed =
	(1ull << KVMI_EVENT_REPLY) | (1ull << KVMI_GET_VERSION) |
	(1ull << KVMI_CHECK_COMMAND) | (1ull << KVMI_CHECK_EVENT);

void kvmi_policy_allow_all(struct kvmi_policy *p)
{
	p->commands = ALL_COMMANDS;
	p->events = ALL_EVENTS;
}

/* ---- what the tool may do --------------------------------------------- */

/*
 * Writes are named once, whatever the route (the src/proto table's
 * KVMI_PROTO_WRITES_* attributes say which commands write what):
 * "write_physical" stands for every change of guest memory as the guest
 * sees it (WRITE_PHYSICAL, a read-write map grant, CHANGE_GFN,
 * SET_VE_INFO_PAGE, and the data a PF reply would make a load read),
 * "set_registers" for every write of vCPU registers (SET_REGISTERS,
 * VCPU_SET_XSAVE, and a value of the tool's own in a CR or MSR reply).
 */
static bool has(const struct kvmi_policy *p, unsigned id)
{
	return ((p->commands | always_allowed) >> id) & 1;
}

static bool writes_allowed(const struct kvmi_policy *p, unsigned writes)
{
	if ((writes & KVMI_PROTO_WRITES_MEM) && !has(p, KVMI_WRITE_PHYSICAL))
		return false;
	if ((writes & KVMI_PROTO_WRITES_REGS) && !has(p, KVMI_SET_REGISTERS))
		return false;
	return true;
}

/* req NULL: may any request of id pass? */
static bool allowed(const struct kvmi_policy *p, unsigned id, const void *req, size_t len)
{
	const struct kvmi_proto_cmd *c = kvmi_proto_command(id);
	unsigned own = id;

	/* Redeeming a token is part of what GET_MAP_TOKEN grants. */
	if (id == KVMI_X_MAP_MEMORY)
		own = KVMI_GET_MAP_TOKEN;
	if (own >= KVMI_NUM_MESSAGES || !has(p, own))
		return false;
	return !c || writes_allowed(p, kvmi_proto_command_writes(c, req, len));
}

bool kvmi_policy_command_allowed(const struct kvmi_policy *p, unsigned id)
{
	return allowed(p, id, NULL, 0);
}

bool kvmi_policy_request_allowed(const struct kvmi_policy *p, unsigned id, const void *req,
				 size_t len)
{
	static const uint8_t none;

	return allowed(p, id, req ? req : &none, req ? len : 0);
}

/* A CR or MSR reply may keep the old value (a veto) or let the guest's
 * write through; without set_registers nothing else. */
static bool filter_new_val(uint64_t old, uint64_t guest, uint64_t *new_val)
{
	if (*new_val == old || *new_val == guest)
		return false;
	*new_val = guest;
	return true;
}

bool kvmi_policy_filter_reply(const struct kvmi_policy *p, unsigned event, const void *data,
			      size_t len, void *rpl, size_t rpl_len)
{
	struct kvmi_event_cr cr;
	struct kvmi_event_msr msr;
	struct kvmi_event_pf_reply pf;
	uint64_t v;
	bool dropped;

	if ((event == KVMI_EVENT_CR || event == KVMI_EVENT_MSR) &&
	    !writes_allowed(p, KVMI_PROTO_WRITES_REGS) && len >= sizeof(cr) && rpl_len >= sizeof(v)) {
		memcpy(&v, rpl, sizeof(v));
		if (event == KVMI_EVENT_CR) {
			memcpy(&cr, data, sizeof(cr));
			dropped = filter_new_val(cr.old_value, cr.new_value, &v);
		} else {
			memcpy(&msr, data, sizeof(msr));
			dropped = filter_new_val(msr.old_value, msr.new_value, &v);
		}
		memcpy(rpl, &v, sizeof(v));
		return dropped;
	}
	if (event == KVMI_EVENT_PF && !writes_allowed(p, KVMI_PROTO_WRITES_MEM) &&
	    rpl_len >= sizeof(pf)) {
		memcpy(&pf, rpl, sizeof(pf));
		dropped = pf.ctx_size != 0;
		pf.ctx_addr = 0;
		pf.ctx_size = 0;
		memset(pf.ctx_data, 0, sizeof(pf.ctx_data));
		memcpy(rpl, &pf, sizeof(pf));
		return dropped;
	}
	return false;
}

bool kvmi_policy_event_allowed(const struct kvmi_policy *p, unsigned id)
{
	if (id >= KVMI_NUM_EVENTS)
		return false;
	return (p->events >> id) & 1;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int parse_number(const char *word, unsigned limit)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)word[0]))
		return -1;
	errno = 0;
	v = strtoul(word, &end, 0);
	if (errno || *end || v >= limit)
		return -1;
	return (int)v;
}

/* A number, or a name as src/proto reads them. */
static int lookup(const char *word, bool event)
{
	int n = parse_number(word, event ? KVMI_NUM_EVENTS : KVMI_NUM_MESSAGES);

	if (n >= 0)
		return n;
	return event ? kvmi_proto_event_by_name(word) : kvmi_proto_command_by_name(word);
}

/* Applies LIST to *mask (in/out); the ids it adds by name or number are
 * added to *named. */
static int apply_list(const char *list, bool event, uint64_t *mask, uint64_t *named, char *err,
		      size_t errlen)
{
	uint64_t all = event ? ALL_EVENTS : ALL_COMMANDS;
	const char *p = list;

	while (*p) {
		char word[64];
		const char *start, *end;
		bool remove = false;
		size_t n;
		int id;

		while (isspace((unsigned char)*p))
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		if (*p == ',')
			p++;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (start < end && (*start == '-' || *start == '!')) {
			remove = true;
			start++;
			while (start < end && isspace((unsigned char)*start))
				start++;
		}
		n = (size_t)(end - start);
		if (!n) {
			if (remove || *p) {
				set_err(err, errlen, "empty item in \"%s\"", list);
				return -EINVAL;
			}
			continue;
		}
		if (n >= sizeof(word)) {
			set_err(err, errlen, "name too long in \"%s\"", list);
			return -EINVAL;
		}
		memcpy(word, start, n);
		word[n] = '\0';

		if (!strcasecmp(word, "all")) {
			*mask = remove ? 0 : all;
			continue;
		}
		if (!strcasecmp(word, "none")) {
			if (remove) {
				set_err(err, errlen, "\"-none\" makes no sense");
				return -EINVAL;
			}
			*mask = 0;
			continue;
		}
		id = lookup(word, event);
		if (id < 0) {
			set_err(err, errlen, "unknown %s \"%s\"", event ? "event" : "command", word);
			return -EINVAL;
		}
		if (remove) {
			*mask &= ~(1ull << id);
		} else {
			*mask |= 1ull << id;
			*named |= 1ull << id;
		}
	}
	return 0;
}

/* A command named in the list that the list's own write rules would
 * refuse anyway (set_xsave without set_registers) is an error, not a
 * silent no-op. */
static int check_named(uint64_t commands, uint64_t named, char *err, size_t errlen)
{
	struct kvmi_policy p = { .commands = commands };

	for (unsigned id = 0; id < KVMI_NUM_MESSAGES; id++) {
		const struct kvmi_proto_cmd *c = kvmi_proto_command(id);
		unsigned w;

		if (!((named & commands) >> id & 1) || !c)
			continue;
		w = kvmi_proto_command_writes(c, NULL, 0);
		if (writes_allowed(&p, w))
			continue;
		set_err(err, errlen, "%s writes %s: allow %s too, or leave it out", c->name,
			w & KVMI_PROTO_WRITES_MEM ? "guest memory" : "vCPU registers",
			w & KVMI_PROTO_WRITES_MEM ? "write_physical" : "set_registers");
		return -EINVAL;
	}
	return 0;
}

int kvmi_policy_parse_commands(const char *list, uint64_t *mask, char *err, size_t errlen)
{
	uint64_t m = 0, named = 0;
	int ret = apply_list(list, false, &m, &named, err, errlen);

	if (!ret)
		ret = check_named(m, named, err, errlen);

	if (!ret)
		*mask = m;
	return ret;
}

int kvmi_policy_parse_events(const char *list, uint64_t *mask, char *err, size_t errlen)
{
	uint64_t m = 0, named = 0;
	int ret = apply_list(list, true, &m, &named, err, errlen);

	if (!ret)
		*mask = m;
	return ret;
}

/*
 * One line of a policy file, in buf (modified): 0 for a blank or comment
 * line, 1 with *events (which key) and *val (its list), or -EINVAL.
 */
static int split_line(char *buf, unsigned lineno, bool *events, char **val, char *err,
		      size_t errlen)
{
	char *key = buf, *eq, *end, *hash = strchr(buf, '#');

	if (hash)
		*hash = '\0';
	while (isspace((unsigned char)*key))
		key++;
	if (!*key)
		return 0;
	eq = strchr(key, '=');
	if (!eq) {
		set_err(err, errlen, "line %u: expected KEY = LIST", lineno);
		return -EINVAL;
	}
	*val = eq + 1;
	end = eq;
	while (end > key && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	if (!strcasecmp(key, "commands") || !strcasecmp(key, "allow-commands")) {
		*events = false;
	} else if (!strcasecmp(key, "events") || !strcasecmp(key, "allow-events")) {
		*events = true;
	} else {
		set_err(err, errlen, "line %u: unknown key \"%s\"", lineno, key);
		return -EINVAL;
	}
	return 1;
}

int kvmi_policy_parse_text(const char *text, struct kvmi_policy *p, char *err, size_t errlen)
{
	struct kvmi_policy out;
	bool seen[2] = { false, false };
	uint64_t named[2] = { 0, 0 };
	const char *line = text;
	unsigned lineno = 0;
	int ret;

	kvmi_policy_allow_all(&out);
	while (*line) {
		char buf[1024], sub[256], *val = NULL;
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		bool events = false;

		lineno++;
		if (len >= sizeof(buf)) {
			set_err(err, errlen, "line %u: too long", lineno);
			return -EINVAL;
		}
		memcpy(buf, line, len);
		buf[len] = '\0';
		line += len + (nl ? 1 : 0);

		ret = split_line(buf, lineno, &events, &val, err, errlen);
		if (ret <= 0) {
			if (ret)
				return ret;
			continue;
		}
		/* The first line of a key starts from the empty set. */
		if (!seen[events]) {
			*(events ? &out.events : &out.commands) = 0;
			seen[events] = true;
		}
		ret = apply_list(val, events, events ? &out.events : &out.commands, &named[events],
				 sub, sizeof(sub));
		if (ret) {
			set_err(err, errlen, "line %u: %s", lineno, sub);
			return ret;
		}
	}
	if (!seen[0] && !seen[1]) {
		set_err(err, errlen, "no \"commands\" or \"events\" line (an empty policy would "
			"allow everything)");
		return -EINVAL;
	}
	ret = check_named(out.commands, named[0], err, errlen);
	if (ret)
		return ret;
	*p = out;
	return 0;
}

/* ---- the policy file -------------------------------------------------- */

#define POLICY_FILE_MAX (1u << 20)

static const char *file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

/* Up to POLICY_FILE_MAX + 1 bytes of fd, read until EOF: *len, or -errno. */
static int read_all(int fd, char *buf, size_t *len)
{
	size_t got = 0;

	while (got <= POLICY_FILE_MAX) {
		ssize_t n = read(fd, buf + got, POLICY_FILE_MAX + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*len = got;
	return 0;
}

/*
 * The file's text, read by reading: a regular file whose every byte is
 * there (what stat says it holds is what read gives), not empty, no NUL
 * byte, at most 1 MiB. procfs and sysfs files say 0 or 4096 bytes
 * whatever they hold, so they are refused as well as devices, FIFOs (the
 * open does not wait for a writer) and directories.
 */
static int read_policy_file(const char *path, char **text, char *err, size_t errlen)
{
	struct stat st;
	size_t len = 0;
	char *buf = NULL;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		ret = -errno;
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	ret = -EINVAL;
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "%s: %s, not a policy file", path, file_kind(st.st_mode));
		goto out;
	}
	ret = -EFBIG;
	if (st.st_size > POLICY_FILE_MAX) {
		set_err(err, errlen, "%s: larger than 1 MiB", path);
		goto out;
	}
	ret = -ENOMEM;
	buf = malloc(POLICY_FILE_MAX + 2);
	if (!buf)
		goto out;
	ret = read_all(fd, buf, &len);
	if (ret) {
		set_err(err, errlen, "%s: %s", path, strerror(-ret));
		goto out;
	}
	ret = -EINVAL;
	if ((uint64_t)len != (uint64_t)st.st_size) {
		set_err(err, errlen, "%s: %zu bytes read where the file says %lld: not a plain file "
			"(procfs, sysfs?) or it changed while read", path, len, (long long)st.st_size);
		goto out;
	}
	if (!len) {
		set_err(err, errlen, "%s: the file is empty (an empty policy would allow everything)",
			path);
		goto out;
	}
	if (memchr(buf, '\0', len)) {
		set_err(err, errlen, "%s: a NUL byte at offset %zu: not a text file", path,
			(size_t)((char *)memchr(buf, '\0', len) - buf));
		goto out;
	}
	buf[len] = '\0';
	*text = buf;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	close(fd);
	return ret;
}

int kvmi_policy_load_file(const char *path, struct kvmi_policy *p, char *err, size_t errlen)
{
	char *text = NULL, sub[256];
	int ret;

	ret = read_policy_file(path, &text, err, errlen);
	if (ret)
		return ret;
	ret = kvmi_policy_parse_text(text, p, sub, sizeof(sub));
	if (ret)
		set_err(err, errlen, "%s: %s", path, sub);
	free(text);
	return ret;
}
