/* SPDX-License-Identifier: MIT */
/* Test payload loader: ELF64 executables and flat binaries. */
#include "boot.h"

#include <elf.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../guest_abi.h"
#include "util.h"
#include "../vm.h"


static bool range_ok(uint64_t gpa, uint64_t len, uint64_t ram_end)
{
	return gpa >= KVMI_GUEST_PAYLOAD_MIN_GPA && gpa + len >= gpa && gpa + len <= ram_end;
}

static int parse_elf(const uint8_t *data, size_t size, uint64_t ram_end,
		     struct payload_image *img, char *err, size_t errlen)
{
	Elf64_Ehdr eh;
	bool entry_ok = false;

	if (size < sizeof(eh))
		return fail(err, errlen, -EINVAL, "truncated ELF header (%zu bytes)", size);
	memcpy(&eh, data, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB)
		return fail(err, errlen, -EINVAL, "not a little-endian ELF64 file");
	if (eh.e_machine != EM_X86_64)
		return fail(err, errlen, -EINVAL, "ELF machine %u is not x86-64", eh.e_machine);
	if (eh.e_type != ET_EXEC)
		return fail(err, errlen, -EINVAL, "ELF type %u is not an executable (ET_EXEC)", eh.e_type);
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0)
		return fail(err, errlen, -EINVAL, "ELF has no usable program headers");
	if (eh.e_phoff > size || (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
		return fail(err, errlen, -EINVAL, "truncated ELF: program headers beyond the end of the file");

	memset(img, 0, sizeof(*img));
	img->entry = eh.e_entry;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		struct payload_segment *s;

		memcpy(&ph, data + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_LOAD || ph.p_memsz == 0)
			continue;
		if (ph.p_filesz > ph.p_memsz)
			return fail(err, errlen, -EINVAL, "ELF segment %u: file size exceeds memory size", i);
		if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset)
			return fail(err, errlen, -EINVAL, "truncated ELF: segment %u lies beyond the end of the file", i);
		if (!range_ok(ph.p_paddr, ph.p_memsz, ram_end))
			return fail(err, errlen, -ERANGE,
				    "ELF segment %u at %#llx+%#llx is outside usable guest RAM [%#llx, %#llx)",
				    i, (unsigned long long)ph.p_paddr, (unsigned long long)ph.p_memsz,
				    KVMI_GUEST_PAYLOAD_MIN_GPA, (unsigned long long)ram_end);
		if (img->nr_segments == PAYLOAD_MAX_SEGMENTS)
			return fail(err, errlen, -E2BIG, "ELF has more than %d loadable segments",
				    PAYLOAD_MAX_SEGMENTS);
		s = &img->seg[img->nr_segments++];
		s->gpa = ph.p_paddr;
		s->file_offset = ph.p_offset;
		s->file_size = ph.p_filesz;
		s->mem_size = ph.p_memsz;
		if (eh.e_entry >= ph.p_paddr && eh.e_entry - ph.p_paddr < ph.p_memsz &&
		    (ph.p_flags & PF_X))
			entry_ok = true;
	}
	if (!img->nr_segments)
		return fail(err, errlen, -EINVAL, "ELF has no loadable segment");
	if (!entry_ok)
		return fail(err, errlen, -EINVAL, "ELF entry point %#llx is not in an executable segment",
			    (unsigned long long)eh.e_entry);
	return 0;
}

int payload_parse(const uint8_t *data, size_t size, uint64_t ram_end,
		  struct payload_image *img, char *err, size_t errlen)
{
	if (size >= SELFMAG && !memcmp(data, ELFMAG, SELFMAG))
		return parse_elf(data, size, ram_end, img, err, errlen);
	if (size == 0)
		return fail(err, errlen, -EINVAL, "empty file");
	if (!range_ok(KVMI_GUEST_FLAT_LOAD_GPA, size, ram_end))
		return fail(err, errlen, -ERANGE, "flat binary of %zu bytes does not fit in guest RAM", size);
	memset(img, 0, sizeof(*img));
	img->entry = KVMI_GUEST_FLAT_LOAD_GPA;
	img->nr_segments = 1;
	img->seg[0] = (struct payload_segment){ KVMI_GUEST_FLAT_LOAD_GPA, 0, size, size };
	return 0;
}

/* Reads and parses a payload file; on success *data (malloc'ed) backs img. */
static int read_payload(const char *path, uint64_t ram_end, struct payload_image *img,
			uint8_t **data)
{
	char err[256];
	size_t size;
	int ret;

	ret = read_file(path, data, &size);
	if (ret) {
		pr_err("cannot read guest payload %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = payload_parse(*data, size, ram_end, img, err, sizeof(err));
	if (ret) {
		pr_err("invalid guest payload %s: %s", path, err);
		free(*data);
		*data = NULL;
	}
	return ret;
}

int boot_check_payload(const char *path, uint64_t ram_size)
{
	struct payload_image img;
	uint8_t *data = NULL;
	int ret = read_payload(path, MIN(ram_size, GUEST_LOW_RAM_END), &img, &data);

	free(data);
	return ret;
}

int boot_load_payload(struct vm *vm, const char *path)
{
	struct payload_image img;
	uint8_t *data = NULL;
	int ret;

	ret = read_payload(path, guest_low_ram_end(&vm->mem), &img, &data);
	if (ret)
		return ret;
	for (unsigned i = 0; i < img.nr_segments; i++) {
		const struct payload_segment *s = &img.seg[i];
		uint8_t *dst = gpa_to_hva(&vm->mem, s->gpa, s->mem_size);

		memcpy(dst, data + s->file_offset, s->file_size);
		memset(dst + s->file_size, 0, s->mem_size - s->file_size);
	}
	ret = boot_setup_longmode(vm);
	if (ret) {
		pr_err("cannot write the boot page tables: %s", strerror(-ret));
		goto out;
	}
	vm->boot = VM_BOOT_PAYLOAD;
	vm->entry = (struct vm_entry){ .rip = img.entry, .all_vcpus = true };
	pr_debug("payload %s: entry %#llx, %u segment(s)", path, (unsigned long long)img.entry,
		 img.nr_segments);
out:
	free(data);
	return ret;
}
