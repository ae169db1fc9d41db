/* SPDX-License-Identifier: MIT */
/* COM1 output and the power-off port; usable from ring 0 and ring 3. */
#include "runtime.h"

#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_THRE 0x20

void serial_putc(char c)
{
	/* Bounded: a UART that never drains must not hang the test. */
	for (unsigned i = 0; i < 1000; i++) {
		if (inb(KVMI_PORT_SERIAL_COM1 + UART_LSR) & UART_LSR_THRE)
			break;
		cpu_relax();
	}
	outb(KVMI_PORT_SERIAL_COM1 + UART_THR, (uint8_t)c);
}

void serial_puts(const char *s)
{
	while (*s)
		serial_putc(*s++);
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
	outb(KVMI_PORT_POWEROFF, status);
	guest_halt();
}
