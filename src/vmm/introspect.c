/* SPDX-License-Identifier: MIT */
/* kvmi-vm as a frontend of the introspection engine (see introspect.h). */
#include "introspect.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>

#include "engine.h"
#include "intro_config.h"
#include "util.h"
#include "vcpu.h"
#include "vm.h"

static void host_kick(void *host, unsigned idx)
{
	struct vm *vm = host;

	if (idx >= vm->nr_vcpus)
		return;
	vcpu_kick(&vm->vcpus[idx]);
	vcpu_wake(&vm->vcpus[idx]);     /* parked while paused or done */
}

static void host_request_stop(void *host, enum kvmi_stop_reason why)
{
	vm_request_stop(host, why == KVMI_STOP_CRASH ? KVMI_VM_EXIT_CRASH : KVMI_VM_EXIT_HOST);
}

static int host_slot_alloc(void *host, uint32_t *id)
{
	return memslot_alloc(&((struct vm *)host)->mem, id);
}

static void host_slot_free(void *host, uint32_t id)
{
	memslot_free(&((struct vm *)host)->mem, id);
}

static int host_slot_set(void *host, uint32_t id, uint32_t flags, uint64_t gpa, uint64_t size, void *hva)
{
	return memslot_set(&((struct vm *)host)->mem, id, flags, gpa, size, hva);
}

static const struct kvmi_host_ops host_ops = {
	.kick = host_kick,
	.request_stop = host_request_stop,
	.slot_alloc = host_slot_alloc,
	.slot_free = host_slot_free,
	.slot_set = host_slot_set,
};

static struct kvmi_ram_region region_of(const struct vm *vm, unsigned idx, bool slot_exists)
{
	const struct mem_region *r = &vm->mem.regions[idx];

	return (struct kvmi_ram_region){
		.gpa = r->gpa, .size = r->size, .hva = r->hva, .fd = vm->mem.memfd,
		.fd_offset = r->fd_offset, .slot_id = r->slot_id, .slot_exists = slot_exists,
	};
}

/* The engine learns the VM's RAM (its slots exist already) and vCPUs. */
static int attach(struct vm *vm)
{
	for (unsigned i = 0; i < vm->mem.nr_regions; i++) {
		struct kvmi_ram_region r = region_of(vm, i, true);
		int err = kvmi_engine_region_add(vm->intro, &r);

		if (err)
			return err;
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *vcpu = &vm->vcpus[i];

		vcpu->intro = kvmi_engine_vcpu_add(vm->intro, i, vcpu->fd, vcpu->run);
		if (!vcpu->intro)
			return -ENOMEM;
	}
	return 0;
}

int introspect_create(struct vm *vm, const struct intro_options *o)
{
	struct kvmi_engine_config cfg;
	int err;

	memset(&cfg, 0, sizeof(cfg));
	err = intro_config_build(o, "kvmi-vm", &cfg);
	if (err)
		goto out;
	pr_info("introspection: connecting to %s", o->address);
	cfg.ops = &host_ops;
	cfg.host = vm;
	cfg.kvm_fd = vm->kvm_fd;
	cfg.vm_fd = vm->vm_fd;
	cfg.max_vcpus = vm->nr_vcpus;
	cfg.cpuid = vm->cpuid;
	err = kvmi_engine_create(&cfg, &vm->intro);
	if (!err)
		err = attach(vm);
	if (err)
		introspect_destroy(vm);
out:
	intro_config_release(&cfg);
	return err;
}

int introspect_start(struct vm *vm)
{
	return vm->intro ? kvmi_engine_start(vm->intro) : 0;
}

void introspect_stop(struct vm *vm)
{
	if (vm->intro)
		kvmi_engine_stop(vm->intro);
}

void introspect_destroy(struct vm *vm)
{
	if (!vm->intro)
		return;
	kvmi_engine_destroy(vm->intro);
	vm->intro = NULL;
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].intro = NULL;
}

void introspect_vm_stopping(struct vm *vm)
{
	if (vm->intro)
		kvmi_engine_vm_stopping(vm->intro);
}

int introspect_recreate_region(struct vm *vm, unsigned idx)
{
	struct kvmi_ram_region r;
	int err;

	if (idx >= vm->mem.nr_regions)
		return -EINVAL;
	r = region_of(vm, idx, false);
	/* The guest must not run between the two: its page tables are gone. */
	kvmi_engine_hold(vm->intro);
	err = kvmi_engine_region_remove(vm->intro, r.gpa);
	if (!err)
		err = kvmi_engine_region_add(vm->intro, &r);
	kvmi_engine_release(vm->intro);
	return err;
}
