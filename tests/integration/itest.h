/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the end-to-end test programs in this folder: TAP output,
 * a private scratch directory for sockets and logs, starting kvmi-vm (never
 * outliving the test), waiting for it, reading its log, taking the next
 * event from the client library, and groups of checks that each run
 * against their own kvmi-vm.
 *
 * Every kvmi-vm itest_spawn() starts gets PR_SET_PDEATHSIG(SIGKILL), and is
 * killed and reaped at exit and on a fatal signal (SIGINT, SIGTERM, SIGHUP,
 * SIGABRT, SIGSEGV, ...), when the scratch directory and every path
 * itest_path() named in it are removed too.
 */
#ifndef KVMI_ITEST_H
#define KVMI_ITEST_H

#include <stdbool.h>
#include <sys/types.h>

#include <kvmi/kvmi.h>

/* kvmi-vm's exit statuses (KVMI_VM_EXIT_*). */
#include "../../src/vmm/guest_abi.h"

/* Exit statuses of the test programs; TAP carries the detail. */
enum itest_exit {
	ITEST_EXIT_PASS = 0,       /* every check passed (or all skipped) */
	ITEST_EXIT_FAIL = 1,       /* some check failed */
	ITEST_EXIT_USAGE = 2,      /* bad command line */
	ITEST_EXIT_SETUP = 3,      /* the test could not set itself up (scratch directory) */
};

/* TAP: checks so far and how many failed. */
extern int tap_n, tap_failed;

/* One check.  Inside a group whose kvmi-vm has ended (see below) it is
 * reported as skipped instead. */
void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void skip(const char *why, const char *what);
/* A check of a known, documented failure (docs/limitations.md): reported as
 * TAP TODO when it fails, so that it stays visible but does not fail the
 * suite. */
void todo(int cond, const char *why, const char *what);
/*
 * A check that fails now and then under QEMU with hardware-KVM semantics
 * (the distro box), never under kvmi-vm nor on the host: QEMU not ending
 * after a tool's CRASH (docs/limitations.md).  There a failure is TAP TODO;
 * elsewhere it is ok().
 */
void itest_qemu_race(int cond, const char *vmm, const char *what);
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the plan; the program's exit status (ITEST_EXIT_PASS or _FAIL). */
int itest_done(void);

/*
 * Makes the scratch directory (mkdtemp, $TMPDIR or /tmp, named after
 * @prog) and installs the clean-up at exit and on fatal signals; ignores
 * SIGPIPE.  0, or -errno (then the test should end with ITEST_EXIT_SETUP).
 */
int itest_init(const char *prog);
/* "<scratch>/<name>" in buf (len bytes), removed at exit; NULL if too long. */
const char *itest_path(char *buf, size_t len, const char *name);
/* itest_path(), or name itself (in the working directory) when that fails. */
const char *itest_file(char *buf, size_t len, const char *name);

/* fork(): the child gets PR_SET_PDEATHSIG(SIGKILL) (and ends at once if
 * the test is already gone), the parent counts it among the processes to
 * kill and reap at exit. */
pid_t itest_fork(void);
/* Runs argv[0] with argv (NULL-terminated), stdout and stderr to log; the
 * child calls itest_child_hook first when it is set (e.g. to drop
 * capabilities before the VMM starts). */
pid_t itest_spawn(const char *log, const char *const *argv);
extern void (*itest_child_hook)(void);
/*
 * kvmi-vm --guest ELF --introspector ADDR --timeout SECS --no-serial-input
 * --vcpus VCPUS, then the extra arguments up to NULL; output to log.
 */
pid_t itest_start_guest(const char *log, const char *vmm, const char *elf, const char *addr,
			const char *timeout_s, const char *vcpus, ...) __attribute__((sentinel));
/*
 * The box's Linux guest (itest_linux.c): LINUX_DIR holds vmlinuz and
 * guest-initrd.gz.  itest_linux_skip prints the TAP skip line and returns
 * true when this host cannot run it with nested paging want_npt (0 or 1);
 * itest_start_linux boots it under vmm (kvmi-vm or kvmi-qemu), 2 vCPUs,
 * connecting to addr, output to log; kvmi-vm's --timeout is timeout_s.
 */
#define ITEST_LINUX_APPEND "console=ttyS0 reboot=k panic=-1 nokaslr quiet"
#define ITEST_LINUX_MEMORY "256M"
#define ITEST_LINUX_VCPUS  "2"
bool itest_linux_skip(const char *linux_dir, int want_npt);
pid_t itest_start_linux(const char *log, const char *vmm, const char *linux_dir, const char *addr,
			unsigned timeout_s);
/*
 * The frame of a Linux test: itest_linux_setup parses "TEST KVMI_VM
 * LINUX_DIR", takes the timeout from test->timeout_env (default
 * test->timeout_s), skips as itest_linux_skip does and makes the scratch
 * socket; it returns -1 to go on, or the exit status to end with.
 * itest_linux_start boots the guest; itest_linux_end_run checks the VMM's
 * exit status (its log on failure) and closes the listener;
 * itest_linux_done removes the socket and ends the TAP stream.
 */
struct itest_linux_test {
	const char *name, *sock_name, *timeout_env;
	unsigned timeout_s;
	int want_npt;
};
struct itest_linux {
	const char *vmm, *linux_dir;
	char sock_path[256], addr[280];
	unsigned timeout_s;
};
int itest_linux_setup(struct itest_linux *t, int argc, char **argv, const struct itest_linux_test *test);
pid_t itest_linux_start(const struct itest_linux *t, const char *log);
void itest_linux_end_run(int status, const char *log, struct kvmi_listener *l);
int itest_linux_done(const struct itest_linux *t);
/* vmm is kvmi-qemu (the guest runs under stock QEMU, $KVMI_TEST_QEMU or
 * qemu-system-x86_64), not kvmi-vm.  Exit statuses are kvmi-vm's either way. */
bool itest_is_qemu(const char *vmm);
/* A kernel module parameter (/sys/module/.../parameters/...) as a boolean
 * (Y or a non-zero digit); -1 when it cannot be read. */
int itest_module_param(const char *path);
/* Exit status of pid (128 + signal when killed), or -1 after timeout_s
 * (the process is then killed and reaped). */
int itest_wait(pid_t pid, int timeout_s);
/* SIGKILL and reap a process itest_spawn() started. */
void itest_kill(pid_t pid);
/* The log's lines as TAP diagnostics: those containing grep (all when
 * NULL), at most the last `last` of them (all when 0). */
void itest_show_log(const char *log, const char *grep, unsigned last);
bool itest_log_has(const char *log, const char *text);
/* The next event within timeout_ms, or NULL. */
struct kvmi_event_msg *itest_next_event(struct kvmi_dom *dom, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Groups: a few checks against their own kvmi-vm                      */
/* ------------------------------------------------------------------ */

struct itest_vm_opts {
	const char *vmm, *elf;
	const char *timeout_s, *vcpus;     /* --timeout, --vcpus */
	const char *name;                  /* --name, pinned on the listener with
					    * kvmi_config_expect_guest (NULL: the group's name) */
	const char *const *extra;          /* more kvmi-vm arguments (NULL-terminated), or NULL */
	const char *const *qemu_extra;     /* under QEMU: more QEMU arguments, or NULL */
	const struct kvmi_config *cfg;     /* the listener's (a key, ...), or NULL; without
					    * expectations of its own it expects `name` */
	bool vsock;                        /* AF_VSOCK over loopback instead of a unix socket */
	bool no_accept;                    /* the group accepts by itself (g->l is open) */
};

struct itest_group {
	char name[48];
	char sock[256], log[256];          /* in the scratch directory */
	char tool_addr[300], vmm_addr[300];/* the listener's, kvmi-vm's --introspector */
	struct kvmi_config cfg;            /* the listener's */
	struct kvmi_listener *l;
	struct kvmi_dom *dom;              /* the accepted guest (the group may replace it) */
	pid_t pid;                         /* kvmi-vm, 0 once reaped */
	int status;                        /* its exit status once reaped, else -1 */
	int failed_at_start;               /* tap_failed when the group began */
	bool gone;                         /* kvmi-vm ended under the checks: the rest is skipped */
	char gone_why[64];
};

/*
 * Starts a group: a listener on a fresh socket in the scratch directory,
 * kvmi-vm on it, and (unless o->no_accept) the accepted guest in g->dom.
 * When that fails, reports one failed check naming what failed, shows the
 * VMM's log, cleans up and returns false: the caller skips the group.
 */
bool itest_group_start(struct itest_group *g, const char *name, const struct itest_vm_opts *o);
/* Accepts the group's guest into g->dom (waiting at most timeout_s);
 * -ECHILD at once when kvmi-vm ended first. */
int itest_group_accept(struct itest_group *g, int timeout_s);
/* kvmi-vm still runs and (with g->dom set) the connection holds.  Reaps
 * a kvmi-vm that ended (g->status). */
bool itest_group_alive(struct itest_group *g);
/* kvmi-vm's exit status within timeout_s (-1: it was then killed). */
int itest_group_wait(struct itest_group *g, int timeout_s);
/* Closes the guest and the listener, kills a kvmi-vm still running, shows
 * its log if a check of the group failed. */
void itest_group_end(struct itest_group *g);

#endif
