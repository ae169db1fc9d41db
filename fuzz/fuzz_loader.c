/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: kvmi-vm's loaders (ELF64 / flat payloads, bzImage setup
 * header), which read files a user hands to the VMM.  Both parsers must
 * refuse bad input with a message and never read out of bounds.
 */
#include <stdint.h>
#include <string.h>

#include "boot/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	return 0;
}
