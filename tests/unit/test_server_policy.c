/* SPDX-License-Identifier: MIT */
/*
 * test_server_policy.c - the admin policy: --allow-commands/--allow-events
 * lists (names, kernel aliases, numbers, "all", "none", "-X") and the
 * policy file format.
 */
#include "test_server_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIT(x) (1ull << (x))

static void test_lists(void)
{
	char err[128] = "";
	uint64_t m = 0;

	tap_ok(kvmi_policy_parse_commands("all", &m, err, sizeof(err)) == 0 && m == ~0ull, "\"all\"");
	tap_ok(kvmi_policy_parse_commands("none", &m, err, sizeof(err)) == 0 && m == 0, "\"none\"");
	tap_ok(kvmi_policy_parse_commands("", &m, err, sizeof(err)) == 0 && m == 0, "empty list");
	tap_ok(kvmi_policy_parse_commands("get_registers, KVMI_READ_PHYSICAL ,18,0x2", &m, err,
					  sizeof(err)) == 0 &&
	       m == (BIT(13) | BIT(17) | BIT(18) | BIT(2)), "names, prefixed names, decimal, hex");
	tap_ok(kvmi_policy_parse_commands("all,-write_physical,!set_registers", &m, err, sizeof(err)) == 0 &&
	       m == (~0ull & ~BIT(18) & ~BIT(14)), "all minus two");
	tap_ok(kvmi_policy_parse_commands("vcpu_get_registers,VM_CHECK_COMMAND,kvmi_vcpu_pause", &m,
					  err, sizeof(err)) == 0 && m == (BIT(13) | BIT(3) | BIT(7)),
	       "kvmi-v7 kernel aliases");
	tap_ok(kvmi_policy_parse_commands("Get_Registers,", &m, err, sizeof(err)) == 0 && m == BIT(13),
	       "case-insensitive, trailing comma");
	tap_ok(kvmi_policy_parse_commands("read_physical,none,translate_gva", &m, err, sizeof(err)) == 0 &&
	       m == BIT(35), "left to right");
	tap_ok(kvmi_policy_parse_commands("get_registrs", &m, err, sizeof(err)) == -EINVAL &&
	       strstr(err, "get_registrs"), "unknown name rejected: %s", err);
	tap_ok(kvmi_policy_parse_commands("64", &m, err, sizeof(err)) == -EINVAL, "64 rejected");
	tap_ok(kvmi_policy_parse_commands("a,,b", &m, err, sizeof(err)) == -EINVAL, "empty item rejected");
	tap_ok(kvmi_policy_parse_commands("-none", &m, err, sizeof(err)) == -EINVAL, "\"-none\" rejected");
	m = 42;
	tap_ok(kvmi_policy_parse_commands("bogus", &m, NULL, 0) == -EINVAL && m == 42,
	       "mask untouched on error");

	tap_ok(kvmi_policy_parse_events("pf, trap ,KVMI_EVENT_CR,event_msr,13", &m, err, sizeof(err)) == 0 &&
	       m == (BIT(6) | BIT(7) | BIT(1) | BIT(2) | BIT(13)), "event names and numbers");
	tap_ok(kvmi_policy_parse_events("page_fault,pause_vcpu", &m, err, sizeof(err)) == 0 &&
	       m == (BIT(6) | BIT(10)), "event aliases");
	tap_ok(kvmi_policy_parse_events("all", &m, err, sizeof(err)) == 0 && m == 0x3fff, "all events");
	tap_ok(kvmi_policy_parse_events("14", &m, err, sizeof(err)) == -EINVAL, "event 14 rejected");
	tap_ok(kvmi_policy_parse_events("get_registers", &m, err, sizeof(err)) == -EINVAL,
	       "a command name is not an event");
}

static void test_allowed(void)
{
	struct kvmi_policy p = { 0, 0 };

	tap_ok(kvmi_policy_command_allowed(&p, KVMI_GET_VERSION) &&
	       kvmi_policy_command_allowed(&p, KVMI_CHECK_COMMAND) &&
	       kvmi_policy_command_allowed(&p, KVMI_CHECK_EVENT) &&
	       kvmi_policy_command_allowed(&p, KVMI_EVENT_REPLY), "always-allowed commands");
	tap_ok(!kvmi_policy_command_allowed(&p, KVMI_GET_REGISTERS) &&
	       !kvmi_policy_command_allowed(&p, KVMI_CONTROL_CMD_RESPONSE), "others follow the mask");
	tap_ok(!kvmi_policy_event_allowed(&p, KVMI_EVENT_PAUSE_VCPU), "events follow the mask");
	kvmi_policy_allow_all(&p);
	tap_ok(kvmi_policy_command_allowed(&p, 63) && !kvmi_policy_command_allowed(&p, 64) &&
	       kvmi_policy_event_allowed(&p, 13) && !kvmi_policy_event_allowed(&p, 14),
	       "allow_all and range ends");
}

static void test_text(void)
{
	struct kvmi_policy p;
	char err[128] = "";
	const char *text =
		"# kvmi policy for the demo guest\n"
		"\n"
		"commands = get_guest_info, get_registers   # read-only\n"
		"commands = read_physical, translate_gva\n"
		"  events = pause_vcpu,trap\n";

	tap_ok(kvmi_policy_parse_text(text, &p, err, sizeof(err)) == 0 &&
	       p.commands == (BIT(5) | BIT(13) | BIT(17) | BIT(35)) && p.events == (BIT(10) | BIT(7)),
	       "file: comments, blank lines, repeated key continues");
	tap_ok(kvmi_policy_parse_text("events = none\n", &p, err, sizeof(err)) == 0 &&
	       p.commands == ~0ull && p.events == 0, "file: a key that is absent allows all");
	tap_ok(kvmi_policy_parse_text("allow-commands = all, -write_physical\nallow-events=all", &p,
				      err, sizeof(err)) == 0 &&
	       p.commands == (~0ull & ~BIT(18)) && p.events == 0x3fff, "file: allow-* key spellings");
	tap_ok(kvmi_policy_parse_text("\n\ncomands = all\n", &p, err, sizeof(err)) == -EINVAL &&
	       strstr(err, "line 3"), "file: unknown key, with its line: %s", err);
	tap_ok(kvmi_policy_parse_text("commands all\n", &p, err, sizeof(err)) == -EINVAL,
	       "file: missing '='");
	tap_ok(kvmi_policy_parse_text("events = pf, bogus\n", &p, err, sizeof(err)) == -EINVAL &&
	       strstr(err, "bogus"), "file: bad item: %s", err);
	p.commands = 42;
	tap_ok(kvmi_policy_parse_text("", &p, err, sizeof(err)) == -EINVAL && p.commands == 42 &&
	       strstr(err, "no \"commands\""), "file: empty text refused: %s", err);
	tap_ok(kvmi_policy_parse_text("# nothing but\n\n   # comments\n", &p, err, sizeof(err)) == -EINVAL,
	       "file: comments only refused (it would allow everything)");
}

static char tmpdir[64];

static void put_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (!f || fwrite(data, 1, len, f) != len)
		tap_diag("cannot write %s", path);
	if (f)
		fclose(f);
}

/* load_file(path) refused with -EINVAL (or want) and a message naming why. */
static void refused(const char *path, int want, const char *why, const char *desc)
{
	char err[256] = "";
	struct kvmi_policy p = { 1, 2 };
	int ret = kvmi_policy_load_file(path, &p, err, sizeof(err));

	tap_ok(ret == want && p.commands == 1 && p.events == 2 && strstr(err, why) && strstr(err, path),
	       "load_file refuses %s: %d \"%s\"", desc, ret, err);
}

/* A file the tool's uid 65534 cannot read (a child drops root first). */
static void test_unreadable(const char *path)
{
	pid_t pid;
	int status;

	put_file(path, "commands = none\n", 16);
	chmod(path, 0600);
	if (geteuid() != 0) {
		chmod(path, 0);
		refused(path, -EACCES, "Permission denied", "a file it may not read");
		return;
	}
	pid = fork();
	if (pid == 0) {
		char err[256] = "";
		struct kvmi_policy p;

		if (setgid(65534) || setuid(65534))
			_exit(2);
		_exit(kvmi_policy_load_file(path, &p, err, sizeof(err)) == -EACCES &&
		      strstr(err, "Permission denied") ? 0 : 1);
	}
	tap_ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	       "load_file refuses a file it may not read (uid 65534, mode 0600): EACCES");
}

static void test_file(void)
{
	char path[128], err[256];
	struct kvmi_policy p;
	char *big;

	snprintf(path, sizeof(path), "%s/ok", tmpdir);
	put_file(path, "commands = none\nevents = pf\n", 28);
	tap_ok(kvmi_policy_load_file(path, &p, err, sizeof(err)) == 0 && p.commands == 0 &&
	       p.events == BIT(6), "load_file");
	unlink(path);
	tap_ok(kvmi_policy_load_file(path, &p, err, sizeof(err)) == -ENOENT && strstr(err, path),
	       "load_file: missing file: %s", err);

	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	put_file(path, "", 0);
	refused(path, -EINVAL, "empty", "an empty file");
	snprintf(path, sizeof(path), "%s/comments", tmpdir);
	put_file(path, "# commands = none\n\n", 19);
	refused(path, -EINVAL, "no \"commands\"", "a file of comments only");
	snprintf(path, sizeof(path), "%s/nul", tmpdir);
	put_file(path, "commands = all\0, -write_physical\n", 33);
	refused(path, -EINVAL, "NUL", "a file with a NUL byte");
	snprintf(path, sizeof(path), "%s/badkey", tmpdir);
	put_file(path, "commands = all\ncomands = -write_physical\n", 41);
	refused(path, -EINVAL, "line 2: unknown key", "a malformed file (names file and line)");
	refused(tmpdir, -EINVAL, "a directory", "a directory");
	refused("/dev/null", -EINVAL, "a character device", "/dev/null");
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	if (mkfifo(path, 0600) == 0) {
		alarm(10);      /* the old code blocked in open() for a writer */
		refused(path, -EINVAL, "a FIFO", "a FIFO (without waiting for a writer)");
		alarm(0);
	} else {
		tap_skip("mkfifo failed", "load_file refuses a FIFO");
	}
	refused("/proc/self/status", -EINVAL, "not a plain file", "a procfs file (/proc/self/status)");
	refused("/proc/self/environ", -EINVAL, "not a plain file", "a procfs file (/proc/self/environ)");
	snprintf(path, sizeof(path), "%s/big", tmpdir);
	big = malloc((1u << 20) + 2);
	if (big) {
		memset(big, '#', (1u << 20) + 2);
		memcpy(big, "commands = none\n", 16);
		put_file(path, big, (1u << 20) + 2);
		free(big);
		refused(path, -EFBIG, "1 MiB", "a file over 1 MiB");
	}
	snprintf(path, sizeof(path), "%s/unreadable", tmpdir);
	test_unreadable(path);
}

int main(void)
{
	char cmd[128];
	int ret;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvmi-policy-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		printf("1..0 # SKIP no temporary directory\n");
		return 0;
	}
	chmod(tmpdir, 0755);
	test_lists();
	test_allowed();
	test_text();
	test_file();
	ret = tap_done();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		tap_diag("cannot remove %s", tmpdir);
	return ret;
}
