/* SPDX-License-Identifier: MIT */
/* vCPU threads: set-up, the run loop and its exit router, kick/pause. */
#include "vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "boot/boot.h"
#include "engine.h"
#include "kvm_ioctl.h"
#include "util.h"
#include "vm.h"

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI    0x4
#define APIC_MODE_EXTINT 0x7

static void kick_handler(int sig)
{
	(void)sig; /* only here to make KVM_RUN return -EINTR */
}

int vcpu_signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}

static int set_cpuid(struct vcpu *vcpu)
{
	const struct kvm_cpuid2 *src = vcpu->vm->cpuid;
	size_t sz = sizeof(*src) + src->nent * sizeof(src->entries[0]);
	struct kvm_cpuid2 *c = malloc(sz);
	int err = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, src, sz);
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1: /* initial APIC id, logical processor count */
			e->ebx = (e->ebx & 0x0000ffffu) | (vcpu->id << 24) |
				 ((vcpu->vm->nr_vcpus & 0xff) << 16);
			/* "running under a hypervisor": guests then look for the
			 * KVM leaves (kvmclock, paravirt features). */
			e->ecx |= 1u << 31;
			break;
		case 0xb:
		case 0x1f: /* x2APIC id */
			e->edx = vcpu->id;
			break;
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0)
		err = -errno;
	free(c);
	return err;
}

/* Virtual-wire mode, as firmware leaves it: PIC interrupts through LINT0. */
static int set_lapic_lint(struct vcpu *vcpu)
{
	struct kvm_lapic_state s;
	uint32_t *lvt0 = (uint32_t *)&s.regs[APIC_LVT0];
	uint32_t *lvt1 = (uint32_t *)&s.regs[APIC_LVT1];

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &s) < 0)
		return -errno;
	*lvt0 = (*lvt0 & ~0x700u & ~0x10000u) | (APIC_MODE_EXTINT << 8);
	*lvt1 = (*lvt1 & ~0x700u & ~0x10000u) | (APIC_MODE_NMI << 8);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &s) < 0)
		return -errno;
	return 0;
}

int vcpu_init(struct vm *vm, struct vcpu *vcpu, unsigned id)
{
	void *run;
	int err;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	atomic_init(&vcpu->state, VCPU_CREATED);
	atomic_init(&vcpu->pause_request, false);
	pthread_cond_init(&vcpu->wake, NULL);
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0) {
		err = -errno;
		pr_err("KVM_CREATE_VCPU %u: %s", id, strerror(errno));
		return err;
	}
	run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu->fd, 0);
	if (run == MAP_FAILED) {
		err = -errno;
		pr_err("mmap of vCPU %u run area: %s", id, strerror(errno));
		goto err_close;
	}
	vcpu->run = run;
	err = set_cpuid(vcpu);
	if (err) {
		pr_err("KVM_SET_CPUID2 on vCPU %u: %s", id, strerror(-err));
		goto err_unmap;
	}
	err = set_lapic_lint(vcpu);
	if (err) {
		pr_err("LAPIC set-up of vCPU %u: %s", id, strerror(-err));
		goto err_unmap;
	}
	return 0;

err_unmap:
	munmap(vcpu->run, (size_t)vm->run_size);
	vcpu->run = NULL;
err_close:
	close(vcpu->fd);
	vcpu->fd = -1;
	return err;
}

void vcpu_destroy(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, (size_t)vcpu->vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
	if (vcpu->vm)
		pthread_cond_destroy(&vcpu->wake);
	vcpu->vm = NULL;
}

/* vm->lock held: wake whoever waits for this vCPU's condition. */
void vcpu_notify_locked(struct vcpu *vcpu)
{
	pthread_cond_broadcast(&vcpu->wake);
}

void vcpu_wake(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	pthread_mutex_lock(&vm->lock);
	vcpu_notify_locked(vcpu);
	pthread_mutex_unlock(&vm->lock);
}

enum vcpu_state vcpu_state(const struct vcpu *vcpu)
{
	return (enum vcpu_state)atomic_load(&vcpu->state);
}

void vcpu_kick(struct vcpu *vcpu)
{
	if (!vcpu->run)
		return;
	/* The flag covers a kick that lands before KVM_RUN is entered, the
	 * signal one that lands while the guest runs. */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	if (atomic_load(&vcpu->thread_started) && !pthread_equal(vcpu->thread, pthread_self()))
		pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu_pause(struct vcpu *vcpu)
{
	atomic_store(&vcpu->pause_request, true);
	vcpu_kick(vcpu);
}

void vcpu_resume(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	pthread_mutex_lock(&vm->lock);
	atomic_store(&vcpu->pause_request, false);
	vcpu_notify_locked(vcpu);
	pthread_mutex_unlock(&vm->lock);
}

static const char *exit_reason_name(uint32_t r)
{
	static const char *const names[] = {
		[KVM_EXIT_UNKNOWN] = "UNKNOWN", [KVM_EXIT_EXCEPTION] = "EXCEPTION",
		[KVM_EXIT_IO] = "IO", [KVM_EXIT_HYPERCALL] = "HYPERCALL",
		[KVM_EXIT_DEBUG] = "DEBUG", [KVM_EXIT_HLT] = "HLT", [KVM_EXIT_MMIO] = "MMIO",
		[KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN", [KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
		[KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY", [KVM_EXIT_INTR] = "INTR",
		[KVM_EXIT_SET_TPR] = "SET_TPR", [KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
		[KVM_EXIT_NMI] = "NMI", [KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
		[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT", [KVM_EXIT_X86_RDMSR] = "X86_RDMSR",
		[KVM_EXIT_X86_WRMSR] = "X86_WRMSR",
	};

	return r < ARRAY_SIZE(names) && names[r] ? names[r] : "?";
}

void vcpu_dump_state(struct vcpu *vcpu, const char *why)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	pr_err("vcpu %u: %s", vcpu->id, why);
	if (ioctl(vcpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(vcpu->fd, KVM_GET_SREGS, &s) < 0) {
		pr_err("vcpu %u: cannot read registers: %s", vcpu->id, strerror(errno));
		return;
	}
	pr_err("  rip %016llx  rsp %016llx  rflags %016llx", r.rip, r.rsp, r.rflags);
	pr_err("  rax %016llx  rbx %016llx  rcx %016llx  rdx %016llx", r.rax, r.rbx, r.rcx, r.rdx);
	pr_err("  rsi %016llx  rdi %016llx  rbp %016llx  r8  %016llx", r.rsi, r.rdi, r.rbp, r.r8);
	pr_err("  r9  %016llx  r10 %016llx  r11 %016llx  r12 %016llx", r.r9, r.r10, r.r11, r.r12);
	pr_err("  r13 %016llx  r14 %016llx  r15 %016llx", r.r13, r.r14, r.r15);
	pr_err("  cs %04x (dpl %u, l %u)  ss %04x  cr0 %llx  cr2 %llx  cr3 %llx  cr4 %llx  efer %llx",
	       s.cs.selector, s.cs.dpl, s.cs.l, s.ss.selector, s.cr0, s.cr2, s.cr3, s.cr4, s.efer);
	pr_err("  gdt %llx/%x  idt %llx/%x", s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
}

static void handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			if (!bus_write(&vcpu->vm->pio, vcpu, run->io.port, data, run->io.size))
				pr_debug("vcpu %u: unclaimed out%u port %#x", vcpu->id,
					 run->io.size * 8, run->io.port);
		} else if (!bus_read(&vcpu->vm->pio, vcpu, run->io.port, data, run->io.size)) {
			pr_debug("vcpu %u: unclaimed in%u port %#x", vcpu->id, run->io.size * 8,
				 run->io.port);
		}
	}
}

static void handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	if (run->mmio.len > sizeof(run->mmio.data))
		return;
	if (run->mmio.is_write)
		bus_write(&vcpu->vm->mmio, vcpu, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
	else
		bus_read(&vcpu->vm->mmio, vcpu, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
}

static void handle_internal_error(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	char why[256];
	int n;

	n = snprintf(why, sizeof(why), "KVM internal error, suberror %u%s", run->internal.suberror,
		     run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
			     " (instruction emulation failed)" : "");
	for (uint32_t i = 0; i < run->internal.ndata && i < 16 && n > 0 && (size_t)n < sizeof(why); i++)
		n += snprintf(why + n, sizeof(why) - (size_t)n, "%s%llx", i ? " " : ", data ",
			      (unsigned long long)run->internal.data[i]);
	vcpu_dump_state(vcpu, why);
	vm_request_stop(vcpu->vm, KVMI_VM_EXIT_CRASH);
}

static void handle_system_event(struct vcpu *vcpu)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		pr_info("guest powered off (system event)");
		vm_request_stop(vcpu->vm, KVMI_VM_EXIT_OK);
		break;
	case KVM_SYSTEM_EVENT_RESET:
		pr_info("guest requested reset (system event); exiting");
		vm_request_stop(vcpu->vm, KVMI_VM_EXIT_OK);
		break;
	default:
		vcpu_dump_state(vcpu, "guest crashed (system event)");
		vm_request_stop(vcpu->vm, KVMI_VM_EXIT_CRASH);
		break;
	}
}

/* The exit router: one switch; devices never see kvm_run. */
static void handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	char why[128];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(vcpu);
		break;
	case KVM_EXIT_MMIO:
		handle_mmio(vcpu);
		break;
	case KVM_EXIT_INTR:
	case KVM_EXIT_IRQ_WINDOW_OPEN:
		break;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; treat as a spurious wake-up. */
		break;
	case KVM_EXIT_SHUTDOWN:
		vcpu_dump_state(vcpu, "triple fault (KVM_EXIT_SHUTDOWN)");
		vm_request_stop(vcpu->vm, KVMI_VM_EXIT_CRASH);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		handle_internal_error(vcpu);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(why, sizeof(why), "VM entry failed, hardware reason %#llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vcpu_dump_state(vcpu, why);
		vm_request_stop(vcpu->vm, KVMI_VM_EXIT_CRASH);
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(vcpu);
		break;
	case KVM_EXIT_X86_WRMSR:
	case KVM_EXIT_X86_RDMSR:
		/* kvmi-vm filters no MSR of its own (the engine's exits never
		 * get here): as the CPU would for an MSR it does not have. */
		run->msr.error = 1;
		break;
	case KVM_EXIT_DEBUG:
		break;  /* kvmi-vm debugs nothing itself */
	default:
		snprintf(why, sizeof(why), "unexpected exit reason %u (%s)", run->exit_reason,
			 exit_reason_name(run->exit_reason));
		vcpu_dump_state(vcpu, why);
		vm_request_stop(vcpu->vm, KVMI_VM_EXIT_CRASH);
		break;
	}
}

/* Parks the thread while paused or done; returns false when the VM stops. */
static bool vcpu_wait_runnable(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;
	bool run;

	pthread_mutex_lock(&vm->lock);
	for (;;) {
		if (vcpu->intro && kvmi_engine_vcpu_has_jobs(vcpu->intro)) {
			pthread_mutex_unlock(&vm->lock);
			kvmi_engine_vcpu_run_jobs(vcpu->intro);
			pthread_mutex_lock(&vm->lock);
			continue;
		}
		if (vm->stopping || !(atomic_load(&vcpu->pause_request) || vcpu->done))
			break;
		atomic_store(&vcpu->state, vcpu->done ? VCPU_EXITED : VCPU_PAUSED);
		pthread_cond_broadcast(&vm->cond);
		pthread_cond_wait(&vcpu->wake, &vm->lock);
	}
	run = !vm->stopping;
	if (run)
		atomic_store(&vcpu->state, VCPU_RUNNING);
	pthread_mutex_unlock(&vm->lock);
	return run;
}

/*
 * Debug level: the KVM ioctls the engine issued on this thread since the
 * previous entry (kvm_ioctl.h's tally: the vCPU ioctls of one exit's
 * events, a step's set-up, the jobs it ran), when there were any.  The
 * benchmarks count an event's ioctls and their cost from these lines.
 */
static void log_engine_ioctls(struct vcpu *vcpu)
{
	static __thread struct kvm_ioctl_tally seen;
	struct kvm_ioctl_tally now = kvm_ioctl_tally;

	if (now.n != seen.n)
		pr_debug("vcpu %u: engine ioctls before this entry: %llu, %llu ns", vcpu->id,
			 (unsigned long long)(now.n - seen.n), (unsigned long long)(now.ns - seen.ns));
	seen = now;
}

/*
 * One trip into the guest and back.  The engine (when a tool may attach)
 * is asked first and sees every exit first.  False: leave the loop.
 */
static bool run_once(struct vcpu *vcpu)
{
	enum kvmi_run_action a = vcpu->intro ? kvmi_engine_pre_run(vcpu->intro) : KVMI_RUN_ENTER;
	int ret, err;

	if (a == KVMI_RUN_STOP || (vcpu->intro && vm_stopping(vcpu->vm)))
		return false;
	if (vcpu->intro && vmm_log_level >= LOG_DEBUG)
		log_engine_ioctls(vcpu);
	if (a == KVMI_RUN_FINISH)
		__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	ret = ioctl(vcpu->fd, KVM_RUN, 0);
	err = errno;
	if (a == KVMI_RUN_FINISH)
		__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	if (vcpu->intro && kvmi_engine_post_run(vcpu->intro, ret, err) == KVMI_EXIT_ENGINE)
		return true;
	if (ret < 0) {
		if (err == EINTR || err == EAGAIN) {
			__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			return true;
		}
		pr_err("vcpu %u: KVM_RUN: %s", vcpu->id, strerror(err));
		vm_request_stop(vcpu->vm, KVMI_VM_EXIT_HOST);
		return false;
	}
	vcpu->nr_exits++;
	handle_exit(vcpu);
	return true;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;
	sigset_t unblock;
	int err;

	sigemptyset(&unblock);
	sigaddset(&unblock, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);

	err = boot_vcpu_reset(vcpu);
	if (err) {
		pr_err("vcpu %u: cannot set the boot state: %s", vcpu->id, strerror(-err));
		vm_request_stop(vm, KVMI_VM_EXIT_HOST);
		goto out;
	}
	atomic_store(&vcpu->state, VCPU_RUNNING);

	while (vcpu_wait_runnable(vcpu) && run_once(vcpu))
		;
out:
	pthread_mutex_lock(&vm->lock);
	atomic_store(&vcpu->state, VCPU_EXITED);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	if (vcpu->intro)
		kvmi_engine_vcpu_gone(vcpu->intro);
	return NULL;
}

int vcpu_start(struct vcpu *vcpu)
{
	/* The thread unblocks only the kick: SIGINT/SIGTERM stay with the
	 * main thread. */
	int err = thread_start_blocked(&vcpu->thread, vcpu_thread, vcpu);

	atomic_store(&vcpu->thread_started, !err);
	return err;
}

void vcpu_join(struct vcpu *vcpu)
{
	if (!atomic_load(&vcpu->thread_started))
		return;
	pthread_join(vcpu->thread, NULL);
	atomic_store(&vcpu->thread_started, false);
}
