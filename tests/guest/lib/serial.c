/* SPDX-License-Identifier: MIT */
/* COM1 output and the platform ports (power-off, memory re-creation);
 * usable from ring 0 and ring 3. */
#include "runtime.h"

#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_THRE 0x20

static void putc_raw(char c)
{
	/* Bounded: a UART that never drains must not hang the test. */
	for (unsigned i = 0; i < 1000; i++) {
		if (inb(KVMI_PORT_SERIAL_COM1 + UART_LSR) & UART_LSR_THRE)
			break;
		cpu_relax();
	}
	outb(KVMI_PORT_SERIAL_COM1 + UART_THR, (uint8_t)c);
}

void guest_serial_write(const char *s)
{
	while (*s)
		putc_raw(*s++);
}

/* Under QEMU the ucall lines share COM1 (qemu.c): each call here is written
 * whole, under the same lock as they are. */
void serial_putc(char c)
{
	if (guest_is_qemu())
		guest_qemu_lock();
	putc_raw(c);
	if (guest_is_qemu())
		guest_qemu_unlock();
}

void serial_puts(const char *s)
{
	if (guest_is_qemu())
		guest_qemu_lock();
	guest_serial_write(s);
	if (guest_is_qemu())
		guest_qemu_unlock();
}

void serial_printf(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	va_start(ap, fmt);
	guest_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	serial_puts(buf);
}

void power_off(uint8_t status)
{
	if (guest_is_qemu())
		guest_qemu_power_off(status);
	outb(KVMI_PORT_POWEROFF, status);
	guest_halt();
}

void guest_mem_recreate(uint8_t region)
{
	if (guest_is_qemu())
		guest_qemu_unsupported("KVMI_PORT_MEM_RECREATE");
	outb(KVMI_PORT_MEM_RECREATE, region);
}
