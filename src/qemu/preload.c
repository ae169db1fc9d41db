/* SPDX-License-Identifier: MIT */
/*
 * preload.c - the symbols libkvmi-qemu interposes in QEMU (ioctl,
 * sigaction), its constructor and destructor, and the dispatch of QEMU's
 * KVM ioctls: which descriptor is /dev/kvm, the VM or a vCPU, and which of
 * their calls the engine must see.  Every other call goes straight to the
 * kernel.  The engine's own KVM calls never come through here (they are
 * direct system calls, src/common/kvm_ioctl.h).
 */
#include "kq.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine.h"
#include "util.h"

struct kq_state kq = {
	.kvm_fd = -1,
	.vm_fd = -1,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.slot_op_lock = PTHREAD_MUTEX_INITIALIZER,
	.job_lock = PTHREAD_MUTEX_INITIALIZER,
	.job_cond = PTHREAD_COND_INITIALIZER,
};

long kq_sys_ioctl(int fd, unsigned long req, unsigned long arg)
{
	return syscall(SYS_ioctl, fd, req, arg);
}

/* The engine, once QEMU has its VM.  On failure QEMU goes on without it. */
static void create_engine(int kvm_fd, int vm_fd)
{
	struct kvmi_engine_config cfg;
	struct kvm_cpuid2 *cpuid = NULL;
	int err;

	memset(&cfg, 0, sizeof(cfg));
	kq.kvm_fd = kvm_fd;
	kq.vm_fd = vm_fd;
	if (kq_slots_init() || kq_run_init()) {
		kq_disable("cannot set up memslot or vCPU bookkeeping");
		return;
	}
	err = intro_config_build(&kq.opts, "qemu", &cfg);
	if (!err) {
		cfg.ops = &kq_host_ops;
		cfg.host = &kq;
		cfg.kvm_fd = kvm_fd;
		cfg.vm_fd = vm_fd;
		cfg.max_vcpus = kq.smp_max ? kq.smp_max : KQ_MAX_VCPUS;
		/* the start-up probes' guest gets XSAVE when KVM offers it;
		 * the engine keeps the pointer (freed with the process) */
		cpuid = kvm_supported_cpuid(kvm_fd);
		cfg.cpuid = cpuid;
		err = kvmi_engine_create(&cfg, &kq.e);
	}
	intro_config_release(&cfg);
	if (err) {
		kq.e = NULL;
		kq_disable("the introspection engine could not start");
		return;
	}
	pr_info("introspection: connecting to %s as '%s'", kq.opts.address, cfg.name);
}

static long vm_ioctl(int fd, unsigned long req, unsigned long arg)
{
	switch ((uint32_t)req) {
	case KVM_CREATE_VCPU:
		return kq_create_vcpu(fd, arg);
	case KVM_SET_USER_MEMORY_REGION:
	case KQ_SET_USER_MEMORY_REGION2:
		return kq_set_memory_region(req, (void *)arg);
	case KVM_GET_DIRTY_LOG:
		return kq_get_dirty_log((struct kvm_dirty_log *)arg);
	case KVM_CLEAR_DIRTY_LOG:
		/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 is hidden from QEMU */
		errno = EINVAL;
		return -1;
	case KVM_X86_SET_MSR_FILTER: {
		int err = kvmi_engine_set_host_msr_filter(kq.e, (const struct kvm_msr_filter *)arg);

		if (err) {
			errno = -err;
			return -1;
		}
		return 0;
	}
	case KVM_CHECK_EXTENSION:
		return kq_check_extension(fd, req, (long)arg);
	default:
		return kq_sys_ioctl(fd, req, arg);
	}
}

/* Calls after which the engine's copy of the vCPU's registers is stale. */
static bool writes_vcpu_state(uint32_t req)
{
	switch (req) {
	case KVM_SET_REGS: case KVM_SET_SREGS: case KVM_SET_MSRS: case KVM_SET_FPU:
	case KVM_SET_XSAVE: case KVM_SET_XCRS: case KVM_SET_VCPU_EVENTS: case KVM_SET_DEBUGREGS:
	case KVM_SET_MP_STATE:
		return true;
	default:
		return false;
	}
}

static long vcpu_ioctl(struct kq_vcpu *c, unsigned long req, unsigned long arg)
{
	long ret;

	switch ((uint32_t)req) {
	case KVM_RUN:
		return kq_vcpu_run(c);
	case KVM_SET_GUEST_DEBUG: {
		int err = kvmi_engine_set_host_guest_debug(c->ev, (const struct kvm_guest_debug *)arg);

		if (err) {
			errno = -err;
			return -1;
		}
		return 0;
	}
	case KVM_GET_REGS:
		ret = kq_sys_ioctl(c->fd, req, arg);
		if (ret >= 0) {
			c->qemu_regs = *(const struct kvm_regs *)arg;
			c->qemu_regs_valid = true;
		}
		return ret;
	case KVM_SET_REGS:
		/* QEMU writing back what it read changes nothing of its own;
		 * skipped, it cannot undo the engine's writes since. */
		if (c->qemu_regs_valid && !memcmp(&c->qemu_regs, (const void *)arg, sizeof(c->qemu_regs)))
			return 0;
		pr_debug("vcpu %u: QEMU sets the registers (rip %#llx rbx %#llx)", c->idx,
			 (unsigned long long)((const struct kvm_regs *)arg)->rip,
			 (unsigned long long)((const struct kvm_regs *)arg)->rbx);
		c->qemu_regs_valid = false;
		break;
	default:
		break;
	}
	ret = kq_sys_ioctl(c->fd, req, arg);
	if (ret >= 0 && writes_vcpu_state((uint32_t)req))
		kvmi_engine_vcpu_regs_changed(c->ev);
	return ret;
}

static long kvm_call(int fd, unsigned long req, unsigned long arg)
{
	struct kq_vcpu *c;
	long ret;

	if (fd == kq.vm_fd)
		return vm_ioctl(fd, req, arg);
	c = kq_vcpu_of_fd(fd);
	if (c)
		return vcpu_ioctl(c, req, arg);
	switch ((uint32_t)req) {
	case KVM_CREATE_VM:
		ret = kq_sys_ioctl(fd, req, arg);
		if (ret >= 0 && kq.vm_fd < 0 && !atomic_load(&kq.off))
			create_engine(fd, (int)ret);
		return ret;
	case KVM_CHECK_EXTENSION:
		return kq_check_extension(fd, req, (long)arg);
	default:
		return kq_sys_ioctl(fd, req, arg);
	}
}

int ioctl(int fd, unsigned long req, ...)
{
	unsigned long arg;
	va_list ap;

	va_start(ap, req);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	if (_IOC_TYPE((uint32_t)req) != KVMIO || !kq.configured || atomic_load(&kq.off))
		return (int)kq_sys_ioctl(fd, req, arg);
	if (kq.vm_fd >= 0 && !kq.e)
		return (int)kq_sys_ioctl(fd, req, arg);
	return (int)kvm_call(fd, req, arg);
}

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	static int (*real)(int, const struct sigaction *, struct sigaction *);

	if (!real)
		real = (int (*)(int, const struct sigaction *, struct sigaction *))dlsym(RTLD_NEXT, "sigaction");
	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	return kq_wrap_sigaction(sig, act, old, real);
}

__attribute__((constructor)) static void kq_init(void)
{
	kq_config_load();
}

/* QEMU is exiting (exit() may come from any of its threads, a vCPU's
 * included): UNHOOK for a tool that asked for it (bounded), held vCPUs go
 * on; the threads are not joined (one may be in a handshake with a tool
 * that does not answer), the process ends them. */
__attribute__((destructor)) static void kq_fini(void)
{
	if (!kq.e)
		return;
	if (atomic_load(&kq.started))
		kvmi_engine_unhook(kq.e);
	kvmi_engine_vm_stopping(kq.e);
}
