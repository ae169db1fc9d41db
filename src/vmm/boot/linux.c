/* SPDX-License-Identifier: MIT */
/*
 * Linux bzImage loader, 64-bit boot protocol (Documentation/arch/x86/boot.rst):
 * the protected-mode kernel is loaded at an aligned address, boot_params
 * ("zero page") gets the setup header, command line, initrd and e820 map, and
 * the BSP enters at load address + 0x200 in long mode with RSI = boot_params.
 */
#include "boot.h"

#include <asm/bootparam.h>
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../guest_abi.h"
#include "util.h"
#include "../vm.h"

#define BOOT_PARAMS_GPA  0x7000ull
#define CMDLINE_GPA      0x20000ull
#define CMDLINE_MAX      0x10000ull /* up to the EBDA-free area we reserve for it */
#define KERNEL_MIN_GPA   0x100000ull
#define EBDA_START       0x9fc00ull
#define BIOS_START       0xf0000ull

#define SETUP_HDR_OFFSET 0x1f1
#define HDRS_MAGIC       0x53726448 /* "HdrS" */
#define XLF_KERNEL_64_   (1 << 0)
#define E820_TYPE_RAM_      1
#define E820_TYPE_RESERVED_ 2


int bzimage_parse(const uint8_t *data, size_t size, struct bzimage_info *info,
		  char *err, size_t errlen)
{
	struct setup_header hdr;

	if (size < 0x1000)
		return fail(err, errlen, -EINVAL, "file too small for a bzImage (%zu bytes)", size);
	memcpy(&hdr, data + SETUP_HDR_OFFSET, sizeof(hdr));
	if (hdr.header != HDRS_MAGIC || hdr.boot_flag != 0xaa55)
		return fail(err, errlen, -EINVAL, "not a Linux bzImage (no \"HdrS\" boot header)");
	if (hdr.version < 0x020c)
		return fail(err, errlen, -ENOTSUP,
			    "boot protocol %u.%02u is too old: the 64-bit entry needs 2.12",
			    hdr.version >> 8, hdr.version & 0xff);
	if (!(hdr.xloadflags & XLF_KERNEL_64_))
		return fail(err, errlen, -ENOTSUP, "kernel has no 64-bit entry point (XLF_KERNEL_64 clear)");
	if (!(hdr.loadflags & LOADED_HIGH))
		return fail(err, errlen, -ENOTSUP, "zImage (loaded low) kernels are not supported");

	memset(info, 0, sizeof(*info));
	info->version = hdr.version;
	info->setup_sects = hdr.setup_sects ? hdr.setup_sects : 4;
	info->setup_size = (info->setup_sects + 1u) * 512u;
	if (info->setup_size >= size)
		return fail(err, errlen, -EINVAL, "truncated bzImage: no protected-mode kernel after %u setup bytes",
			    info->setup_size);
	info->kernel_offset = info->setup_size;
	info->kernel_size = size - info->setup_size;
	info->initrd_addr_max = hdr.initrd_addr_max ? hdr.initrd_addr_max : 0x37ffffff;
	info->cmdline_size = hdr.cmdline_size ? hdr.cmdline_size : 255;
	info->init_size = hdr.init_size;
	info->pref_address = hdr.pref_address;
	info->kernel_alignment = hdr.kernel_alignment;
	info->relocatable = hdr.relocatable_kernel;
	info->header_end = 0x202u + data[0x201];
	if (info->header_end > 0x1000 || info->header_end < 0x202 + 0x30)
		return fail(err, errlen, -EINVAL, "bzImage setup header has a bad length");
	return 0;
}

static void e820_add(struct boot_params *bp, uint64_t addr, uint64_t size, uint32_t type)
{
	struct boot_e820_entry *e;

	if (!size || bp->e820_entries >= ARRAY_SIZE(bp->e820_table))
		return;
	e = &bp->e820_table[bp->e820_entries++];
	e->addr = addr;
	e->size = size;
	e->type = type;
}

/* a + b, false when the sum does not fit in 64 bits. */
static bool add_u64(uint64_t a, uint64_t b, uint64_t *sum)
{
	return !__builtin_add_overflow(a, b, sum);
}

/* x rounded up to the power of two a, false when that wraps. */
static bool align_up_u64(uint64_t x, uint64_t a, uint64_t *out)
{
	if (!add_u64(x, a - 1, out))
		return false;
	*out &= ~(a - 1);
	return true;
}

static void plan_copy(struct linux_plan *p, unsigned idx, uint64_t gpa, uint64_t len)
{
	p->copy[idx] = (struct boot_copy){ .gpa = gpa, .len = len };
}

/* The kernel's load address and the end of the area it may use. */
static int plan_kernel(struct linux_plan *p, uint64_t low_end, char *err, size_t errlen)
{
	const struct bzimage_info *in = &p->info;
	uint64_t need = MAX(in->kernel_size, (uint64_t)in->init_size), end;

	p->load = KERNEL_MIN_GPA;
	if (in->relocatable && in->kernel_alignment && !(in->kernel_alignment & (in->kernel_alignment - 1))) {
		if (!align_up_u64(KERNEL_MIN_GPA, in->kernel_alignment, &p->load))
			return fail(err, errlen, -ERANGE, "bad kernel_alignment %#x", in->kernel_alignment);
	} else if (!in->relocatable && in->pref_address >= KERNEL_MIN_GPA) {
		p->load = in->pref_address;
	}
	/* The decompressor needs init_size bytes at the load address, or at
	 * its preferred address when it relocates itself there. */
	if (!add_u64(p->load, need, &p->kernel_end))
		return fail(err, errlen, -ERANGE,
			    "kernel at %#llx with %llu bytes (init_size %#x) runs past the end of the address space",
			    (unsigned long long)p->load, (unsigned long long)need, in->init_size);
	if (in->pref_address > p->load) {
		if (!add_u64(in->pref_address, in->init_size, &end))
			return fail(err, errlen, -ERANGE,
				    "preferred address %#llx + init_size %#x runs past the end of the address space",
				    (unsigned long long)in->pref_address, in->init_size);
		p->kernel_end = MAX(p->kernel_end, end);
	}
	if (p->kernel_end > GUEST_LOW_RAM_END)
		return fail(err, errlen, -ERANGE,
			    "kernel needs [%#llx, %#llx), beyond the %llu MiB of RAM below 4 GiB any guest has",
			    (unsigned long long)MAX(p->load, in->pref_address), (unsigned long long)p->kernel_end,
			    GUEST_LOW_RAM_END >> 20);
	if (p->kernel_end > low_end)
		return fail(err, errlen, -ENOMEM,
			    "too little memory: this kernel needs at least %llu MiB of guest RAM (have %llu MiB)",
			    (unsigned long long)((p->kernel_end + (1 << 20) - 1) >> 20),
			    (unsigned long long)(low_end >> 20));
	plan_copy(p, LINUX_COPY_KERNEL, p->load, in->kernel_size);
	return 0;
}

/* The initrd goes as high as the kernel allows, above the kernel's area. */
static int plan_initrd(struct linux_plan *p, uint64_t isize, uint64_t low_end, char *err, size_t errlen)
{
	uint64_t top = MIN(low_end, (uint64_t)p->info.initrd_addr_max + 1);

	if (isize > top || ALIGN_DOWN(top - isize, GUEST_PAGE_SIZE) < p->kernel_end)
		return fail(err, errlen, -ENOMEM,
			    "too little memory: kernel and a %llu-byte initrd do not fit in %llu MiB",
			    (unsigned long long)isize, (unsigned long long)(low_end >> 20));
	p->initrd_gpa = ALIGN_DOWN(top - isize, GUEST_PAGE_SIZE);
	plan_copy(p, LINUX_COPY_INITRD, p->initrd_gpa, isize);
	return 0;
}

int linux_plan(const uint8_t *kdata, size_t ksize, uint64_t initrd_size, bool have_initrd,
	       size_t cmdline_len, uint64_t low_end, struct linux_plan *p, char *err, size_t errlen)
{
	int ret;

	memset(p, 0, sizeof(*p));
	ret = bzimage_parse(kdata, ksize, &p->info, err, errlen);
	if (ret)
		return ret;
	if (cmdline_len > p->info.cmdline_size || cmdline_len >= CMDLINE_MAX)
		return fail(err, errlen, -E2BIG, "kernel command line is %zu bytes; this kernel takes at most %u",
			    cmdline_len, p->info.cmdline_size);
	if (low_end > GUEST_LOW_RAM_END)
		low_end = GUEST_LOW_RAM_END;
	ret = plan_kernel(p, low_end, err, errlen);
	if (!ret && have_initrd)
		ret = plan_initrd(p, initrd_size, low_end, err, errlen);
	if (ret)
		return ret;
	/* Both below KERNEL_MIN_GPA, which plan_kernel found to be RAM. */
	plan_copy(p, LINUX_COPY_BOOT_PARAMS, BOOT_PARAMS_GPA, sizeof(struct boot_params));
	plan_copy(p, LINUX_COPY_CMDLINE, CMDLINE_GPA, cmdline_len + 1);
	return 0;
}

static int read_inputs(const char *kernel, const char *initrd, uint8_t **kdata, size_t *ksize,
		       uint8_t **idata, size_t *isize)
{
	int ret = read_file(kernel, kdata, ksize);

	if (ret) {
		pr_err("cannot read kernel %s: %s", kernel, strerror(-ret));
		return ret;
	}
	if (initrd) {
		ret = read_file(initrd, idata, isize);
		if (ret) {
			pr_err("cannot read initrd %s: %s", initrd, strerror(-ret));
			free(*kdata);
			*kdata = NULL;
			return ret;
		}
	}
	return 0;
}

int boot_check_linux(const char *kernel, const char *initrd, const char *cmdline, uint64_t ram_size)
{
	uint8_t *kdata = NULL, *idata = NULL;
	size_t ksize = 0, isize = 0;
	struct linux_plan p;
	char err[256];
	int ret;

	ret = read_inputs(kernel, initrd, &kdata, &ksize, &idata, &isize);
	if (ret)
		return ret;
	ret = linux_plan(kdata, ksize, isize, initrd != NULL, cmdline ? strlen(cmdline) : 0,
			 MIN(ram_size, GUEST_LOW_RAM_END), &p, err, sizeof(err));
	if (ret)
		pr_err("invalid kernel %s: %s", kernel, err);
	free(kdata);
	free(idata);
	return ret;
}

/* The host address of every range of the plan, or -EFAULT when one is not
 * RAM (linux_plan never allows that: no bug can write through NULL). */
static int plan_hvas(const struct guest_memory *mem, const struct linux_plan *p, uint8_t *hva[LINUX_NR_COPIES])
{
	for (unsigned i = 0; i < LINUX_NR_COPIES; i++) {
		hva[i] = NULL;
		if (!p->copy[i].len)
			continue;
		hva[i] = gpa_to_hva(mem, p->copy[i].gpa, p->copy[i].len);
		if (!hva[i])
			return -EFAULT;
	}
	return 0;
}

/* The zero page: the kernel's setup header with our loader's fields, e820. */
static void fill_boot_params(struct boot_params *bp, const struct guest_memory *mem, const uint8_t *kdata,
			     const struct linux_plan *p)
{
	memset(bp, 0, sizeof(*bp));
	memcpy((uint8_t *)bp + SETUP_HDR_OFFSET, kdata + SETUP_HDR_OFFSET,
	       p->info.header_end - SETUP_HDR_OFFSET);
	bp->hdr.type_of_loader = 0xff;
	bp->hdr.vid_mode = 0xffff;
	bp->hdr.loadflags |= CAN_USE_HEAP | LOADED_HIGH;
	bp->hdr.loadflags &= (uint8_t)~KEEP_SEGMENTS;
	bp->hdr.heap_end_ptr = 0xfe00;
	/* All below GUEST_LOW_RAM_END (linux_plan): they fit in 32 bits. */
	bp->hdr.code32_start = (uint32_t)p->load;
	bp->hdr.cmd_line_ptr = (uint32_t)CMDLINE_GPA;
	bp->hdr.ramdisk_image = (uint32_t)p->initrd_gpa;
	bp->hdr.ramdisk_size = (uint32_t)p->copy[LINUX_COPY_INITRD].len;

	e820_add(bp, 0, EBDA_START, E820_TYPE_RAM_);
	e820_add(bp, EBDA_START, 0xa0000 - EBDA_START, E820_TYPE_RESERVED_);
	e820_add(bp, BIOS_START, 0x100000 - BIOS_START, E820_TYPE_RESERVED_);
	for (unsigned i = 0; i < mem->nr_regions; i++) {
		const struct mem_region *r = &mem->regions[i];
		uint64_t start = MAX(r->gpa, 0x100000ull);

		if (r->gpa + r->size > start)
			e820_add(bp, start, r->gpa + r->size - start, E820_TYPE_RAM_);
	}
}

int boot_load_linux(struct vm *vm, const char *kernel, const char *initrd, const char *cmdline)
{
	uint8_t *kdata = NULL, *idata = NULL, *hva[LINUX_NR_COPIES];
	size_t ksize = 0, isize = 0;
	struct linux_plan p;
	char err[256];
	int ret;

	cmdline = cmdline ? cmdline : "";
	ret = read_inputs(kernel, initrd, &kdata, &ksize, &idata, &isize);
	if (ret)
		return ret;
	ret = linux_plan(kdata, ksize, isize, initrd != NULL, strlen(cmdline), guest_low_ram_end(&vm->mem),
			 &p, err, sizeof(err));
	if (ret) {
		pr_err("invalid kernel %s: %s", kernel, err);
		goto out;
	}
	ret = plan_hvas(&vm->mem, &p, hva);
	if (ret) {
		pr_err("invalid kernel %s: its load plan leaves guest RAM", kernel);
		goto out;
	}
	if (initrd)
		memcpy(hva[LINUX_COPY_INITRD], idata, isize);
	memcpy(hva[LINUX_COPY_KERNEL], kdata + p.info.kernel_offset, p.info.kernel_size);
	memcpy(hva[LINUX_COPY_CMDLINE], cmdline, p.copy[LINUX_COPY_CMDLINE].len);
	fill_boot_params((struct boot_params *)hva[LINUX_COPY_BOOT_PARAMS], &vm->mem, kdata, &p);

	ret = boot_setup_longmode(vm);
	if (ret) {
		pr_err("cannot write the boot page tables: %s", strerror(-ret));
		goto out;
	}
	vm->boot = VM_BOOT_LINUX;
	vm->entry = (struct vm_entry){ .rip = p.load + 0x200, .rsi = BOOT_PARAMS_GPA, .all_vcpus = false };
	pr_debug("linux: protocol %u.%02u, kernel %llu KiB at %#llx, initrd %zu KiB at %#llx",
		 p.info.version >> 8, p.info.version & 0xff, (unsigned long long)(p.info.kernel_size >> 10),
		 (unsigned long long)p.load, isize >> 10, (unsigned long long)p.initrd_gpa);
out:
	free(kdata);
	free(idata);
	return ret;
}
