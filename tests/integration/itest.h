/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the end-to-end test programs in this folder: TAP output,
 * starting kvmi-vm with its output in a log file, waiting for it, reading
 * the log, and taking the next event from the client library.
 */
#ifndef KVMI_ITEST_H
#define KVMI_ITEST_H

#include <stdbool.h>
#include <sys/types.h>

#include <kvmi/kvmi.h>

/* TAP: checks so far and how many failed. */
extern int tap_n, tap_failed;

void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void skip(const char *why, const char *what);
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs argv[0] with argv (NULL-terminated), stdout and stderr to log. */
pid_t itest_spawn(const char *log, const char *const *argv);
/*
 * kvmi-vm --guest ELF --introspector ADDR --timeout SECS --no-serial-input
 * --vcpus VCPUS, then the extra arguments up to NULL; output to log.
 */
pid_t itest_start_guest(const char *log, const char *vmm, const char *elf, const char *addr,
			const char *timeout_s, const char *vcpus, ...) __attribute__((sentinel));
/* A kernel module parameter (/sys/module/.../parameters/...) as a boolean
 * (Y or a non-zero digit); -1 when it cannot be read. */
int itest_module_param(const char *path);
/* Exit status of pid (128 + signal when killed), or -1 after timeout_s
 * (the process is then killed). */
int itest_wait(pid_t pid, int timeout_s);
/* The log's lines as TAP diagnostics: those containing grep (all when
 * NULL), at most the last `last` of them (all when 0). */
void itest_show_log(const char *log, const char *grep, unsigned last);
bool itest_log_has(const char *log, const char *text);
/* The next event within timeout_ms, or NULL. */
struct kvmi_event_msg *itest_next_event(struct kvmi_dom *dom, int timeout_ms);

#endif
