/* SPDX-License-Identifier: MIT */
/*
 * kvmi side of the benchmarks (issues 5 and 11): kvmi-vm, or stock QEMU
 * through kvmi-qemu, runs the benchmark guest and this program is the
 * introspection tool, built on our client library.
 *
 *   bench-kvmi events    VMM GUEST TMPDIR   event round trips vs the port-I/O floor
 *   bench-kvmi memory    VMM GUEST TMPDIR   READ_PHYSICAL, mapped reads, process_vm_readv, memcpy
 *   bench-kvmi pagetrack VMM GUEST TMPDIR   SET_PAGE_ACCESS cost per page
 *   bench-kvmi quiet     VMM GUEST TMPDIR   a ring-3 workload with and without a tool
 *   bench-kvmi scale     VMM GUEST TMPDIR   one tool thread serving 1..32 guests (kvmi-vm)
 *
 * VMM is the path of kvmi-vm or of kvmi-qemu (then QEMU is $BENCH_QEMU,
 * default qemu-system-x86_64, booting GUEST's .bios image); GUEST is
 * bench_guest.elf.  Results are appended to $BENCH_OUT/results.tsv (see
 * bench.h); bench/run.sh turns them into RESULTS.md.  Nothing here asserts
 * a time: a figure that cannot be measured is written down as n/a with its
 * reason.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_kvmi.h"

struct vmm_opts opts;

int main(int argc, char **argv)
{
	const char *qemu = getenv("BENCH_QEMU");

	if (argc != 5) {
		fprintf(stderr, "usage: %s events|memory|pagetrack|quiet|scale KVMI_VM|KVMI_QEMU GUEST_ELF TMPDIR\n",
			argv[0]);
		return 2;
	}
	opts.kvmi_vm = argv[2];
	opts.kind = vmm_kind_of(argv[2]);
	opts.qemu = qemu && *qemu ? qemu : NULL;
	opts.guest = argv[3];
	opts.tmpdir = argv[4];
	setvbuf(stdout, NULL, _IOLBF, 0);
	result_init();
	if (!strcmp(argv[1], "events"))
		bench_events();
	else if (!strcmp(argv[1], "memory"))
		bench_memory();
	else if (!strcmp(argv[1], "pagetrack") && opts.kind == VMM_KVMI_VM)
		bench_pagetrack();
	else if (!strcmp(argv[1], "quiet"))
		bench_quiet();
	else if (!strcmp(argv[1], "scale") && opts.kind == VMM_KVMI_VM)
		bench_scale();
	else
		die("unknown mode %s for %s", argv[1], vmm_kind_name(opts.kind));
	return 0;
}
