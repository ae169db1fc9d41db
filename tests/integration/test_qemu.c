/* SPDX-License-Identifier: MIT */
/*
 * test_qemu - stock QEMU keeps working with a tool attached (kvmi-qemu):
 * QMP stop/cont, system_reset, migration to a file restored in a plain
 * QEMU, quit with UNHOOK, while the "dirty" payload writes a protected
 * page in a loop and the tool answers every pre-write event.  The
 * migration check compares the restored pages with the source's: the
 * engine performs the stores to the protected page itself, and only its
 * dirty-log merging gets them into the migration stream; the negative
 * control (KVMI_QEMU_NO_DIRTY_MERGE) shows the loss without it.
 *
 * Usage: test_qemu KVMI_QEMU GUEST_DIR  (TAP; skips without QEMU)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../guest/include/dirty_abi.h"
#include "itest.h"

static const char *vmm;
static char bios[512];          /* the payload: NAME.elf (itest finds NAME.bios) */
static char bios_image[512];    /* NAME.bios, for the plain QEMU */

/* ---- QMP ---------------------------------------------------------------- */

static int qmp_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = -1;

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	for (int i = 0; i < 200 && fd < 0; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			close(fd);
			fd = -1;
			usleep(50000);
		}
	}
	return fd;
}

/* One line (without events) within timeout_ms, or -1. */
static int qmp_line(int fd, char *buf, size_t size, int timeout_ms)
{
	size_t n = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (n + 1 < size && poll(&p, 1, timeout_ms) == 1) {
		if (read(fd, buf + n, 1) != 1)
			return -1;
		if (buf[n++] != '\n')
			continue;
		buf[n] = '\0';
		if (!strstr(buf, "\"event\""))
			return 0;
		n = 0;
	}
	return -1;
}

/* Sends QMP command `what` (with `args`, a JSON object, or NULL) and waits
 * for its answer, the line with its id; meanwhile answers every event of
 * dom with CONTINUE: a vCPU waiting for the tool returns to QEMU once
 * answered.  0 when QEMU returned, with the line in out. */
static int qmp(int fd, struct kvmi_dom *dom, const char *what, const char *args, char *out, size_t size)
{
	static char line[65536];
	static unsigned ids;
	char cmd[1024], tag[32];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = snprintf(cmd, sizeof(cmd), "{\"execute\":\"%s\"%s%s,\"id\":%u}\n", what,
			 args ? ",\"arguments\":" : "", args ? args : "", ++ids);

	snprintf(tag, sizeof(tag), "\"id\": %u}", ids);
	if (n <= 0 || (size_t)n >= sizeof(cmd) || write(fd, cmd, (size_t)n) != n)
		return -1;
	for (int i = 0; i < 3000; i++) {
		struct kvmi_event_msg *ev = dom ? itest_next_event(dom, 0) : NULL;

		if (ev) {
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			kvmi_event_free(ev);
		}
		if (poll(&p, 1, ev ? 0 : 10) != 1)
			continue;
		if (qmp_line(fd, line, sizeof(line), 1000)) {
			diag("QMP %s: the connection broke", what);
			return -1;
		}
		if (strstr(line, tag))
			break;
	}
	if (!strstr(line, tag)) {
		diag("QMP %s: no answer (last line: %.120s)", what, line);
		return -1;
	}
	if (out)
		snprintf(out, size, "%s", line);
	if (!strstr(line, "\"return\""))
		diag("QMP %s: %.200s", what, line);
	return strstr(line, "\"return\"") ? 0 : -1;
}

static int qmp_open(const char *path)
{
	char line[4096];
	int fd = qmp_connect(path);

	if (fd < 0 || qmp_line(fd, line, sizeof(line), 5000) || qmp(fd, NULL, "qmp_capabilities", NULL, NULL, 0)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A 64-bit word of guest memory through HMP's xp, or ~0. */
static uint64_t qmp_xp(int fd, uint64_t gpa)
{
	char args[128], out[4096], *p;

	snprintf(args, sizeof(args), "{\"command-line\":\"xp /1gx %#llx\"}", (unsigned long long)gpa);
	out[0] = '\0';
	if (qmp(fd, NULL, "human-monitor-command", args, out, sizeof(out))) {
		diag("xp %#llx: %.200s", (unsigned long long)gpa, out);
		return ~0ull;
	}
	p = strstr(out, ": 0x");
	return p ? strtoull(p + 2, NULL, 16) : ~0ull;
}

/* ---- the tool's side ------------------------------------------------------- */

/* Answers events for ms milliseconds; how many there were. */
static unsigned pump(struct kvmi_dom *dom, int ms)
{
	unsigned n = 0;

	for (int i = 0; i < ms / 10; i++) {
		struct kvmi_event_msg *ev = itest_next_event(dom, 10);

		if (ev) {
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			kvmi_event_free(ev);
			n++;
		}
	}
	return n;
}

static uint64_t read_u64(struct kvmi_dom *dom, uint64_t gpa)
{
	uint64_t v = ~0ull;

	kvmi_dom_read_physical(dom, gpa, &v, sizeof(v));
	return v;
}

static bool protect(struct kvmi_dom *dom)
{
	uint64_t gpa = DIRTY_A_GPA;
	uint8_t access = KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_X;

	return kvmi_dom_control_events(dom, 0, KVMI_EVENT_PF, true) == 0 &&
	       kvmi_dom_set_page_access(dom, &gpa, &access, 1, 0) == 0;
}

/* ---- groups ---------------------------------------------------------------- */

struct run {
	struct itest_group g;
	char qmp_path[300], file[300];
	int qmp;
};

static bool start(struct run *r, const char *name)
{
	/* a reset resets (the harness's -no-reboot would end QEMU) */
	static const char *qargs[] = { "-qmp", NULL, "-action", "reboot=reset", NULL };
	struct itest_vm_opts o = { .vmm = vmm, .elf = bios, .timeout_s = "120", .vcpus = "1",
				   .qemu_extra = qargs };
	char file[64];

	snprintf(file, sizeof(file), "%s.qmp", name);
	itest_path(r->qmp_path, sizeof(r->qmp_path), file);
	snprintf(file, sizeof(file), "%s.mig", name);
	itest_path(r->file, sizeof(r->file), file);
	{
		static char arg[400];

		snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", r->qmp_path);
		qargs[1] = arg;
	}
	r->qmp = -1;
	if (!itest_group_start(&r->g, name, &o))
		return false;
	r->qmp = qmp_open(r->qmp_path);
	ok(r->qmp >= 0, "%s: QMP answers", name);
	ok(r->qmp >= 0 && protect(r->g.dom), "%s: the tool write-protects the payload's page, PF events on", name);
	return r->qmp >= 0;
}

static void end(struct run *r)
{
	if (r->qmp >= 0)
		close(r->qmp);
	itest_group_end(&r->g);
}

/* A vCPU the tool keeps paused (its PAUSE_VCPU event unanswered) goes
 * back to QEMU for QMP stop, and is held again after cont. */
static void held_pause(struct kvmi_dom *dom, int qmp_fd)
{
	struct kvmi_event_msg *ev, *pause = NULL;
	uint64_t b;

	ok(kvmi_dom_pause_vcpu(dom, 0, false) == 0, "PAUSE_VCPU");
	for (int i = 0; i < 1000 && !pause; i++) {
		ev = itest_next_event(dom, 10);
		if (ev && ev->event == KVMI_EVENT_PAUSE_VCPU) {
			pause = ev;
		} else if (ev) {
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			kvmi_event_free(ev);
		}
	}
	ok(pause != NULL, "the PAUSE_VCPU event arrives; the tool leaves it unanswered");
	if (!pause)
		return;
	ok(qmp(qmp_fd, NULL, "stop", NULL, NULL, 0) == 0,
	   "QMP stop returns while the vCPU is held by the tool (it goes back to QEMU)");
	ok(qmp(qmp_fd, NULL, "cont", NULL, NULL, 0) == 0, "QMP cont");
	b = read_u64(dom, DIRTY_B_GPA);
	usleep(300000);
	ok(read_u64(dom, DIRTY_B_GPA) == b && !itest_next_event(dom, 0),
	   "after cont the vCPU is held again: the guest does not run");
	kvmi_dom_reply_event(dom, pause, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
	kvmi_event_free(pause);
	ok(pump(dom, 300) > 0 && read_u64(dom, DIRTY_B_GPA) != b, "the tool's reply lets it run");
}

/* stop, a vCPU command while QEMU keeps the vCPU parked, cont, reset. */
static void lifecycle(void)
{
	struct run r;
	struct kvmi_dom *dom;
	uint64_t b0, b1, rip = 0;
	struct kvmi_x86_regs regs;

	if (!start(&r, "lifecycle"))
		return;
	dom = r.g.dom;
	ok(pump(dom, 500) > 0, "PF events flow: the guest stores to the protected page");
	ok(qmp(r.qmp, dom, "stop", NULL, NULL, 0) == 0, "QMP stop returns with events pending");
	pump(dom, 200);
	b0 = read_u64(dom, DIRTY_B_GPA);
	ok(pump(dom, 300) == 0 && read_u64(dom, DIRTY_B_GPA) == b0, "stopped: no events, the guest does not run");
	if (kvmi_dom_get_registers(dom, 0, &regs, NULL, NULL, 0, NULL) == 0)
		rip = regs.rip;
	ok(rip != 0, "GET_REGISTERS of a vCPU QEMU keeps parked (rip %#llx)", (unsigned long long)rip);
	ok(qmp(r.qmp, dom, "cont", NULL, NULL, 0) == 0, "QMP cont");
	ok(pump(dom, 300) > 0 && read_u64(dom, DIRTY_B_GPA) != b0, "running again: events, the counter moves");
	ok(qmp(r.qmp, dom, "system_reset", NULL, NULL, 0) == 0, "QMP system_reset");
	pump(dom, 1500);
	b1 = read_u64(dom, DIRTY_B_GPA);
	ok(pump(dom, 500) > 0 && read_u64(dom, DIRTY_B_GPA) != b1,
	   "after the reset the guest runs its loop again, under the same protection");
	held_pause(dom, r.qmp);
	ok(kvmi_dom_control_vm_events(dom, KVMI_EVENT_UNHOOK, true) == 0, "the tool enables UNHOOK");
	{
		const char *q = "{\"execute\":\"quit\"}\n";     /* its answer races with the exit */
		struct kvmi_event_msg *ev = NULL;
		bool unhook = false;

		if (write(r.qmp, q, strlen(q)) != (ssize_t)strlen(q))
			diag("cannot send quit");
		for (int i = 0; i < 500 && !unhook; i++) {
			ev = itest_next_event(dom, 10);
			if (!ev)
				continue;
			unhook = ev->event == KVMI_EVENT_UNHOOK;
			kvmi_dom_reply_event(dom, ev, KVMI_EVENT_ACTION_CONTINUE, NULL, 0);
			kvmi_event_free(ev);
		}
		ok(unhook, "QMP quit: the tool gets UNHOOK first");
		kvmi_dom_close(dom);
		r.g.dom = NULL;
		ok(itest_group_wait(&r.g, 20) == KVMI_VM_EXIT_CRASH, "QEMU then exits (status 0)");
	}
	end(&r);
}

/* Migrates to a file and restores it in a plain QEMU (-S): the two pages
 * as the source left them.  1: equal, 0: not, -1: no answer. */
static int migrate(const char *name, bool merge)
{
	struct run r;
	char cmd[1024], out[65536], qmp2[300], arg[400];
	uint64_t a, b, a2, b2;
	int ret = -1, q2 = -1;
	pid_t dst = 0;

	if (merge)
		unsetenv("KVMI_QEMU_NO_DIRTY_MERGE");
	else
		setenv("KVMI_QEMU_NO_DIRTY_MERGE", "1", 1);
	if (!start(&r, name))
		return -1;
	pump(r.g.dom, 300);
	/* the file appears once cat has written all of it */
	snprintf(cmd, sizeof(cmd), "{\"uri\":\"exec:cat > %s.part && mv %s.part %s\"}", r.file, r.file, r.file);
	qmp(r.qmp, r.g.dom, "migrate-set-parameters", "{\"max-bandwidth\":10000000000}", NULL, 0);
	ok(qmp(r.qmp, r.g.dom, "migrate", cmd, NULL, 0) == 0, "%s: QMP migrate to a file", name);
	for (int i = 0; i < 1500; i++) {
		pump(r.g.dom, 20);
		int q = qmp(r.qmp, r.g.dom, "query-migrate", NULL, out, sizeof(out));

		if (q || strstr(out, "\"completed\"") || strstr(out, "\"failed\"") || strstr(out, "\"cancelled\""))
			break;
	}
	for (int i = 0; i < 500 && access(r.file, R_OK); i++)
		usleep(10000);
	ok(strstr(out, "\"completed\"") && !access(r.file, R_OK), "%s: the migration completed", name);
	if (!strstr(out, "\"completed\""))
		diag("query-migrate: %.300s", out);
	a = read_u64(r.g.dom, DIRTY_A_GPA);
	b = read_u64(r.g.dom, DIRTY_B_GPA);
	/* the plain QEMU: no library, no tool */
	itest_path(qmp2, sizeof(qmp2), "restored.qmp");
	snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", qmp2);
	snprintf(cmd, sizeof(cmd), "exec:cat %s", r.file);
	{
		const char *qemu = getenv("KVMI_TEST_QEMU");
		const char *argv[] = { qemu ? qemu : "qemu-system-x86_64", "-M", "q35", "-enable-kvm", "-cpu", "EPYC",
				       "-m", "256", "-smp", "1", "-object", "memory-backend-memfd,id=ram,size=256M",
				       "-machine", "memory-backend=ram", "-nodefaults", "-nographic", "-serial",
				       "null", "-monitor", "none", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
				       "-bios", bios_image, "-S", "-qmp", arg, "-incoming", cmd, NULL };

		char log[300];

		itest_path(log, sizeof(log), "restored.log");
		dst = itest_spawn(log, argv);
	}
	q2 = dst > 0 ? qmp_open(qmp2) : -1;
	for (int i = 0; q2 >= 0 && i < 300; i++) {
		if (qmp(q2, NULL, "query-status", NULL, out, sizeof(out)) || !strstr(out, "inmigrate"))
			break;
		usleep(20000);
	}
	a2 = q2 >= 0 ? qmp_xp(q2, DIRTY_A_GPA) : ~0ull;
	b2 = q2 >= 0 ? qmp_xp(q2, DIRTY_B_GPA) : ~0ull;
	if (a2 == ~0ull || b2 == ~0ull) {
		char log[300];

		diag("%s: the restoring QEMU does not answer on QMP", name);
		itest_show_log(itest_path(log, sizeof(log), "restored.log"), "qemu", 10);
	}
	diag("%s: source A %llu B %llu, restored A %llu B %llu", name, (unsigned long long)a, (unsigned long long)b,
	     (unsigned long long)a2, (unsigned long long)b2);
	if (a2 != ~0ull && b2 != ~0ull && b != 0)
		ret = a2 == a && b2 == b;
	if (q2 >= 0)
		close(q2);
	if (dst > 0)
		itest_kill(dst);
	end(&r);
	unsetenv("KVMI_QEMU_NO_DIRTY_MERGE");
	return ret;
}

int main(int argc, char **argv)
{
	const char *qemu = getenv("KVMI_TEST_QEMU");
	char which[600];
	int m;

	if (argc != 3) {
		fprintf(stderr, "usage: test_qemu KVMI_QEMU GUEST_DIR\n");
		return ITEST_EXIT_USAGE;
	}
	vmm = argv[1];
	snprintf(bios, sizeof(bios), "%s/dirty.elf", argv[2]);
	snprintf(bios_image, sizeof(bios_image), "%s/dirty.bios", argv[2]);
	snprintf(which, sizeof(which), "command -v %s >/dev/null 2>&1", qemu ? qemu : "qemu-system-x86_64");
	if (!itest_is_qemu(vmm) || access("/dev/kvm", R_OK | W_OK) || system(which)) {
		printf("1..0 # SKIP needs kvmi-qemu, QEMU and /dev/kvm\n");
		return 0;
	}
	if (itest_init("test_qemu"))
		return ITEST_EXIT_SETUP;
	lifecycle();
	m = migrate("migrate", true);
	ok(m == 1, "a migration restores exactly the source's pages, the engine's own stores included");
	m = migrate("migrate-nomerge", false);
	ok(m == 0, "negative control: without dirty-log merging the restored guest lost the engine's stores");
	return itest_done();
}
