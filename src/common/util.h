/* SPDX-License-Identifier: MIT */
/* Logging and small helpers shared by the engine, the frontends and kvmi-vm. */
#ifndef KVMI_VM_UTIL_H
#define KVMI_VM_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a)   (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* Messages go to stderr, prefixed "kvmi-vm: ".  LOG_INFO and up are shown by
 * default; -v adds LOG_DEBUG. */
extern int vmm_log_level;
/* The program name in front of every line ("kvmi-vm"). */
extern const char *vmm_log_name;
void vmm_log(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pr_err(...)   vmm_log(LOG_ERROR, __VA_ARGS__)
#define pr_warn(...)  vmm_log(LOG_WARN, __VA_ARGS__)
#define pr_info(...)  vmm_log(LOG_INFO, __VA_ARGS__)
#define pr_debug(...) vmm_log(LOG_DEBUG, __VA_ARGS__)

/* "256M", "1G", "4096", "64k" -> bytes.  0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);
/* Decimal/hex unsigned with an inclusive upper bound.  0 or -EINVAL/-ERANGE. */
int parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Formats a message into err (errlen bytes) and returns code: for parsers
 * that report why they refused their input. */
int fail(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Starts a thread with every signal blocked (it unblocks what it wants),
 * so that process signals stay with the main thread.  0 or -errno. */
int thread_start_blocked(pthread_t *t, void *(*fn)(void *), void *arg);

/* Reads a whole file into a malloc'ed buffer.  0 or -errno. */
int read_file(const char *path, uint8_t **data, size_t *size);

/* KVM_GET_SUPPORTED_CPUID on the /dev/kvm fd (a direct system call, see
 * kvm_ioctl.h), grown until it fits; free() it.  NULL with errno set. */
struct kvm_cpuid2;
struct kvm_cpuid2 *kvm_supported_cpuid(int kvm_fd);

#endif
