/* SPDX-License-Identifier: MIT */
/*
 * The soak's child processes: kvmi-vm (its output in a log file, killed
 * with the soak through PR_SET_PDEATHSIG) and the tool processes of
 * chaos.c; every child is registered so that any exit path kills and
 * reaps it.
 */
#include "soak.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 8

static pid_t children[MAX_CHILDREN];

void soak_register_child(pid_t pid)
{
	for (unsigned i = 0; i < MAX_CHILDREN; i++)
		if (!children[i]) {
			children[i] = pid;
			return;
		}
}

void soak_forget_child(pid_t pid)
{
	for (unsigned i = 0; i < MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

/* Async-signal-safe: called from the soak's signal handler too. */
void soak_kill_children(void)
{
	for (unsigned i = 0; i < MAX_CHILDREN; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

int soak_wait_pid(pid_t pid, int timeout_ms)
{
	long end = now_ms() + timeout_ms;

	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0 && errno != EINTR)
			return -1;
		if (now_ms() >= end)
			return -1;
		usleep(5000);
	}
}

int soak_vm_start(struct soak_vm *vm, const char *vmm, const char *elf, const char *dir,
		  unsigned timeout_s)
{
	struct kvmi_config cfg = { .size = sizeof(cfg), .io_timeout_ms = 10000 };
	char vcpus[8], timeout[16];
	pid_t parent = getpid();
	int err;

	snprintf(vm->sock, sizeof(vm->sock), "%s/vm%u.sock", dir, vm->index);
	if (vm->vsock) {
		/* A port per VM lifetime (like tests/integration/itest.c); the
		 * tool listens on any CID, kvmi-vm connects to the local one. */
		unsigned port = 20000 + ((unsigned)getpid() * 64 + vm->index % 64) % 40000;

		snprintf(vm->addr, sizeof(vm->addr), "vsock:any:%u", port);
		snprintf(vm->vmm_addr, sizeof(vm->vmm_addr), "vsock:1:%u", port);
	} else {
		snprintf(vm->addr, sizeof(vm->addr), "unix:%s", vm->sock);
		snprintf(vm->vmm_addr, sizeof(vm->vmm_addr), "%s", vm->addr);
	}
	snprintf(vm->log, sizeof(vm->log), "%s/vm%u.log", dir, vm->index);
	snprintf(vcpus, sizeof(vcpus), "%u", vm->vcpus);
	snprintf(timeout, sizeof(timeout), "%u", timeout_s);
	err = kvmi_listener_open(vm->addr, &cfg, &vm->l);
	if (err)
		return err;
	vm->pid = fork();
	if (vm->pid < 0) {
		err = -errno;
		kvmi_listener_close(vm->l);
		vm->l = NULL;
		return err;
	}
	if (vm->pid == 0) {
		int fd = open(vm->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		close(kvmi_listener_fd(vm->l));
		execl(vmm, vmm, "--guest", elf, "--introspector", vm->vmm_addr, "--vcpus", vcpus,
		      "--timeout", timeout, "--no-serial-input", "--unhook-timeout", "1", "-v", (char *)NULL);
		_exit(127);
	}
	soak_register_child(vm->pid);
	return 0;
}

static void vm_gone(struct soak_vm *vm)
{
	soak_forget_child(vm->pid);
	vm->pid = 0;
	if (vm->l)
		kvmi_listener_close(vm->l);
	vm->l = NULL;
}

int soak_vm_stop(struct soak_vm *vm, int timeout_s)
{
	int st;

	if (vm->pid <= 0)
		return -1;
	kill(vm->pid, SIGTERM);
	st = soak_wait_pid(vm->pid, timeout_s * 1000);
	if (st < 0) {
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, NULL, 0);
	}
	vm_gone(vm);
	return st;
}

void soak_vm_kill(struct soak_vm *vm)
{
	if (vm->pid > 0) {
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, NULL, 0);
	}
	vm_gone(vm);
}

bool soak_vm_alive(struct soak_vm *vm, int *status)
{
	int st;

	if (vm->pid <= 0)
		return false;
	if (waitpid(vm->pid, &st, WNOHANG) != vm->pid)
		return true;
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	soak_forget_child(vm->pid);
	vm->pid = 0;
	return false;
}

const char *soak_prefix = "soak: ";

void soak_say(const char *fmt, ...)
{
	va_list ap;

	fputs(soak_prefix, stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* Consecutive repeats of a line are printed once, with their count. */
static void tail_line(const char *prefix, const char *line, unsigned repeats)
{
	if (repeats > 1)
		soak_say("%s%s  [x%u]\n", prefix, line, repeats);
	else
		soak_say("%s%s\n", prefix, line);
}

void soak_tail(const char *path, unsigned last, const char *prefix)
{
	char line[512], prev[512] = "";
	unsigned total = 0, n = 0, rep = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		total += strcmp(line, prev) != 0;
		snprintf(prev, sizeof(prev), "%s", line);
	}
	rewind(f);
	prev[0] = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (rep && !strcmp(line, prev)) {
			rep++;
			continue;
		}
		if (rep && total - n++ <= last)
			tail_line(prefix, prev, rep);
		snprintf(prev, sizeof(prev), "%s", line);
		rep = 1;
	}
	if (rep)
		tail_line(prefix, prev, rep);
	fclose(f);
}

void soak_fail(struct soak_result *res, const char *fmt, ...)
{
	char msg[SOAK_MSG];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (res->failures < 8)
		soak_say("  failed: %s\n", msg);
	else if (res->failures == 8)
		soak_say("  (more failures in this round not shown)\n");
	fflush(stdout);
	if (!res->failures++)
		snprintf(res->what, sizeof(res->what), "%s", msg);
}

int soak_accept(struct soak_vm *vm, int timeout_ms, struct kvmi_dom **dom)
{
	return kvmi_listener_accept(vm->l, timeout_ms, dom);
}

int soak_reply(struct kvmi_dom *dom, const struct kvmi_event_msg *ev, uint8_t action)
{
	union {
		struct kvmi_event_pf_reply pf;
		struct kvmi_event_msr_reply msr;
	} r;
	size_t n = 0;

	if (!kvmi_event_needs_reply(ev))
		return 0;
	memset(&r, 0, sizeof(r));
	if (ev->event == KVMI_EVENT_PF) {
		n = sizeof(r.pf);
	} else if (ev->event == KVMI_EVENT_MSR) {
		r.msr.new_val = ev->specific.msr.new_value;
		n = sizeof(r.msr);
	}
	return kvmi_dom_reply_event(dom, ev, action, n ? &r : NULL, n);
}
