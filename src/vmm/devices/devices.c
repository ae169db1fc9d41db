/* SPDX-License-Identifier: MIT */
/* Creates the platform devices of a VM, in a fixed order. */
#include <errno.h>
#include <string.h>

#include "../guest_abi.h"
#include "util.h"
#include "../vm.h"
#include "devices.h"

#define COM1_IRQ 4

int devices_init(struct vm *vm)
{
	int err;

	vm->serial = serial_create(vm, KVMI_PORT_SERIAL_COM1, COM1_IRQ, vm->cfg.serial_out_fd,
				   vm->cfg.serial_in_fd);
	if (!vm->serial) {
		pr_err("cannot create the serial port");
		return -ENOMEM;
	}
	err = cmos_init(vm);
	if (!err)
		err = platform_init(vm);
	if (err)
		pr_err("cannot register the platform devices: %s", strerror(err < 0 ? -err : ENOMEM));
	return err;
}

int devices_start(struct vm *vm)
{
	int err = serial_start_input(vm->serial);

	if (err)
		pr_err("cannot start serial input: %s", strerror(-err));
	return err;
}

void devices_stop(struct vm *vm)
{
	serial_stop_input(vm->serial);
}

void devices_destroy(struct vm *vm)
{
	serial_destroy(vm->serial);
	vm->serial = NULL;
	cmos_destroy(vm);
	i8042_destroy(vm);
}
