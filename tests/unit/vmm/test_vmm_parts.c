/* SPDX-License-Identifier: MIT */
/* Unit tests for the VMM parts that need no /dev/kvm: size parsing, the I/O
 * bus, the memslot map over a real memfd, the payload and bzImage parsers. */
#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "bus.h"
#include "guest_abi.h"
#include "memory.h"
#include "tap.h"
#include "util.h"

static void test_parse_size(void)
{
	uint64_t v = 0;

	ok(parse_size("256M", &v) == 0 && v == 256ull << 20, "parse_size 256M");
	ok(parse_size("1G", &v) == 0 && v == 1ull << 30, "parse_size 1G");
	ok(parse_size("64KiB", &v) == 0 && v == 64ull << 10, "parse_size 64KiB");
	ok(parse_size("4096", &v) == 0 && v == 4096, "parse_size plain bytes");
	ok(parse_size("12Q", &v) == -EINVAL, "parse_size rejects a bad suffix");
	ok(parse_size("-1M", &v) == -EINVAL, "parse_size rejects negatives");
	ok(parse_size("", &v) == -EINVAL, "parse_size rejects empty");
	ok(parse_size("99999999999999G", &v) == -ERANGE, "parse_size rejects overflow");
	ok(parse_uint("0x10", 100, &v) == 0 && v == 16, "parse_uint hex");
	ok(parse_uint("101", 100, &v) == -ERANGE, "parse_uint bound");
	ok(parse_uint("3x", 100, &v) == -EINVAL, "parse_uint trailing junk");
}

struct probe_dev {
	uint64_t last_off;
	uint8_t last_val;
	int writes;
};

static void probe_read(void *opaque, struct vcpu *vcpu, uint64_t off, void *data, unsigned len)
{
	(void)opaque;
	(void)vcpu;
	memset(data, (int)(0x10 + off), len);
}

static void probe_write(void *opaque, struct vcpu *vcpu, uint64_t off, const void *data, unsigned len)
{
	struct probe_dev *d = opaque;

	(void)vcpu;
	(void)len;
	d->last_off = off;
	d->last_val = *(const uint8_t *)data;
	d->writes++;
}

static void test_bus(void)
{
	static const struct bus_dev_ops ops = { .read = probe_read, .write = probe_write };
	struct probe_dev a = { 0 }, b = { 0 };
	struct bus bus;
	uint8_t v = 0;
	uint32_t w = 0;

	bus_init(&bus, "test");
	ok(bus_register(&bus, 0x3f8, 8, &ops, &a, "a") == 0, "bus: register a");
	ok(bus_register(&bus, 0x60, 1, &ops, &b, "b") == 0, "bus: register b (out of order)");
	ok(bus_register(&bus, 0x3fc, 8, &ops, &b, "overlap") == -EEXIST, "bus: overlap rejected");
	ok(bus_register(&bus, 0x10, 0, &ops, &b, "empty") == -EINVAL, "bus: empty range rejected");
	ok(bus_find(&bus, 0x3ff) && bus_find(&bus, 0x3ff)->opaque == &a, "bus: last byte of a range");
	ok(bus_find(&bus, 0x400) == NULL, "bus: byte after a range is unclaimed");
	ok(bus_read(&bus, NULL, 0x3fa, &v, 1) && v == 0x12, "bus: read gets the offset in the range");
	ok(bus_write(&bus, NULL, 0x60, "\x42", 1) && b.last_val == 0x42 && b.last_off == 0,
	   "bus: write dispatched");
	ok(!bus_read(&bus, NULL, 0x1234, &w, 4) && w == 0xffffffffu, "bus: open bus reads all-ones");
	ok(!bus_write(&bus, NULL, 0x1234, "x", 1) && a.writes == 0, "bus: unclaimed write dropped");
	bus_destroy(&bus);
}

static void test_memory(void)
{
	struct guest_memory mem;
	uint8_t buf[16];
	uint32_t id;

	ok(guest_memory_init(&mem, -1, 1 << 20, 8) == -EINVAL, "memory: below the minimum rejected");
	ok(guest_memory_init(&mem, -1, (4 << 20) + 1, 8) == -EINVAL, "memory: unaligned size rejected");
	ok(guest_memory_init(&mem, -1, 8 << 20, 8) == 0, "memory: 8 MiB");
	ok(mem.nr_regions == 1 && mem.nr_slots_used == 1, "memory: one region, one slot");
	ok(gpa_to_hva(&mem, 0, 8 << 20) != NULL, "memory: whole RAM is addressable");
	ok(gpa_to_hva(&mem, (8 << 20) - 4, 8) == NULL, "memory: range crossing the end refused");
	ok(gpa_to_hva(&mem, ~0ull - 2, 8) == NULL, "memory: wrapping range refused");
	ok(guest_write(&mem, 0x1000, "hello", 6) == 0 && guest_read(&mem, 0x1000, buf, 6) == 0 &&
	   !strcmp((char *)buf, "hello"), "memory: write then read");
	ok(memslot_map_find(&mem, 0x5000) && memslot_map_find(&mem, 0x5000)->gpa == 0, "memslot: find");
	ok(memslot_map_add(&mem, 0x1001, 0x1000, mem.base, 0, &id) == -EINVAL, "memslot: unaligned refused");
	ok(memslot_map_add(&mem, 0x10000000, 0x1000, mem.base, 0, &id) == 0 && id == 1, "memslot: add");
	ok(memslot_map_remove(&mem, id) == 0 && mem.nr_slots_used == 1, "memslot: remove");
	ok(memslot_map_remove(&mem, id) == -ENOENT, "memslot: double remove refused");
	for (unsigned i = 0; i < 7; i++)
		memslot_map_add(&mem, 0x20000000ull + i * 0x1000, 0x1000, mem.base, 0, NULL);
	ok(memslot_map_add(&mem, 0x30000000, 0x1000, mem.base, 0, NULL) == -ENOSPC,
	   "memslot: budget enforced");
	guest_memory_destroy(&mem);

	ok(guest_memory_init(&mem, -1, 4ull << 30, 8) == 0 && mem.nr_regions == 2 &&
	   mem.regions[1].gpa == GUEST_HIGH_RAM && mem.regions[1].size == (1ull << 30),
	   "memory: 4 GiB is split around the 32-bit hole");
	ok(gpa_to_hva(&mem, GUEST_LOW_RAM_END, 1) == NULL, "memory: the hole is not RAM");
	guest_memory_destroy(&mem);
}

/* A minimal ELF64 executable image with one PT_LOAD segment. */
static size_t make_elf(uint8_t *buf, size_t cap, uint64_t paddr, uint64_t entry, uint16_t machine)
{
	Elf64_Ehdr eh = { 0 };
	Elf64_Phdr ph = { 0 };
	const uint8_t code[] = { 0xf4 };

	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = machine;
	eh.e_version = EV_CURRENT;
	eh.e_entry = entry;
	eh.e_phoff = sizeof(eh);
	eh.e_ehsize = sizeof(eh);
	eh.e_phentsize = sizeof(ph);
	eh.e_phnum = 1;
	ph.p_type = PT_LOAD;
	ph.p_flags = PF_R | PF_X;
	ph.p_offset = 0x1000;
	ph.p_vaddr = ph.p_paddr = paddr;
	ph.p_filesz = sizeof(code);
	ph.p_memsz = 0x2000;
	memset(buf, 0, cap);
	memcpy(buf, &eh, sizeof(eh));
	memcpy(buf + sizeof(eh), &ph, sizeof(ph));
	memcpy(buf + 0x1000, code, sizeof(code));
	return 0x1000 + sizeof(code);
}

static void test_payload(void)
{
	static uint8_t buf[0x2000];
	struct payload_image img;
	char err[256];
	size_t n;

	n = make_elf(buf, sizeof(buf), 0x100000, 0x100000, EM_X86_64);
	ok(payload_parse(buf, n, 16 << 20, &img, err, sizeof(err)) == 0 && img.entry == 0x100000 &&
	   img.nr_segments == 1 && img.seg[0].mem_size == 0x2000, "payload: valid ELF");
	ok(payload_parse(buf, 40, 16 << 20, &img, err, sizeof(err)) == -EINVAL && strstr(err, "truncated"),
	   "payload: truncated ELF header (%s)", err);
	ok(payload_parse(buf, 0x1000, 16 << 20, &img, err, sizeof(err)) == -EINVAL && strstr(err, "truncated"),
	   "payload: truncated segment (%s)", err);
	n = make_elf(buf, sizeof(buf), 0x100000, 0x100000, EM_386);
	ok(payload_parse(buf, n, 16 << 20, &img, err, sizeof(err)) == -EINVAL && strstr(err, "x86-64"),
	   "payload: wrong machine (%s)", err);
	n = make_elf(buf, sizeof(buf), 0x8000, 0x8000, EM_X86_64);
	ok(payload_parse(buf, n, 16 << 20, &img, err, sizeof(err)) == -ERANGE, "payload: below 1 MiB (%s)", err);
	n = make_elf(buf, sizeof(buf), 0xfff000, 0xfff000, EM_X86_64);
	ok(payload_parse(buf, n, 16 << 20, &img, err, sizeof(err)) == -ERANGE, "payload: beyond RAM (%s)", err);
	n = make_elf(buf, sizeof(buf), 0x100000, 0x500000, EM_X86_64);
	ok(payload_parse(buf, n, 16 << 20, &img, err, sizeof(err)) == -EINVAL && strstr(err, "entry"),
	   "payload: entry outside the code (%s)", err);
	ok(payload_parse((const uint8_t *)"\xf4", 1, 16 << 20, &img, err, sizeof(err)) == 0 &&
	   img.entry == KVMI_GUEST_FLAT_LOAD_GPA, "payload: flat binary at 1 MiB");
	ok(payload_parse(buf, 0, 16 << 20, &img, err, sizeof(err)) == -EINVAL, "payload: empty file");
}

static void test_bzimage(void)
{
	static uint8_t k[0x4000];
	struct bzimage_info info;
	char err[256];

	memset(k, 0, sizeof(k));
	ok(bzimage_parse(k, sizeof(k), &info, err, sizeof(err)) == -EINVAL && strstr(err, "HdrS"),
	   "bzimage: garbage refused (%s)", err);
	ok(bzimage_parse(k, 100, &info, err, sizeof(err)) == -EINVAL, "bzimage: tiny file refused");
	k[0x1f1] = 4;                    /* setup_sects */
	k[0x1fe] = 0x55; k[0x1ff] = 0xaa;
	memcpy(k + 0x202, "HdrS", 4);
	k[0x201] = 0x6a;                 /* header ends at 0x26c */
	k[0x206] = 0x0b; k[0x207] = 0x02; /* 2.11 */
	k[0x211] = 0x01;                 /* LOADED_HIGH */
	ok(bzimage_parse(k, sizeof(k), &info, err, sizeof(err)) == -ENOTSUP && strstr(err, "2.12"),
	   "bzimage: protocol 2.11 refused (%s)", err);
	k[0x206] = 0x0f;                 /* 2.15 */
	ok(bzimage_parse(k, sizeof(k), &info, err, sizeof(err)) == -ENOTSUP && strstr(err, "64-bit"),
	   "bzimage: no 64-bit entry refused (%s)", err);
	k[0x236] = 0x01;                 /* XLF_KERNEL_64 */
	ok(bzimage_parse(k, sizeof(k), &info, err, sizeof(err)) == 0 && info.setup_size == 5 * 512 &&
	   info.kernel_size == sizeof(k) - 5 * 512, "bzimage: valid header");
	ok(bzimage_parse(k, 5 * 512, &info, err, sizeof(err)) != 0, "bzimage: setup only, no kernel");
}

/* A bzImage header whose load plan fields the test sets. */
static void bz_fields(uint8_t *k, uint8_t reloc, uint32_t align, uint64_t pref, uint32_t init)
{
	memcpy(k + 0x230, &align, 4);
	k[0x234] = reloc;
	memcpy(k + 0x258, &pref, 8);
	memcpy(k + 0x260, &init, 4);
}

/* The load plan: where the kernel goes, and no wrap around 2^64. */
static void test_linux_plan(void)
{
	static uint8_t k[0x4000];
	const uint64_t ram = 256ull << 20;
	struct linux_plan p;
	char err[256];

	memset(k, 0, sizeof(k));
	k[0x1f1] = 4;
	k[0x1fe] = 0x55; k[0x1ff] = 0xaa;
	memcpy(k + 0x202, "HdrS", 4);
	k[0x201] = 0x6a;
	k[0x206] = 0x0f; k[0x207] = 0x02;
	k[0x211] = 0x01;
	k[0x236] = 0x01;
	bz_fields(k, 1, 0x200000, 0x1000000, 0x800000);
	ok(linux_plan(k, sizeof(k), 1 << 20, true, 10, ram, &p, err, sizeof(err)) == 0 && p.load == 0x200000 &&
	   p.kernel_end == 0x1800000 && p.initrd_gpa == ram - (1 << 20) &&
	   p.copy[LINUX_COPY_KERNEL].len == sizeof(k) - 5 * 512 && p.copy[LINUX_COPY_CMDLINE].len == 11,
	   "linux plan: relocatable kernel aligned at 2 MiB, its area to pref + init_size, initrd at the top");
	bz_fields(k, 0, 0x200000, 0x1000000, 0x800000);
	ok(linux_plan(k, sizeof(k), 0, false, 0, ram, &p, err, sizeof(err)) == 0 && p.load == 0x1000000 &&
	   p.kernel_end == 0x1800000 && !p.copy[LINUX_COPY_INITRD].len,
	   "linux plan: a non-relocatable kernel at its preferred address");
	bz_fields(k, 0, 0x200000, 0xfffffffffff00000ull, 0x200000);
	ok(linux_plan(k, sizeof(k), 0, false, 0, ram, &p, err, sizeof(err)) == -ERANGE &&
	   strstr(err, "address space"), "linux plan: pref_address 1 MiB below 2^64 refused (%s)", err);
	bz_fields(k, 1, 0x200000, 0xffffffffffffff00ull, 0x200000);
	ok(linux_plan(k, sizeof(k), 0, false, 0, ram, &p, err, sizeof(err)) == -ERANGE &&
	   strstr(err, "address space"), "linux plan: pref_address + init_size wrapping refused (%s)", err);
	bz_fields(k, 0, 0x200000, 0x1000000, 0xffffffff);
	ok(linux_plan(k, sizeof(k), 0, false, 0, 1ull << 40, &p, err, sizeof(err)) == -ERANGE,
	   "linux plan: init_size 4 GiB refused whatever the RAM (%s)", err);
	bz_fields(k, 1, 0x80000000, 0x1000000, 0x800000);
	ok(linux_plan(k, sizeof(k), 0, false, 0, ram, &p, err, sizeof(err)) == -ENOMEM,
	   "linux plan: 2 GiB alignment in 256 MiB refused (%s)", err);
	bz_fields(k, 1, 0x200000, 0x1000000, 0x800000);
	ok(linux_plan(k, sizeof(k), ram - 0x1800000 + 1, true, 0, ram, &p, err, sizeof(err)) == -ENOMEM,
	   "linux plan: an initrd overlapping the kernel's area refused (%s)", err);
	ok(linux_plan(k, sizeof(k), UINT64_MAX, true, 0, ram, &p, err, sizeof(err)) == -ENOMEM,
	   "linux plan: a 2^64-byte initrd refused");
}

int main(void)
{
	test_parse_size();
	test_bus();
	test_memory();
	test_payload();
	test_bzimage();
	test_linux_plan();
	return tap_done();
}
