/* SPDX-License-Identifier: MIT */
/*
 * Platform ports: power-off and reset (0xcf9; the i8042 is in i8042.c), the
 * POST port, and the ucall port through which test payloads report
 * GUEST_SYNC / GUEST_ASSERT / GUEST_DONE (see guest_abi.h).
 */
#include <errno.h>
#include <string.h>

#include "../bus.h"
#include "../guest_abi.h"
#include "util.h"
#include "../vcpu.h"
#include "../vm.h"
#include "devices.h"

static uint32_t value_of(const void *data, unsigned len)
{
	uint32_t v = 0;

	memcpy(&v, data, MIN(len, sizeof(v)));
	return v;
}

static void poweroff_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	struct vm *vm = opaque;
	unsigned status = value_of(data, len) & 0xff;

	(void)vcpu;
	(void)off;
	pr_info("guest powered off (status %u)", status);
	vm_request_stop(vm, (int)status);
}

void platform_reset(struct vm *vm, const char *how)
{
	/* There is no firmware to re-run: like a VMM started with -no-reboot,
	 * a reset ends the VM cleanly. */
	pr_info("guest requested reset via %s; exiting", how);
	vm_request_stop(vm, KVMI_VM_EXIT_OK);
}

static void cf9_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	(void)vcpu;
	(void)off;
	if (value_of(data, len) & 0x4)
		platform_reset(opaque, "port 0xcf9");
}

static void recreate_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	(void)vcpu;
	(void)off;
	vm_recreate_region(opaque, value_of(data, len) & 0xff);
}

static void ignore_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	(void)opaque;
	(void)vcpu;
	(void)off;
	(void)data;
	(void)len;
}

static void default_ucall(struct vm *vm, struct vcpu *vcpu, struct kvmi_ucall *uc)
{
	uc->buf[KVMI_UCALL_BUF_SIZE - 1] = '\0';
	switch (uc->cmd) {
	case KVMI_UCALL_SYNC:
		pr_info("vcpu %u: sync %llu", vcpu->id, (unsigned long long)uc->args[0]);
		break;
	case KVMI_UCALL_PRINT:
		pr_info("vcpu %u: print: %s", vcpu->id, uc->buf);
		break;
	case KVMI_UCALL_ASSERT:
		pr_err("vcpu %u: assertion failed: %s", vcpu->id, uc->buf);
		vm_request_stop(vm, KVMI_VM_EXIT_GUEST_FAIL);
		break;
	case KVMI_UCALL_UNEXPECTED_EXCEPTION:
		pr_err("vcpu %u: unexpected exception %llu (error 0x%llx) at rip 0x%llx cs 0x%llx", vcpu->id,
		       (unsigned long long)uc->args[0], (unsigned long long)uc->args[1],
		       (unsigned long long)uc->args[2], (unsigned long long)uc->args[3]);
		vm_request_stop(vm, KVMI_VM_EXIT_GUEST_FAIL);
		break;
	case KVMI_UCALL_DONE:
		pr_info("vcpu %u: done", vcpu->id);
		vm_vcpu_done(vm, vcpu);
		break;
	default:
		pr_err("vcpu %u: unknown ucall %llu", vcpu->id, (unsigned long long)uc->cmd);
		vm_request_stop(vm, KVMI_VM_EXIT_GUEST_FAIL);
		break;
	}
}

static void ucall_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	struct vm *vm = opaque;
	uint64_t gpa = value_of(data, len);
	struct kvmi_ucall *uc;

	(void)off;
	/* The record lives in guest RAM and is read in place: the guest is
	 * stopped in this OUT, and replies (args) are written back. */
	uc = gpa_to_hva(&vm->mem, gpa, sizeof(*uc));
	if (!uc || len != 4) {
		pr_err("vcpu %u: bad ucall (address %#llx, %u-byte write)", vcpu->id,
		       (unsigned long long)gpa, len);
		vm_request_stop(vm, KVMI_VM_EXIT_GUEST_FAIL);
		return;
	}
	if (vm->hooks.ucall && vm->hooks.ucall(vm->hooks.opaque, vcpu, uc))
		return;
	default_ucall(vm, vcpu, uc);
}

static const struct bus_dev_ops poweroff_ops = { .write = poweroff_write };
static const struct bus_dev_ops cf9_ops = { .write = cf9_write };
static const struct bus_dev_ops post_ops = { .write = ignore_write };
static const struct bus_dev_ops recreate_ops = { .write = recreate_write };
static const struct bus_dev_ops ucall_ops = { .write = ucall_write };

int platform_init(struct vm *vm)
{
	static const struct {
		uint16_t port, len;
		const struct bus_dev_ops *ops;
		const char *name;
	} ports[] = {
		{ KVMI_PORT_POWEROFF, 1, &poweroff_ops, "poweroff" },
		{ KVMI_PORT_RESET_CF9, 1, &cf9_ops, "reset-cf9" },
		{ 0x80, 1, &post_ops, "post" },
		{ KVMI_PORT_UCALL, 4, &ucall_ops, "ucall" },
		{ KVMI_PORT_MEM_RECREATE, 1, &recreate_ops, "mem-recreate" },
	};
	int err = i8042_init(vm);

	for (unsigned i = 0; !err && i < ARRAY_SIZE(ports); i++)
		err = bus_register(&vm->pio, ports[i].port, ports[i].len, ports[i].ops, vm, ports[i].name);
	return err;
}
