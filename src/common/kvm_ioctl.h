/* SPDX-License-Identifier: MIT */
/*
 * kvm_ioctl.h - how the engine issues its KVM ioctls: a direct system
 * call, not glibc's ioctl().  A frontend that interposes ioctl() (the QEMU
 * library, src/qemu) then sees only its VMM's own calls, never the
 * engine's.  Same contract as ioctl(): -1 with errno on failure.
 */
#ifndef KVMI_COMMON_KVM_IOCTL_H
#define KVMI_COMMON_KVM_IOCTL_H

#include <sys/syscall.h>
#include <unistd.h>

static inline int kvm_ioctl_raw(int fd, unsigned long req, unsigned long arg)
{
	return (int)syscall(SYS_ioctl, fd, req, arg);
}
/* arg is a pointer or an integer, as with ioctl(). */
#define kvm_ioctl(fd, req, arg) kvm_ioctl_raw((fd), (unsigned long)(req), (unsigned long)(arg))

#endif
