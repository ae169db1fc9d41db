/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: kvmi-vm's loaders (ELF64 / flat payloads, bzImage setup
 * header and the bzImage load plan), which read files a user hands to the
 * VMM.  The parsers must refuse bad input with a message and never read out
 * of bounds, and a load plan that linux_plan() accepts must only write
 * inside guest RAM: every violation aborts.
 *
 * The input is the kernel file.  Its first bytes, which the boot protocol
 * leaves to the boot sector and the loader never reads, choose the rest of
 * the plan's inputs:
 *   [0]     guest RAM size (index into ram_sizes)
 *   [1..4]  initrd size, little endian; [5] bit 0: an initrd is given
 *   [6..7]  command line length
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "memory.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KERNEL_MIN 0x100000ull

static const uint64_t ram_sizes[] = {
	2ull << 20, 16ull << 20, 64ull << 20, 256ull << 20, 1ull << 30, 3ull << 30, 4ull << 30, 1ull << 40,
};

static void check(bool cond)
{
	if (!cond)
		abort();
}

/* [a, a + alen) and [b, b + blen) do not overlap (both already in RAM). */
static bool disjoint(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return !alen || !blen || a + alen <= b || b + blen <= a;
}

/* What a successful plan promises, checked without trusting its code. */
static void check_plan(const struct linux_plan *p, size_t ksize, uint64_t isize, bool have_initrd,
		       size_t clen, uint64_t low_end)
{
	const struct boot_copy *c = p->copy;

	for (unsigned i = 0; i < LINUX_NR_COPIES; i++) {
		uint64_t end;

		check(!__builtin_add_overflow(c[i].gpa, c[i].len, &end));
		check(end <= low_end);
	}
	/* The kernel comes from the file and gets its whole working area. */
	check(p->info.kernel_offset <= ksize && p->info.kernel_size <= ksize - p->info.kernel_offset);
	check(c[LINUX_COPY_KERNEL].gpa == p->load && c[LINUX_COPY_KERNEL].len == p->info.kernel_size);
	check(p->load >= KERNEL_MIN && p->load <= p->kernel_end && p->kernel_end <= low_end);
	check(p->kernel_end - p->load >= p->info.init_size);
	/* A kernel that relocates itself to its preferred address needs
	 * init_size bytes there too. */
	if (p->info.pref_address > p->load) {
		uint64_t end;

		check(!__builtin_add_overflow(p->info.pref_address, p->info.init_size, &end));
		check(end <= p->kernel_end);
	}
	check(c[LINUX_COPY_CMDLINE].len == clen + 1);
	check(c[LINUX_COPY_BOOT_PARAMS].len > 0);
	check(c[LINUX_COPY_INITRD].len == (have_initrd ? isize : 0));
	/* Nothing lands on the kernel's area or on another copy. */
	for (unsigned i = 0; i < LINUX_NR_COPIES; i++) {
		if (i != LINUX_COPY_KERNEL)
			check(disjoint(c[i].gpa, c[i].len, p->load, p->kernel_end - p->load));
		for (unsigned j = i + 1; j < LINUX_NR_COPIES; j++)
			check(disjoint(c[i].gpa, c[i].len, c[j].gpa, c[j].len));
	}
	/* The zero page holds these in 32-bit fields. */
	check(p->load < (1ull << 32) && p->initrd_gpa < (1ull << 32) && isize < (1ull << 32));
}

static void fuzz_linux_plan(const uint8_t *data, size_t size)
{
	struct linux_plan p;
	uint64_t ram, low_end, isize = 0;
	size_t clen = 0;
	bool have_initrd = false;
	char err[256];

	if (size < 8)
		return;
	ram = ram_sizes[data[0] % (sizeof(ram_sizes) / sizeof(ram_sizes[0]))];
	low_end = ram < GUEST_LOW_RAM_END ? ram : GUEST_LOW_RAM_END;
	for (int i = 4; i >= 1; i--)
		isize = isize << 8 | data[i];
	have_initrd = data[5] & 1;
	clen = (size_t)data[6] | (size_t)data[7] << 8;
	if (linux_plan(data, size, isize, have_initrd, clen, low_end, &p, err, sizeof(err)) == 0)
		check_plan(&p, size, isize, have_initrd, clen, low_end);
	else
		check(err[0] != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload_image img;
	struct bzimage_info info;
	char err[256];

	if (payload_parse(data, size, 64ull << 20, &img, err, sizeof(err)) == 0) {
		/* Every accepted segment lies in the file and in RAM. */
		for (unsigned i = 0; i < img.nr_segments; i++)
			if (img.seg[i].file_offset + img.seg[i].file_size > size ||
			    img.seg[i].gpa + img.seg[i].mem_size > (64ull << 20))
				__builtin_trap();
	}
	if (bzimage_parse(data, size, &info, err, sizeof(err)) == 0 &&
	    info.kernel_offset + info.kernel_size > size)
		__builtin_trap();
	fuzz_linux_plan(data, size);
	return 0;
}
