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

bool kvmi_policy_command_allowed(const struct kvmi_policy *p, unsigned id)
{
	/* Redeeming a token is part of what GET_MAP_TOKEN grants. */
	if (id == KVMI_X_MAP_MEMORY)
		id = KVMI_GET_MAP_TOKEN;
	if (id >= KVMI_NUM_MESSAGES)
		return false;
	return ((p->commands | always_allowed) >> id) & 1;
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

/* Applies LIST to *mask (in/out). */
static int apply_list(const char *list, bool event, uint64_t *mask, char *err, size_t errlen)
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
		if (remove)
			*mask &= ~(1ull << id);
		else
			*mask |= 1ull << id;
	}
	return 0;
}

int kvmi_policy_parse_commands(const char *list, uint64_t *mask, char *err, size_t errlen)
{
	uint64_t m = 0;
	int ret = apply_list(list, false, &m, err, errlen);

	if (!ret)
		*mask = m;
	return ret;
}

int kvmi_policy_parse_events(const char *list, uint64_t *mask, char *err, size_t errlen)
{
	uint64_t m = 0;
	int ret = apply_list(list, true, &m, err, errlen);

	if (!ret)
		*mask = m;
	return ret;
}

int kvmi_policy_parse_text(const char *text, struct kvmi_policy *p, char *err, size_t errlen)
{
	struct kvmi_policy out;
	bool seen_cmd = false, seen_ev = false;
	const char *line = text;
	unsigned lineno = 0;

	kvmi_policy_allow_all(&out);
	while (*line) {
		char buf[1024], sub[256];
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char *key, *val, *eq, *hash, *end;
		bool events;
		int ret;

		lineno++;
		if (len >= sizeof(buf)) {
			set_err(err, errlen, "line %u: too long", lineno);
			return -EINVAL;
		}
		memcpy(buf, line, len);
		buf[len] = '\0';
		line += len + (nl ? 1 : 0);

		hash = strchr(buf, '#');
		if (hash)
			*hash = '\0';
		key = buf;
		while (isspace((unsigned char)*key))
			key++;
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			set_err(err, errlen, "line %u: expected KEY = LIST", lineno);
			return -EINVAL;
		}
		val = eq + 1;
		end = eq;
		while (end > key && isspace((unsigned char)end[-1]))
			end--;
		*end = '\0';

		if (!strcasecmp(key, "commands") || !strcasecmp(key, "allow-commands"))
			events = false;
		else if (!strcasecmp(key, "events") || !strcasecmp(key, "allow-events"))
			events = true;
		else {
			set_err(err, errlen, "line %u: unknown key \"%s\"", lineno, key);
			return -EINVAL;
		}
		if (events && !seen_ev) {
			out.events = 0;
			seen_ev = true;
		} else if (!events && !seen_cmd) {
			out.commands = 0;
			seen_cmd = true;
		}
		ret = apply_list(val, events, events ? &out.events : &out.commands, sub, sizeof(sub));
		if (ret) {
			set_err(err, errlen, "line %u: %s", lineno, sub);
			return ret;
		}
	}
	if (!seen_cmd && !seen_ev) {
		set_err(err, errlen, "no \"commands\" or \"events\" line (an empty policy would "
			"allow everything)");
		return -EINVAL;
	}
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
