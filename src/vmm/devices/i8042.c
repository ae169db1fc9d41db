/* SPDX-License-Identifier: MIT */
/*
 * The i8042 keyboard controller without keyboard or mouse: enough for
 * Linux's driver to read and write the command byte, pass the self test,
 * find no devices quickly, and for the reset pulse (command 0xfe) that
 * `reboot=k` uses.  Ports 0x60 (data) and 0x64 (status / command).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../bus.h"
#include "../guest_abi.h"
#include "util.h"
#include "../vm.h"
#include "devices.h"

#define STATUS_OBF  0x01  /* output buffer full */
#define STATUS_SYS  0x04  /* system flag, set after self test */
#define STATUS_CMD  0x08  /* last write was a command */
#define STATUS_UNLOCKED 0x10 /* keyboard not inhibited by the key lock */

#define CMD_READ_CTR   0x20
#define CMD_WRITE_CTR  0x60
#define CMD_SELF_TEST  0xaa
#define CMD_TEST_AUX   0xa9
#define CMD_TEST_KBD   0xab
#define CMD_WRITE_OUT  0xd1
#define CMD_PULSE_RST  0xfe

struct i8042 {
	struct vm *vm;
	pthread_mutex_t lock;
	uint8_t ctr, status, out, pending_cmd;
};

static void put_out(struct i8042 *k, uint8_t v)
{
	k->out = v;
	k->status |= STATUS_OBF;
}

/* port: 0 = data (0x60), 1 = status/command (0x64) */
static uint8_t i8042_in(struct i8042 *k, int port)
{
	uint8_t v;

	pthread_mutex_lock(&k->lock);
	if (port == 0) {
		v = k->out;
		k->status &= (uint8_t)~STATUS_OBF;
	} else {
		v = k->status;
	}
	pthread_mutex_unlock(&k->lock);
	return v;
}

static void i8042_out(struct i8042 *k, int port, uint8_t v)
{
	bool reset = false;

	pthread_mutex_lock(&k->lock);
	if (port == 0) { /* data byte: the argument of a pending command */
		k->status &= (uint8_t)~STATUS_CMD;
		if (k->pending_cmd == CMD_WRITE_CTR)
			k->ctr = v;
		else if (k->pending_cmd == CMD_WRITE_OUT && !(v & 1))
			reset = true; /* output port bit 0 low = CPU reset */
		/* Bytes for the (absent) keyboard are dropped: no answer, so the
		 * driver gives up on the device and carries on. */
		k->pending_cmd = 0;
	} else {
		k->status |= STATUS_CMD;
		k->pending_cmd = 0;
		switch (v) {
		case CMD_READ_CTR:  put_out(k, k->ctr); break;
		case CMD_WRITE_CTR: k->pending_cmd = v; break;
		case CMD_WRITE_OUT: k->pending_cmd = v; break;
		case CMD_SELF_TEST: k->status |= STATUS_SYS; put_out(k, 0x55); break;
		case CMD_TEST_KBD:
		case CMD_TEST_AUX:  put_out(k, 0x00); break;
		case CMD_PULSE_RST: reset = true; break;
		default:            break; /* enable/disable ports etc.: no reply */
		}
	}
	pthread_mutex_unlock(&k->lock);
	if (reset)
		platform_reset(k->vm, "port 0x64");
}

static void data_read(void *opaque, struct vcpu *vcpu, uint64_t off, void *data, unsigned len)
{
	(void)vcpu;
	(void)off;
	memset(data, 0, len);
	*(uint8_t *)data = i8042_in(opaque, 0);
}

static void cmd_read(void *opaque, struct vcpu *vcpu, uint64_t off, void *data, unsigned len)
{
	(void)vcpu;
	(void)off;
	memset(data, 0, len);
	*(uint8_t *)data = i8042_in(opaque, 1);
}

static void data_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	(void)vcpu;
	(void)off;
	(void)len;
	i8042_out(opaque, 0, *(const uint8_t *)data);
}

static void cmd_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	(void)vcpu;
	(void)off;
	(void)len;
	i8042_out(opaque, 1, *(const uint8_t *)data);
}

/* Two ranges, because port 0x61 between them belongs to the in-kernel PIT. */
static const struct bus_dev_ops data_ops = { .read = data_read, .write = data_write };
static const struct bus_dev_ops cmd_ops = { .read = cmd_read, .write = cmd_write };

int i8042_init(struct vm *vm)
{
	struct i8042 *k = calloc(1, sizeof(*k));
	int err;

	if (!k)
		return -1;
	k->vm = vm;
	k->ctr = 0x30; /* both ports disabled, no interrupts */
	k->status = STATUS_UNLOCKED;
	pthread_mutex_init(&k->lock, NULL);
	err = bus_register(&vm->pio, 0x60, 1, &data_ops, k, "i8042-data");
	if (!err)
		err = bus_register(&vm->pio, KVMI_PORT_I8042_CMD, 1, &cmd_ops, k, "i8042-cmd");
	if (err) {
		pthread_mutex_destroy(&k->lock);
		free(k);
		return err;
	}
	vm->i8042 = k;
	return 0;
}

void i8042_destroy(struct vm *vm)
{
	if (!vm->i8042)
		return;
	pthread_mutex_destroy(&vm->i8042->lock);
	free(vm->i8042);
	vm->i8042 = NULL;
}
