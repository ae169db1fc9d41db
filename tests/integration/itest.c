/* SPDX-License-Identifier: MIT */
#include "itest.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

int tap_n, tap_failed;

/* ---- what to clean up: kvmi-vm processes, files, the scratch directory */

#define MAX_CHILDREN 32
#define MAX_PATHS    128

static volatile pid_t children[MAX_CHILDREN];
static char paths[MAX_PATHS][256];
static volatile sig_atomic_t nr_paths;
static char scratch[256];
static struct itest_group *cur_group;

static void add_child(pid_t pid)
{
	for (unsigned i = 0; i < MAX_CHILDREN; i++)
		if (!children[i]) {
			children[i] = pid;
			return;
		}
}

static void forget_child(pid_t pid)
{
	for (unsigned i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

static volatile sig_atomic_t keep_logs;

/* Async-signal-safe: kill, waitpid, unlink, rmdir. */
static void clean_up(void)
{
	for (unsigned i = 0; i < MAX_CHILDREN; i++) {
		pid_t pid = children[i];

		if (pid > 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			children[i] = 0;
		}
	}
	if (keep_logs)                  /* KVMI_TEST_KEEP: a debugging aid */
		return;
	for (sig_atomic_t i = 0; i < nr_paths; i++)
		unlink(paths[i]);
	if (scratch[0])
		rmdir(scratch);
}

static void on_fatal_signal(int sig)
{
	clean_up();
	signal(sig, SIG_DFL);
	raise(sig);
}

int itest_init(const char *prog)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL };
	const char *tmp = getenv("TMPDIR");
	struct sigaction sa;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	keep_logs = getenv("KVMI_TEST_KEEP") != NULL;
	if (snprintf(scratch, sizeof(scratch), "%s/%s.XXXXXX", tmp, prog) >= (int)sizeof(scratch) ||
	    !mkdtemp(scratch)) {
		int err = errno ? -errno : -ENAMETOOLONG;

		scratch[0] = 0;
		return err;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sigemptyset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atexit(clean_up);
	return 0;
}

const char *itest_path(char *buf, size_t len, const char *name)
{
	if (!scratch[0] || snprintf(buf, len, "%s/%s", scratch, name) >= (int)len ||
	    strlen(buf) >= sizeof(paths[0]) || nr_paths == MAX_PATHS)
		return NULL;
	for (sig_atomic_t i = 0; i < nr_paths; i++)
		if (!strcmp(paths[i], buf))
			return buf;
	strcpy(paths[nr_paths], buf);
	nr_paths = nr_paths + 1;
	return buf;
}

const char *itest_file(char *buf, size_t len, const char *name)
{
	return itest_path(buf, len, name) ? buf : name;
}

/* ---- TAP --------------------------------------------------------------- */

void ok(int cond, const char *fmt, ...)
{
	struct itest_group *g = cur_group;
	va_list ap;

	if (g && g->gone) {
		printf("ok %d - ", ++tap_n);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf(" # SKIP group %s: %s\n", g->name, g->gone_why);
		fflush(stdout);
		return;
	}
	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (cond)
		return;
	tap_failed++;
	if (g && g->pid > 0 && !itest_group_alive(g)) {
		if (g->pid > 0)
			snprintf(g->gone_why, sizeof(g->gone_why), "the connection to kvmi-vm broke");
		else
			snprintf(g->gone_why, sizeof(g->gone_why), "kvmi-vm ended (status %d)", g->status);
		diag("group %s: %s: the group's other checks are skipped", g->name, g->gone_why);
		g->gone = true;
	}
}

void todo(int cond, const char *why, const char *what)
{
	if (cond) {
		ok(1, "%s", what);
		return;
	}
	printf("not ok %d - %s # TODO %s\n", ++tap_n, what, why);
	fflush(stdout);
}

void itest_qemu_race(int cond, const char *vmm, const char *what)
{
	bool hw = !access("/sys/module/kvm_amd", F_OK) || !access("/sys/module/kvm_intel", F_OK);

	if (itest_is_qemu(vmm) && hw)
		todo(cond, "known race under QEMU with hardware KVM (docs/limitations.md)", what);
	else
		ok(cond, "%s", what);
}

void skip(const char *why, const char *what)
{
	printf("ok %d - %s # SKIP %s\n", ++tap_n, what, why);
	fflush(stdout);
}

void diag(const char *fmt, ...)
{
	va_list ap;

	if (cur_group && cur_group->gone)
		return;         /* the diagnostics of skipped checks */
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

int itest_done(void)
{
	printf("1..%d\n", tap_n);
	fflush(stdout);
	return tap_failed ? ITEST_EXIT_FAIL : ITEST_EXIT_PASS;
}

/* ---- processes --------------------------------------------------------- */

pid_t itest_fork(void)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	/* Never outlive the test, even when it is SIGKILLed. */
	if (pid == 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
		_exit(127);
	if (pid > 0)
		add_child(pid);
	return pid;
}

void (*itest_child_hook)(void);

pid_t itest_spawn(const char *log, const char *const *argv)
{
	pid_t pid = itest_fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (itest_child_hook)
			itest_child_hook();
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* ---- the frontend under test ------------------------------------------- */

static bool frontend_qemu;

bool itest_is_qemu(const char *vmm)
{
	const char *base = strrchr(vmm, '/');

	return !strcmp(base ? base + 1 : vmm, "kvmi-qemu");
}

/*
 * kvmi-vm's command line, or the same guest under stock QEMU through
 * kvmi-qemu: the payload's boot image (NAME.bios next to NAME.elf, see
 * tests/guest/README.md), its exit through isa-debug-exit, a guest crash
 * (a tool's CRASH, a triple fault) as a shutdown.  `intro` are kvmi-vm's
 * introspection options, which kvmi-qemu takes as they are.
 */
static unsigned guest_argv(const char **argv, unsigned max, const char *vmm, const char *elf,
			   const char *timeout_s, const char *vcpus, const char *name, const char *log)
{
	static char bios[512], serial[640];
	const char *qemu = getenv("KVMI_TEST_QEMU");
	unsigned n = 0;
	size_t len = strlen(elf);

	if (!itest_is_qemu(vmm)) {
		const char *a[] = { vmm, "--guest", elf, "--timeout", timeout_s, "--no-serial-input",
				    "--vcpus", vcpus, "--name", name };

		for (; n < sizeof(a) / sizeof(a[0]) && n < max; n++)
			argv[n] = a[n];
		return n - (name ? 0 : 2);
	}
	frontend_qemu = true;
	snprintf(serial, sizeof(serial), "file:%s.serial", log);
	snprintf(bios, sizeof(bios), "%.*s.bios", (int)(len > 4 && !strcmp(elf + len - 4, ".elf") ? len - 4 : len),
		 elf);
	{
		const char *a[] = { vmm, "--", qemu ? qemu : "qemu-system-x86_64", "-M", "q35", "-enable-kvm",
				    "-cpu", "EPYC", "-m", "256", "-smp", vcpus,
				    /* RAM in a memfd: tools may map it (docs/qemu.md) */
				    "-object", "memory-backend-memfd,id=ram,size=256M", "-machine", "memory-backend=ram", "-nodefaults", "-nographic",
				    "-serial", serial, "-monitor", "none", "-device",
				    "isa-debug-exit,iobase=0xf4,iosize=0x04", "-bios", bios, "-no-reboot",
				    "-action", "panic=shutdown", "-name", name };

		for (; n < sizeof(a) / sizeof(a[0]) && n < max; n++)
			argv[n] = a[n];
		return n - (name ? 0 : 2);
	}
}

/* Inserts the introspection options: after kvmi-vm's name, or before
 * kvmi-qemu's "--". */
static unsigned add_intro(const char **argv, unsigned n, unsigned max, const char *const *intro)
{
	unsigned k = 0, at = 1;

	while (intro[k])
		k++;
	if (n + k >= max)
		k = max - n - 1;
	memmove(argv + at + k, argv + at, (n - at) * sizeof(*argv));
	for (unsigned i = 0; i < k; i++)
		argv[at + i] = intro[i];
	return n + k;
}

pid_t itest_start_guest(const char *log, const char *vmm, const char *elf, const char *addr,
			const char *timeout_s, const char *vcpus, ...)
{
	const char *argv[48], *intro[24] = { "--introspector", addr };
	unsigned n = guest_argv(argv, 47, vmm, elf, timeout_s, vcpus, NULL, log), k = 2;
	va_list ap;

	va_start(ap, vcpus);
	for (const char *a; (a = va_arg(ap, const char *)) && k < 23;)
		intro[k++] = a;
	va_end(ap);
	intro[k] = NULL;
	n = add_intro(argv, n, 48, intro);
	argv[n] = NULL;
	return itest_spawn(log, argv);
}

int itest_module_param(const char *path)
{
	char buf[8] = "";
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return buf[0] == 'Y' || (buf[0] >= '1' && buf[0] <= '9');
}

/* As kvmi-vm's exit status (KVMI_VM_EXIT_*), whatever the frontend:
 * under QEMU the guest's status S is (S << 1) | 1 and 0 is a shutdown
 * after a crash (-no-reboot, -action panic=shutdown). */
static int decode_status(int st)
{
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);

	if (!frontend_qemu || !WIFEXITED(st))
		return code;
	return code == 0 ? KVMI_VM_EXIT_CRASH : (code & 1) ? code >> 1 : code;
}

int itest_wait(pid_t pid, int timeout_s)
{
	for (int i = 0; i < timeout_s * 100; i++) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid) {
			forget_child(pid);
			return decode_status(st);
		}
		usleep(10000);
	}
	itest_kill(pid);
	return -1;
}

void itest_kill(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	forget_child(pid);
}

/* ---- logs and events --------------------------------------------------- */

static void show_file(const char *path, const char *grep, unsigned last)
{
	char line[512];
	unsigned total = 0, n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!grep || strstr(line, grep))
			total++;
	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (grep && !strstr(line, grep))
			continue;
		if (!last || total - n <= last)
			diag("vmm: %s", line);
		n++;
	}
	fclose(f);
}

/* Under QEMU the guest's console is LOG.serial, apart from QEMU's and the
 * library's messages (its bytes would interleave with their lines). */
static const char *serial_of(const char *log, char *buf, size_t len)
{
	snprintf(buf, len, "%s.serial", log);
	return buf;
}

void itest_show_log(const char *log, const char *grep, unsigned last)
{
	char serial[600];

	show_file(log, grep, last);
	show_file(serial_of(log, serial, sizeof(serial)), grep, last);
}

static bool file_has(const char *path, const char *text)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

bool itest_log_has(const char *log, const char *text)
{
	char serial[600];

	return file_has(log, text) || file_has(serial_of(log, serial, sizeof(serial)), text);
}

struct kvmi_event_msg *itest_next_event(struct kvmi_dom *dom, int timeout_ms)
{
	struct kvmi_event_msg *ev = NULL;

	if (!dom || kvmi_dom_next_event(dom, timeout_ms, &ev))
		return NULL;
	return ev;
}

/* ---- groups ------------------------------------------------------------ */

/* Socket, log and addresses of a new group. */
static int group_paths(struct itest_group *g, const char *name, bool vsock)
{
	static unsigned serial;
	char file[80];

	snprintf(g->name, sizeof(g->name), "%s", name);
	snprintf(file, sizeof(file), "%s.log", name);
	if (!itest_path(g->log, sizeof(g->log), file))
		return -ENAMETOOLONG;
	snprintf(file, sizeof(file), "%s.sock", name);
	if (!itest_path(g->sock, sizeof(g->sock), file))
		return -ENAMETOOLONG;
	if (vsock) {
		unsigned port = 20000 + ((unsigned)getpid() * 64 + serial++) % 40000;

		snprintf(g->tool_addr, sizeof(g->tool_addr), "vsock:any:%u", port);
		snprintf(g->vmm_addr, sizeof(g->vmm_addr), "vsock:1:%u", port);
	} else {
		snprintf(g->tool_addr, sizeof(g->tool_addr), "unix:%s", g->sock);
		snprintf(g->vmm_addr, sizeof(g->vmm_addr), "unix:%s", g->sock);
	}
	return 0;
}

static pid_t group_spawn(struct itest_group *g, const struct itest_vm_opts *o, const char *name)
{
	const char *argv[64], *intro[32] = { "--introspector", g->vmm_addr };
	unsigned n = guest_argv(argv, 63, o->vmm, o->elf, o->timeout_s, o->vcpus, name, g->log), k = 2;

	for (unsigned i = 0; o->extra && o->extra[i] && k < 31; i++)
		intro[k++] = o->extra[i];
	intro[k] = NULL;
	n = add_intro(argv, n, 64, intro);
	for (unsigned i = 0; itest_is_qemu(o->vmm) && o->qemu_extra && o->qemu_extra[i] && n < 63; i++)
		argv[n++] = o->qemu_extra[i];
	argv[n] = NULL;
	return itest_spawn(g->log, argv);
}

bool itest_group_start(struct itest_group *g, const char *name, const struct itest_vm_opts *o)
{
	const char *vm_name = o->name ? o->name : name;
	const char *what = "paths in the scratch directory";
	int err;

	memset(g, 0, sizeof(*g));
	g->status = -1;
	g->failed_at_start = tap_failed;
	err = group_paths(g, name, o->vsock);
	if (!err) {
		what = "a listener for the guest";
		if (o->cfg)
			memcpy(&g->cfg, o->cfg, o->cfg->size < sizeof(g->cfg) ? o->cfg->size : sizeof(g->cfg));
		g->cfg.size = sizeof(g->cfg);
		if (!g->cfg.expect)
			err = kvmi_config_expect_guest(&g->cfg, vm_name, NULL);
		if (!err)
			err = kvmi_listener_open(g->tool_addr, &g->cfg, &g->l);
	}
	if (!err) {
		what = "kvmi-vm";
		g->pid = group_spawn(g, o, vm_name);
		err = g->pid > 0 ? 0 : -errno;
	}
	if (!err && !o->no_accept) {
		what = "kvmi-vm connecting and its handshake";
		err = itest_group_accept(g, 20);
	}
	if (!err) {
		cur_group = g;
		return true;
	}
	itest_group_alive(g);
	if (err == -ECHILD)
		ok(0, "group %s: kvmi-vm ended (status %d) before it connected: the group's checks are skipped",
		   name, g->status);
	else
		ok(0, "group %s: %s failed (%s): the group's checks are skipped", name, what, kvmi_strerror(err));
	itest_group_end(g);
	return false;
}

int itest_group_accept(struct itest_group *g, int timeout_s)
{
	int err = -ETIMEDOUT;

	/* In slices: a kvmi-vm that ended without connecting fails at once. */
	for (int i = 0; i < timeout_s * 10 && err == -ETIMEDOUT; i++) {
		if (!itest_group_alive(g))
			return -ECHILD;
		err = kvmi_listener_accept(g->l, 100, &g->dom);
	}
	return err;
}

bool itest_group_alive(struct itest_group *g)
{
	int st;

	if (g->pid > 0 && waitpid(g->pid, &st, WNOHANG) == g->pid) {
		forget_child(g->pid);
		g->status = decode_status(st);
		g->pid = 0;
	}
	return g->pid > 0 && (!g->dom || kvmi_dom_is_connected(g->dom));
}

int itest_group_wait(struct itest_group *g, int timeout_s)
{
	if (g->pid > 0) {
		g->status = itest_wait(g->pid, timeout_s);
		g->pid = 0;
	}
	return g->status;
}

void itest_group_end(struct itest_group *g)
{
	if (cur_group == g)
		cur_group = NULL;
	if (g->dom)
		kvmi_dom_close(g->dom);
	g->dom = NULL;
	if (g->pid > 0)
		itest_kill(g->pid);
	g->pid = 0;
	if (g->l)
		kvmi_listener_close(g->l);
	g->l = NULL;
	if (tap_failed > g->failed_at_start)
		itest_show_log(g->log, NULL, 0);
	if (!keep_logs)
		unlink(g->log);
	unlink(g->sock);
}
