/* SPDX-License-Identifier: MIT */
#include "itest.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int tap_n, tap_failed;

void ok(int cond, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
}

void skip(const char *why, const char *what)
{
	printf("ok %d - %s # SKIP %s\n", ++tap_n, what, why);
	fflush(stdout);
}

void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

pid_t itest_spawn(const char *log, const char *const *argv)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

pid_t itest_start_guest(const char *log, const char *vmm, const char *elf, const char *addr,
			const char *timeout_s, const char *vcpus, ...)
{
	const char *argv[32] = {
		vmm, "--guest", elf, "--introspector", addr, "--timeout", timeout_s,
		"--no-serial-input", "--vcpus", vcpus,
	};
	unsigned n = 10;
	va_list ap;

	va_start(ap, vcpus);
	for (const char *a; (a = va_arg(ap, const char *)) && n < 31;)
		argv[n++] = a;
	va_end(ap);
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

int itest_wait(pid_t pid, int timeout_s)
{
	for (int i = 0; i < timeout_s * 10; i++) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

void itest_show_log(const char *log, const char *grep, unsigned last)
{
	char line[512];
	unsigned total = 0, n = 0;
	FILE *f = fopen(log, "r");

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

bool itest_log_has(const char *log, const char *text)
{
	char line[512];
	bool found = false;
	FILE *f = fopen(log, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

struct kvmi_event_msg *itest_next_event(struct kvmi_dom *dom, int timeout_ms)
{
	struct kvmi_event_msg *ev = NULL;

	if (kvmi_dom_next_event(dom, timeout_ms, &ev))
		return NULL;
	return ev;
}
