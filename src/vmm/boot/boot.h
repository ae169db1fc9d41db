/* SPDX-License-Identifier: MIT */
/*
 * Loaders and the boot state of a vCPU.  Both kinds of guest start in 64-bit
 * long mode with identity paging (see guest_abi.h): test payloads (ELF64 or
 * a flat binary) and Linux bzImages through the 64-bit boot protocol.
 *
 * The parse functions take bytes and never touch KVM, so the unit tests and
 * fuzz targets can feed them anything.
 */
#ifndef KVMI_VM_BOOT_H
#define KVMI_VM_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct vcpu;

#define PAYLOAD_MAX_SEGMENTS 16

struct payload_segment {
	uint64_t gpa;
	uint64_t file_offset, file_size;
	uint64_t mem_size;
};

struct payload_image {
	uint64_t entry;
	unsigned nr_segments;
	struct payload_segment seg[PAYLOAD_MAX_SEGMENTS];
};

/*
 * Parses an ELF64 x86-64 executable, or a flat binary (anything that does not
 * start with the ELF magic) loaded at KVMI_GUEST_FLAT_LOAD_GPA.  Checks every
 * segment against [KVMI_GUEST_PAYLOAD_MIN_GPA, ram_end).  On error returns
 * -errno and a message in err (size errlen).
 */
int payload_parse(const uint8_t *data, size_t size, uint64_t ram_end,
		  struct payload_image *img, char *err, size_t errlen);

struct bzimage_info {
	uint16_t version;           /* boot protocol version */
	uint8_t setup_sects;
	uint32_t setup_size;        /* bytes, incl. the boot sector */
	uint64_t kernel_offset;     /* protected-mode kernel in the file */
	uint64_t kernel_size;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;      /* max, excluding the NUL */
	uint32_t init_size;         /* bytes the decompressor needs at its address */
	uint64_t pref_address;
	uint32_t kernel_alignment;
	uint8_t relocatable;        /* relocatable_kernel */
	uint32_t header_end;        /* end of the setup header in the boot sector */
};

/* Checks a bzImage for the 64-bit boot protocol (>= 2.12, XLF_KERNEL_64). */
int bzimage_parse(const uint8_t *data, size_t size, struct bzimage_info *info,
		  char *err, size_t errlen);

/* One range the Linux loader writes into guest RAM (len 0: none). */
struct boot_copy {
	uint64_t gpa, len;
};

enum { LINUX_COPY_BOOT_PARAMS, LINUX_COPY_CMDLINE, LINUX_COPY_KERNEL, LINUX_COPY_INITRD, LINUX_NR_COPIES };

/* Where a bzImage, its initrd and command line go in guest RAM. */
struct linux_plan {
	struct bzimage_info info;
	uint64_t load;              /* the protected-mode kernel's address */
	uint64_t kernel_end;        /* end of what the kernel may use while it decompresses */
	uint64_t initrd_gpa;
	struct boot_copy copy[LINUX_NR_COPIES];
};

/*
 * The load plan of a bzImage (kdata, ksize bytes) with an initrd of
 * initrd_size bytes (when have_initrd) and a command line of cmdline_len
 * bytes, in RAM [0, low_end) - RAM region 0 (at most 3 GiB).  Pure: no VM,
 * no files, so tests and the fuzzer can call it with anything.  On success
 * every copy lies inside [0, low_end), the kernel's whole working area
 * [load, kernel_end) too, and nothing wraps around 2^64.  0, or -errno and
 * a message in err.
 */
int linux_plan(const uint8_t *kdata, size_t ksize, uint64_t initrd_size, bool have_initrd,
	       size_t cmdline_len, uint64_t low_end, struct linux_plan *p, char *err, size_t errlen);

/* Writes the GDT and the identity-mapping page tables into guest RAM. */
int boot_setup_longmode(struct vm *vm);
int boot_load_payload(struct vm *vm, const char *path);
/* The same checks as the loaders, without a VM: bad input files are
 * reported before /dev/kvm is even opened.  0 or -errno (message logged). */
int boot_check_payload(const char *path, uint64_t ram_size);
int boot_check_linux(const char *kernel, const char *initrd, const char *cmdline, uint64_t ram_size);
int boot_load_linux(struct vm *vm, const char *kernel, const char *initrd, const char *cmdline);

/* On the vCPU's own thread: registers for its first entry. */
int boot_vcpu_reset(struct vcpu *vcpu);

#endif
