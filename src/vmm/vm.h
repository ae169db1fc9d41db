/* SPDX-License-Identifier: MIT */
/*
 * struct vm: everything one virtual machine owns (no globals, so one process
 * can hold several VMs — tests and fuzzers do).  Creation order:
 *   vm_create()          open /dev/kvm, check capabilities, create the VM,
 *                        irqchip, PIT, RAM, devices, vCPUs
 *   vm_load_payload() or vm_load_linux()
 *   vm_run()             start one thread per vCPU, wait for the end
 *   vm_destroy()
 */
#ifndef KVMI_VM_VM_H
#define KVMI_VM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "guest_abi.h"
#include "memory.h"

#define VM_MAX_VCPUS 64

struct vcpu;
struct serial;
struct kvm_cpuid2;
struct kvmi_engine;

struct vm_config {
	const char *kvm_device;   /* default "/dev/kvm" */
	uint64_t ram_size;        /* bytes */
	unsigned nr_vcpus;
	unsigned timeout_s;       /* 0 = none */
	int serial_out_fd;        /* COM1 output, default 1 */
	int serial_in_fd;         /* COM1 input, -1 = none */
	bool handle_signals;      /* SIGINT/SIGTERM stop the VM (caller blocked them) */
};

/* Hooks at named points of the vCPU loop, for tests; NULL: default. */
struct vm_hooks {
	void *opaque;
	/* A guest ucall; return true when handled (the default logs it). */
	bool (*ucall)(void *opaque, struct vcpu *vcpu, struct kvmi_ucall *uc);
};

enum vm_boot_kind { VM_BOOT_NONE, VM_BOOT_PAYLOAD, VM_BOOT_LINUX };

struct vm_entry {
	uint64_t rip;
	uint64_t rsi;   /* payload: vCPU index (set per vCPU); Linux: boot_params */
	bool all_vcpus; /* payload: every vCPU starts at rip; Linux: only vCPU 0 */
};

struct vm {
	struct vm_config cfg;
	int kvm_fd, vm_fd;
	int run_size;
	struct kvm_cpuid2 *cpuid;  /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */

	struct guest_memory mem;
	struct bus pio, mmio;
	struct serial *serial;
	struct cmos *cmos;
	struct i8042 *i8042;

	struct vcpu *vcpus;
	unsigned nr_vcpus;

	enum vm_boot_kind boot;
	struct vm_entry entry;

	struct vm_hooks hooks;
	struct kvmi_engine *intro;   /* introspection engine, NULL when off */

	/* Lifecycle, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	int exit_status;
	unsigned nr_vcpus_done;
};

void vm_config_defaults(struct vm_config *cfg);
/* 0 or -errno; on error a message has been logged.  -ENODEV: /dev/kvm absent,
 * -ENOTTY: not a KVM device or too old, -ENOSYS: capability missing. */
int vm_create(const struct vm_config *cfg, struct vm **out);
void vm_destroy(struct vm *vm);

/* Runs until the guest powers off, finishes, crashes, or times out.
 * Returns the exit status (KVMI_VM_EXIT_*, or the power-off value). */
int vm_run(struct vm *vm);

/* Deletes and re-creates the memslots of RAM region idx (a remap or
 * hot-plug would); with introspection on, the engine re-applies a tool's
 * page restrictions before any vCPU runs on it. */
int vm_recreate_region(struct vm *vm, unsigned idx);

/* Any thread: stop the VM with this status; the first request wins. */
void vm_request_stop(struct vm *vm, int status);
bool vm_stopping(struct vm *vm);

/* A vCPU reports that it finished (GUEST_DONE); the VM stops once all did. */
void vm_vcpu_done(struct vm *vm, struct vcpu *vcpu);

/* Required KVM capabilities, checked at start-up (exported for --help/tests). */
struct kvm_cap_req {
	int cap;
	const char *name;
	const char *why;
};
extern const struct kvm_cap_req vm_required_caps[];
extern const unsigned vm_nr_required_caps;

#endif
