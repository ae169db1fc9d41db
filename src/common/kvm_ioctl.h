/* SPDX-License-Identifier: MIT */
/*
 * kvm_ioctl.h - how the engine issues its KVM ioctls: a direct system
 * call, not glibc's ioctl().  A frontend that interposes ioctl() (the QEMU
 * library, src/qemu) then sees only its VMM's own calls, never the
 * engine's.  Same contract as ioctl(): -1 with errno on failure.
 *
 * Each thread keeps a tally of the ioctls it issued this way and the time
 * they took (CLOCK_MONOTONIC around the call: two vDSO reads, tens of ns
 * against microseconds per ioctl), so that a frontend can say what the
 * engine's work on one exit cost (kvmi-vm logs it at debug level; the
 * benchmarks read it there).
 */
#ifndef KVMI_COMMON_KVM_IOCTL_H
#define KVMI_COMMON_KVM_IOCTL_H

#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct kvm_ioctl_tally {
	uint64_t n;             /* ioctls issued through kvm_ioctl() */
	uint64_t ns;            /* their time, summed */
};
/* This thread's tally (util.c). */
extern __thread struct kvm_ioctl_tally kvm_ioctl_tally;

static inline uint64_t kvm_ioctl_now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static inline int kvm_ioctl_raw(int fd, unsigned long req, unsigned long arg)
{
	uint64_t t0 = kvm_ioctl_now_ns();
	int ret = (int)syscall(SYS_ioctl, fd, req, arg), err = errno;

	kvm_ioctl_tally.ns += kvm_ioctl_now_ns() - t0;
	kvm_ioctl_tally.n++;
	errno = err;
	return ret;
}
/* arg is a pointer or an integer, as with ioctl(). */
#define kvm_ioctl(fd, req, arg) kvm_ioctl_raw((fd), (unsigned long)(req), (unsigned long)(arg))

#endif
