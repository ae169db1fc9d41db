/* SPDX-License-Identifier: MIT */
/* VM creation, capability checks, lifecycle and the wait for the end. */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "devices/devices.h"
#include "introspect.h"
#include "util.h"
#include "vcpu.h"

/* Where KVM (Intel) puts its private pages; must not overlap RAM we use. */
#define VM_TSS_ADDR          0xfffbd000ull
#define VM_IDENTITY_MAP_ADDR 0xfffbc000ull

const struct kvm_cap_req vm_required_caps[] = {
	{ KVM_CAP_USER_MEMORY,    "KVM_CAP_USER_MEMORY",    "guest RAM from a memfd" },
	{ KVM_CAP_IRQCHIP,        "KVM_CAP_IRQCHIP",        "in-kernel PIC/IOAPIC/LAPIC" },
	{ KVM_CAP_PIT2,           "KVM_CAP_PIT2",           "in-kernel PIT (Linux timer calibration)" },
	{ KVM_CAP_EXT_CPUID,      "KVM_CAP_EXT_CPUID",      "KVM_GET_SUPPORTED_CPUID / KVM_SET_CPUID2" },
	{ KVM_CAP_SET_TSS_ADDR,   "KVM_CAP_SET_TSS_ADDR",   "KVM_SET_TSS_ADDR" },
	{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", "race-free vCPU kick" },
	{ KVM_CAP_MP_STATE,       "KVM_CAP_MP_STATE",       "starting all vCPUs of a test payload" },
	{ KVM_CAP_NR_MEMSLOTS,    "KVM_CAP_NR_MEMSLOTS",    "memslot budget" },
};
const unsigned vm_nr_required_caps = ARRAY_SIZE(vm_required_caps);

void vm_config_defaults(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->kvm_device = "/dev/kvm";
	cfg->ram_size = 256ull << 20;
	cfg->nr_vcpus = 1;
	cfg->serial_out_fd = 1;
	cfg->serial_in_fd = -1;
}

static int open_kvm(struct vm *vm)
{
	struct stat st;
	int v;

	vm->kvm_fd = open(vm->cfg.kvm_device, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int err = -errno;

		pr_err("cannot open %s: %s%s", vm->cfg.kvm_device, strerror(errno),
		       errno == ENOENT ? " (is the kvm module loaded?)" :
		       errno == EACCES ? " (add yourself to the kvm group or run as root)" : "");
		return err == -ENOENT ? -ENODEV : err;
	}
	if (fstat(vm->kvm_fd, &st) < 0 || !S_ISCHR(st.st_mode)) {
		pr_err("%s is not a character device", vm->cfg.kvm_device);
		return -ENOTTY;
	}
	v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		pr_err("%s is not a usable KVM device (KVM_GET_API_VERSION: %s)", vm->cfg.kvm_device,
		       v < 0 ? strerror(errno) : "unexpected version");
		return -ENOTTY;
	}
	return 0;
}

static int check_caps(struct vm *vm)
{
	int missing = 0;

	for (unsigned i = 0; i < vm_nr_required_caps; i++) {
		const struct kvm_cap_req *c = &vm_required_caps[i];

		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, c->cap) <= 0) {
			pr_err("this KVM lacks %s (needed for %s)", c->name, c->why);
			missing++;
		}
	}
	return missing ? -ENOSYS : 0;
}

static int get_supported_cpuid(struct vm *vm)
{
	vm->cpuid = kvm_supported_cpuid(vm->kvm_fd);
	if (!vm->cpuid) {
		pr_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int create_platform(struct vm *vm)
{
	/* KVM also emulates port 0x61 (PIT channel 2 gate), which Linux uses
	 * to calibrate the TSC. */
	struct kvm_pit_config pit = { .flags = 0 };

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)VM_TSS_ADDR) < 0) {
		pr_err("KVM_SET_TSS_ADDR: %s", strerror(errno));
		return -errno;
	}
	/* Only Intel needs it; ignore hosts that do not implement it. */
	{
		uint64_t idmap = VM_IDENTITY_MAP_ADDR;

		(void)ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap);
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		pr_err("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -errno;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		pr_err("KVM_CREATE_PIT2: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int create_vcpus(struct vm *vm)
{
	vm->vcpus = calloc(vm->cfg.nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	for (unsigned i = 0; i < vm->cfg.nr_vcpus; i++) {
		int err = vcpu_init(vm, &vm->vcpus[i], i);

		if (err)
			return err;
		vm->nr_vcpus++;
	}
	return 0;
}

int vm_create(const struct vm_config *cfg, struct vm **out)
{
	struct vm *vm;
	int err, max_slots;

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > VM_MAX_VCPUS) {
		pr_err("--vcpus must be between 1 and %d", VM_MAX_VCPUS);
		return -EINVAL;
	}
	if (cfg->ram_size < GUEST_MIN_RAM || cfg->ram_size > GUEST_MAX_RAM ||
	    cfg->ram_size % GUEST_PAGE_SIZE) {
		pr_err("guest memory must be a multiple of 4 KiB between %llu MiB and %llu GiB",
		       GUEST_MIN_RAM >> 20, GUEST_MAX_RAM >> 30);
		return -EINVAL;
	}

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = -1;
	vm->mem.memfd = vm->mem.vm_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");

	err = vcpu_signals_init();
	if (err)
		goto err;
	err = open_kvm(vm);
	if (err)
		goto err;
	err = check_caps(vm);
	if (err)
		goto err;
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0) {
		err = -ENOTTY;
		pr_err("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto err;
	}
	err = get_supported_cpuid(vm);
	if (err)
		goto err;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		err = -errno;
		pr_err("KVM_CREATE_VM: %s", strerror(errno));
		goto err;
	}
	err = create_platform(vm);
	if (err)
		goto err;

	max_slots = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	err = guest_memory_init(&vm->mem, vm->vm_fd, cfg->ram_size, max_slots > 0 ? (unsigned)max_slots : 32);
	if (err) {
		pr_err("cannot set up %llu MiB of guest memory: %s",
		       (unsigned long long)(cfg->ram_size >> 20), strerror(-err));
		goto err;
	}

	err = devices_init(vm);
	if (err)
		goto err;

	err = create_vcpus(vm);
	if (err)
		goto err;
	*out = vm;
	return 0;

err:
	vm_destroy(vm);
	return err;
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	introspect_destroy(vm);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	devices_destroy(vm);
	guest_memory_destroy(&vm->mem);
	bus_destroy(&vm->pio);
	bus_destroy(&vm->mmio);
	free(vm->cpuid);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

void vm_request_stop(struct vm *vm, int status)
{
	bool first;

	pthread_mutex_lock(&vm->lock);
	first = !vm->stopping;
	if (first) {
		vm->stopping = true;
		vm->exit_status = status;
	}
	pthread_cond_broadcast(&vm->cond);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_notify_locked(&vm->vcpus[i]);
	pthread_mutex_unlock(&vm->lock);
	if (!first)
		return;
	if (vm->intro)
		introspect_vm_stopping(vm);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

bool vm_stopping(struct vm *vm)
{
	bool s;

	pthread_mutex_lock(&vm->lock);
	s = vm->stopping;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

void vm_vcpu_done(struct vm *vm, struct vcpu *vcpu)
{
	bool all;

	if (vcpu->done)
		return;
	vcpu->done = true;
	pthread_mutex_lock(&vm->lock);
	all = ++vm->nr_vcpus_done == vm->nr_vcpus;
	pthread_mutex_unlock(&vm->lock);
	if (all)
		vm_request_stop(vm, KVMI_VM_EXIT_OK);
}

int vm_recreate_region(struct vm *vm, unsigned idx)
{
	int err;

	err = vm->intro ? introspect_recreate_region(vm, idx) : guest_memory_recreate_region(&vm->mem, idx);
	if (err)
		pr_err("cannot re-create memory region %u: %s", idx, strerror(-err));
	else
		pr_debug("memory region %u re-created; memslots in use %u", idx, vm->mem.nr_slots_used);
	return err;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int vm_run(struct vm *vm)
{
	uint64_t deadline = vm->cfg.timeout_s ? now_ms() + vm->cfg.timeout_s * 1000ull : 0;
	sigset_t stop_sigs;
	int err, status;

	if (vm->boot == VM_BOOT_NONE) {
		pr_err("nothing to run: give --guest or --kernel");
		return KVMI_VM_EXIT_USAGE;
	}
	sigemptyset(&stop_sigs);
	sigaddset(&stop_sigs, SIGINT);
	sigaddset(&stop_sigs, SIGTERM);

	err = devices_start(vm);
	if (err)
		return KVMI_VM_EXIT_HOST;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		err = vcpu_start(&vm->vcpus[i]);
		if (err) {
			pr_err("cannot start vCPU %u: %s", i, strerror(-err));
			vm_request_stop(vm, KVMI_VM_EXIT_HOST);
			break;
		}
	}
	if (introspect_start(vm)) {
		pr_err("cannot start the introspection thread");
		vm_request_stop(vm, KVMI_VM_EXIT_HOST);
	}

	pthread_mutex_lock(&vm->lock);
	while (!vm->stopping) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
		if (vm->stopping)
			break;
		pthread_mutex_unlock(&vm->lock);
		if (vm->cfg.handle_signals) {
			struct timespec zero = { 0, 0 };
			int sig = sigtimedwait(&stop_sigs, NULL, &zero);

			if (sig > 0) {
				pr_info("%s received, stopping the guest", strsignal(sig));
				vm_request_stop(vm, 128 + sig);
			}
		}
		if (deadline && now_ms() >= deadline) {
			pr_err("timeout: the guest ran longer than %u s", vm->cfg.timeout_s);
			vm_request_stop(vm, KVMI_VM_EXIT_TIMEOUT);
		}
		pthread_mutex_lock(&vm->lock);
	}
	pthread_mutex_unlock(&vm->lock);

	/* UNHOOK (bounded wait for the tool) and disconnect; vCPUs waiting
	 * for replies have been released by the stop. */
	introspect_stop(vm);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vcpu_join(&vm->vcpus[i]);
	devices_stop(vm);

	pthread_mutex_lock(&vm->lock);
	status = vm->exit_status;
	pthread_mutex_unlock(&vm->lock);
	return status;
}
