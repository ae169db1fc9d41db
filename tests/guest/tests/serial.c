/* SPDX-License-Identifier: MIT */
/*
 * COM1 output, byte for byte: lines from ring 0 and ring 3, formatted output,
 * an empty line and a 1000-character line.  guest-tests.sh compares stdout
 * with the exact expected text.
 */
#include "guest.h"

static uint64_t ring3_lines(void *arg)
{
	(void)arg;
	for (unsigned i = 0; i < 100; i++)
		serial_puts("0123456789");
	serial_putc('\n');
	serial_puts("serial: line 4 from ring 3\n");
	return 0;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	(void)nr_vcpus;
	(void)vcpu;
	serial_puts("serial: line 1 from ring 0\n");
	serial_printf("serial: line 2: %d %u %x %s %c|%5d|%-5d|%05x\n", -7, 42u, 0xbeefu, "str",
		      'c', 12, 34, 0xab);
	serial_puts("\n");
	run_in_ring3(ring3_lines, NULL);
	serial_puts("serial: last line\n");
	GUEST_DONE();
}
