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

/* Writes are named once: write_physical and set_registers stand for
 * every route. */
static void test_writes(void)
{
	struct kvmi_policy p;
	struct kvmi_x_map_memory rw = { .flags = 0 }, ro = { .flags = KVMI_X_MAP_READONLY };
	char err[256] = "";
	uint64_t m = 0;

	kvmi_policy_allow_all(&p);
	p.commands &= ~BIT(KVMI_WRITE_PHYSICAL);
	tap_ok(!kvmi_policy_request_allowed(&p, KVMI_X_MAP_MEMORY, &rw, sizeof(rw)) &&
	       kvmi_policy_request_allowed(&p, KVMI_X_MAP_MEMORY, &ro, sizeof(ro)),
	       "-write_physical: a read-write map grant is refused, a read-only one is not");
	tap_ok(!kvmi_policy_request_allowed(&p, KVMI_X_MAP_MEMORY, &ro, sizeof(ro) - 1),
	       "-write_physical: a map request too short to say read-only is refused");
	tap_ok(kvmi_policy_command_allowed(&p, KVMI_X_MAP_MEMORY),
	       "-write_physical: CHECK_COMMAND allows the map extension (read-only grants)");
	tap_ok(!kvmi_policy_command_allowed(&p, KVMI_VCPU_CHANGE_GFN) &&
	       !kvmi_policy_command_allowed(&p, KVMI_SET_VE_INFO_PAGE) &&
	       kvmi_policy_command_allowed(&p, KVMI_SET_PAGE_ACCESS),
	       "-write_physical: CHANGE_GFN and SET_VE_INFO_PAGE refused, SET_PAGE_ACCESS not");
	p.commands &= ~BIT(KVMI_GET_MAP_TOKEN);
	tap_ok(!kvmi_policy_request_allowed(&p, KVMI_X_MAP_MEMORY, &ro, sizeof(ro)),
	       "-get_map_token: no grant at all");

	kvmi_policy_allow_all(&p);
	p.commands &= ~BIT(KVMI_SET_REGISTERS);
	tap_ok(!kvmi_policy_command_allowed(&p, KVMI_VCPU_SET_XSAVE) &&
	       !kvmi_policy_request_allowed(&p, KVMI_VCPU_SET_XSAVE, "x", 1),
	       "-set_registers: VCPU_SET_XSAVE refused");
	tap_ok(kvmi_policy_request_allowed(&p, KVMI_X_MAP_MEMORY, &rw, sizeof(rw)) &&
	       kvmi_policy_command_allowed(&p, KVMI_INJECT_EXCEPTION) &&
	       kvmi_policy_command_allowed(&p, KVMI_GET_XSAVE),
	       "-set_registers: memory, injections and reads are not register writes");
	p.commands = BIT(KVMI_VCPU_SET_XSAVE) | BIT(KVMI_VCPU_CHANGE_GFN);
	tap_ok(!kvmi_policy_command_allowed(&p, KVMI_VCPU_SET_XSAVE) &&
	       !kvmi_policy_command_allowed(&p, KVMI_VCPU_CHANGE_GFN),
	       "a writing command without its kind's name is refused");

	/* Naming such a command anyway is an error, not a silent no-op. */
	tap_ok(kvmi_policy_parse_commands("get_registers,vcpu_set_xsave", &m, err, sizeof(err)) == -EINVAL &&
	       strstr(err, "SET_XSAVE") && strstr(err, "set_registers"),
	       "list naming set_xsave without set_registers: %s", err);
	tap_ok(kvmi_policy_parse_commands("all,-write_physical,change_gfn", &m, err, sizeof(err)) == -EINVAL &&
	       strstr(err, "write_physical"), "list naming change_gfn without write_physical: %s", err);
	tap_ok(kvmi_policy_parse_commands("set_registers,set_xsave", &m, err, sizeof(err)) == 0 &&
	       kvmi_policy_parse_commands("all,-set_registers", &m, err, sizeof(err)) == 0,
	       "set_xsave with set_registers, and all minus set_registers, are fine");
	tap_ok(kvmi_policy_parse_text("commands = set_xsave\ncommands = -set_registers\n", &p, err,
				      sizeof(err)) == -EINVAL && strstr(err, "SET_XSAVE"),
	       "policy file naming set_xsave without set_registers: %s", err);
}

/* Event replies: the values a reply would write. */
static void test_reply_filter(void)
{
	struct kvmi_policy p;
	struct kvmi_event_cr cr = { .cr = 3, .old_value = 0x1000, .new_value = 0x2000 };
	struct kvmi_event_msr msr = { .msr = 0x175, .old_value = 5, .new_value = 6 };
	struct kvmi_event_pf pf = { .gpa = 0x3000 };
	struct kvmi_event_pf_reply pr = { .ctx_addr = 0x3000, .ctx_size = 4, .ctx_data = { 1, 2, 3, 4 } };
	uint64_t v;

	kvmi_policy_allow_all(&p);
	v = 0x6666;
	tap_ok(!kvmi_policy_filter_reply(&p, KVMI_EVENT_CR, &cr, sizeof(cr), &v, sizeof(v)) && v == 0x6666,
	       "set_registers allowed: a CR reply's value is kept");
	tap_ok(!kvmi_policy_filter_reply(&p, KVMI_EVENT_PF, &pf, sizeof(pf), &pr, sizeof(pr)) &&
	       pr.ctx_size == 4, "write_physical allowed: ctx_data kept");
	p.commands &= ~(BIT(KVMI_SET_REGISTERS) | BIT(KVMI_WRITE_PHYSICAL));
	tap_ok(kvmi_policy_filter_reply(&p, KVMI_EVENT_CR, &cr, sizeof(cr), &v, sizeof(v)) && v == 0x2000,
	       "-set_registers: a CR value of the tool's becomes the guest's");
	v = 0x1000;
	tap_ok(!kvmi_policy_filter_reply(&p, KVMI_EVENT_CR, &cr, sizeof(cr), &v, sizeof(v)) && v == 0x1000,
	       "-set_registers: a CR veto (the old value) stays");
	v = 0x2000;
	tap_ok(!kvmi_policy_filter_reply(&p, KVMI_EVENT_CR, &cr, sizeof(cr), &v, sizeof(v)) && v == 0x2000,
	       "-set_registers: a CR reply letting the guest's value through stays");
	v = 0xbad;
	tap_ok(kvmi_policy_filter_reply(&p, KVMI_EVENT_MSR, &msr, sizeof(msr), &v, sizeof(v)) && v == 6,
	       "-set_registers: an MSR value of the tool's becomes the guest's");
	v = 5;
	tap_ok(!kvmi_policy_filter_reply(&p, KVMI_EVENT_MSR, &msr, sizeof(msr), &v, sizeof(v)) && v == 5,
	       "-set_registers: an MSR veto stays");
	tap_ok(kvmi_policy_filter_reply(&p, KVMI_EVENT_PF, &pf, sizeof(pf), &pr, sizeof(pr)) &&
	       pr.ctx_size == 0 && pr.ctx_addr == 0 && pr.ctx_data[0] == 0,
	       "-write_physical: a PF reply's ctx_data is dropped");
	v = 0xbad;
	tap_ok(!kvmi_policy_filter_reply(&p, KVMI_EVENT_BREAKPOINT, NULL, 0, &v, sizeof(v)) && v == 0xbad,
	       "other events' replies are left alone");
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
	test_writes();
	test_reply_filter();
	test_text();
	test_file();
	ret = tap_done();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		tap_diag("cannot remove %s", tmpdir);
	return ret;
}
