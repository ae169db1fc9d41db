/* SPDX-License-Identifier: MIT */
/* The minimal platform: COM1, CMOS/RTC, reset and power-off ports, the
 * ucall port of test payloads.  The in-kernel irqchip and PIT do the rest. */
#ifndef KVMI_VM_DEVICES_H
#define KVMI_VM_DEVICES_H

#include <stdint.h>

struct vm;
struct serial;

int devices_init(struct vm *vm);     /* registers every device on the buses */
int devices_start(struct vm *vm);    /* starts the serial input thread */
void devices_stop(struct vm *vm);
void devices_destroy(struct vm *vm);

/* 16550 UART. */
struct serial *serial_create(struct vm *vm, uint16_t base, unsigned irq, int out_fd, int in_fd);
void serial_destroy(struct serial *s);
int serial_start_input(struct serial *s);
void serial_stop_input(struct serial *s);
/* Feeds bytes as if typed on the console (tests, input thread). */
void serial_receive(struct serial *s, const uint8_t *buf, size_t len);

int platform_init(struct vm *vm);
int i8042_init(struct vm *vm);
void i8042_destroy(struct vm *vm);
/* Ends the VM on a guest reset request (there is no firmware to re-run). */
void platform_reset(struct vm *vm, const char *how);
int cmos_init(struct vm *vm);
void cmos_destroy(struct vm *vm);

#endif
